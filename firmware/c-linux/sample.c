/* A C program that samples digits with the tinyvae C API: the model that `tinyvae deploy
   --lang c` wrote (model.h, model.c), the static library of crates/tinyvae-c, and this file.

       sample COUNT SEED OUT.raw

   writes COUNT x pixels bytes, the layout of `tinyvae sample --raw`, and the same bytes: the
   seed draws the same z (from the blob's learned prior when it stores one) on every target.
   Before sampling it checks that bad calls come back as error codes, not crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "tinyvae.h"

/* The runtime's working memory, sized at compile time from the blob (model.h). */
static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t pixels[TINYVAE_MODEL_OUTPUT_SIZE];

static int fail(const char *what, int32_t code) {
    fprintf(stderr, "error: %s: %s (%d)\n", what, tinyvae_error_message(code), (int)code);
    return 1;
}

/* Misuse gives the documented code and writes nothing. */
static int check_errors(const tinyvae_model *m) {
    tinyvae_model unparsed;
    tinyvae_rng rng;
    int32_t label = TINYVAE_MODEL_CLASSES > 0 ? 0 : TINYVAE_NO_LABEL;
    static uint8_t corrupt[64];
    struct { const char *what; int32_t got, want; } cases[5];
    size_t i;
    memset(&unparsed, 0, sizeof unparsed);
    memcpy(corrupt, tinyvae_model_blob, sizeof corrupt);
    corrupt[4] = 99; /* an unknown format version */
    tinyvae_rng_init(&rng, 1);
    cases[0].what = "NULL blob";
    cases[0].got = tinyvae_model_parse(NULL, 10, &unparsed);
    cases[0].want = TINYVAE_ERR_NULL;
    cases[1].what = "unknown version";
    cases[1].got = tinyvae_model_parse(corrupt, sizeof corrupt, &unparsed);
    cases[1].want = TINYVAE_ERR_NOT_A_BLOB;
    cases[2].what = "unparsed model";
    cases[2].got = tinyvae_sample(&unparsed, &rng, label, arena, sizeof arena, pixels, sizeof pixels);
    cases[2].want = TINYVAE_ERR_NOT_PARSED;
    cases[3].what = "short arena";
    cases[3].got = tinyvae_sample(m, &rng, label, arena, 16, pixels, sizeof pixels);
    cases[3].want = TINYVAE_ERR_ARENA;
    cases[4].what = "short pixel buffer";
    cases[4].got = tinyvae_sample(m, &rng, label, arena, sizeof arena, pixels, sizeof pixels - 1);
    cases[4].want = TINYVAE_ERR_LENGTH;
    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (cases[i].got != cases[i].want) {
            fprintf(stderr, "error: %s gave %d (%s), expected %d\n", cases[i].what, (int)cases[i].got,
                    tinyvae_error_message(cases[i].got), (int)cases[i].want);
            return 1;
        }
    }
    if (tinyvae_sample(m, &rng, (int32_t)TINYVAE_MODEL_CLASSES + 1, arena, sizeof arena, pixels, sizeof pixels)
        != TINYVAE_ERR_LABEL) {
        fprintf(stderr, "error: a label out of range was accepted\n");
        return 1;
    }
    printf("ok: 6 misuses gave their error codes\n");
    return 0;
}

int main(int argc, char **argv) {
    tinyvae_model m;
    tinyvae_rng rng;
    unsigned long count, i;
    unsigned long long seed;
    FILE *out;
    int32_t rc;
    if (argc != 4) {
        fprintf(stderr, "usage: %s COUNT SEED OUT.raw\n", argv[0]);
        return 2;
    }
    count = strtoul(argv[1], NULL, 10);
    seed = strtoull(argv[2], NULL, 10);
    rc = tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m);
    if (rc != TINYVAE_OK) return fail("tinyvae_model_parse", rc);
    if (tinyvae_model_kind(&m) != TINYVAE_KIND_DECODER) return fail("not a decoder", TINYVAE_ERR_KIND);
    if (tinyvae_arena_size(&m) != TINYVAE_MODEL_ARENA_SIZE || tinyvae_output_size(&m) != sizeof pixels) {
        fprintf(stderr, "error: model.h does not describe the embedded blob\n");
        return 1;
    }
    if (check_errors(&m) != 0) return 1;
    out = fopen(argv[3], "wb");
    if (out == NULL) {
        perror(argv[3]);
        return 1;
    }
    tinyvae_rng_init(&rng, seed);
    for (i = 0; i < count; i++) {
        /* Conditional decoders: label i mod classes, as `tinyvae sample` without --label. */
        int32_t label = TINYVAE_MODEL_CLASSES > 0 ? (int32_t)(i % TINYVAE_MODEL_CLASSES) : TINYVAE_NO_LABEL;
        rc = tinyvae_sample(&m, &rng, label, arena, sizeof arena, pixels, sizeof pixels);
        if (rc != TINYVAE_OK) return fail("tinyvae_sample", rc);
        if (fwrite(pixels, 1, sizeof pixels, out) != sizeof pixels) {
            perror(argv[3]);
            return 1;
        }
    }
    if (fclose(out) != 0) {
        perror(argv[3]);
        return 1;
    }
    printf("sampled %lu digits (seed %llu, %lu MACs each) into %s\n", count, seed,
           (unsigned long)tinyvae_macs(&m), argv[3]);
    return 0;
}
