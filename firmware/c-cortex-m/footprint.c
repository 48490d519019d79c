/* The library alone, for its flash: parse the embedded model and decode one sampled digit into
   static buffers, nothing else (no stdio, no semihosting but the exit). Its flash minus the blob
   is what a C firmware pays for tinyvae; compare firmware/cortex-m's src/bin/footprint.rs. */
#include <stdint.h>

#include "model.h"
#include "tinyvae.h"

static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t pixels[TINYVAE_MODEL_OUTPUT_SIZE];

int main(void) {
    static tinyvae_model m;
    tinyvae_rng rng;
    int32_t label = TINYVAE_MODEL_CLASSES > 0 ? 0 : TINYVAE_NO_LABEL;
    if (tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m) != TINYVAE_OK) return 1;
    tinyvae_rng_init(&rng, 1);
    return tinyvae_sample(&m, &rng, label, arena, sizeof arena, pixels, sizeof pixels) == TINYVAE_OK ? 0 : 1;
}
