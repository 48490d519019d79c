/* Links every function of the tinyvae C API, so that scripts/test-c.sh can check that the
   linked library holds no panic path at all: every bounds check on the way is one the runtime
   turns into an error code. Built like footprint.c (no C library); it runs each call once. */
#include <stdint.h>

#include "model.h"
#include "tinyvae.h"

static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t pixels[TINYVAE_MODEL_OUTPUT_SIZE];
static float z[64], mu[64], logvar[64];

int main(void) {
    static tinyvae_model m;
    tinyvae_rng rng;
    int32_t label = TINYVAE_MODEL_CLASSES > 0 ? 0 : TINYVAE_NO_LABEL;
    int32_t failures = 0;
    if (tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m) != TINYVAE_OK) return 1;
    tinyvae_rng_init(&rng, 1);
    failures += tinyvae_sample(&m, &rng, label, arena, sizeof arena, pixels, sizeof pixels) != TINYVAE_OK;
    failures += tinyvae_decode(&m, z, tinyvae_latent_size(&m), label, arena, tinyvae_arena_size(&m), pixels,
                               tinyvae_output_size(&m)) != TINYVAE_OK;
    /* A decoder is not an encoder: the call must say so. */
    failures += tinyvae_encode(&m, pixels, tinyvae_input_size(&m), label, arena, sizeof arena, mu, logvar,
                               tinyvae_latent_size(&m)) != TINYVAE_ERR_KIND;
    /* Nor an autoencoder. */
    uint64_t raw = 0;
    failures += tinyvae_anomaly_score(&m, z, 64, arena, sizeof arena, &raw) != TINYVAE_ERR_KIND;
    /* Nor a classifier. */
    uint32_t class = 0;
    failures += tinyvae_classify(&m, pixels, sizeof pixels, arena, sizeof arena, &class) != TINYVAE_ERR_KIND;
    failures += tinyvae_reparametrize(mu, logvar, 64, &rng, z) != TINYVAE_OK;
    failures += tinyvae_model_kind(&m) != TINYVAE_KIND_DECODER;
    failures += tinyvae_classes(&m) != TINYVAE_MODEL_CLASSES || tinyvae_macs(&m) != TINYVAE_MODEL_MACS;
    failures += tinyvae_error_message(TINYVAE_ERR_NULL)[0] == 0;
    return failures;
}
