/* A C program that classifies images with the tinyvae C API: a classifier blob that `tinyvae
   deploy --lang c` wrote (model.h, model.c; e.g. models/mnist-m2/classifier.int8.tvae), the
   static library of crates/tinyvae-c, and this file.

       classify IMAGES.raw OUT.classes

   reads 0..=255 images of TINYVAE_MODEL_INPUT_SIZE bytes each (the layout of `tinyvae sample
   --raw`) and writes one byte per image, its class: the bytes `tinyvae classify --predicted`
   writes for the same images. Before classifying it checks that bad calls come back as error
   codes, not crashes. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "model.h"
#include "tinyvae.h"

#if TINYVAE_MODEL_KIND != 4
#error "classify.c needs a classifier's model.h (TINYVAE_KIND_CLASSIFIER)"
#endif

static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t image[TINYVAE_MODEL_INPUT_SIZE];

static int fail(const char *what, int32_t code) {
    fprintf(stderr, "error: %s: %s (%d)\n", what, tinyvae_error_message(code), (int)code);
    return 1;
}

/* Misuse gives the documented code. */
static int check_errors(const tinyvae_model *m) {
    uint32_t class = 0;
    tinyvae_rng rng;
    tinyvae_rng_init(&rng, 1);
    if (tinyvae_classify(m, image, sizeof image - 1, arena, sizeof arena, &class) != TINYVAE_ERR_LENGTH
        || tinyvae_classify(m, image, sizeof image, arena, 16, &class) != TINYVAE_ERR_ARENA
        || tinyvae_classify(m, image, sizeof image, arena, sizeof arena, NULL) != TINYVAE_ERR_NULL
        || tinyvae_sample(m, &rng, TINYVAE_NO_LABEL, arena, sizeof arena, image, sizeof image) != TINYVAE_ERR_KIND) {
        fprintf(stderr, "error: a misuse was not refused with its error code\n");
        return 1;
    }
    printf("ok: 4 misuses gave their error codes\n");
    return 0;
}

int main(int argc, char **argv) {
    tinyvae_model m;
    FILE *in, *out;
    unsigned long count = 0;
    int32_t code;
    if (argc != 3) {
        fprintf(stderr, "usage: %s IMAGES.raw OUT.classes\n", argv[0]);
        return 2;
    }
    code = tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m);
    if (code != TINYVAE_OK) {
        return fail("tinyvae_model_parse", code);
    }
    if (tinyvae_model_kind(&m) != TINYVAE_KIND_CLASSIFIER) {
        fprintf(stderr, "error: the model is not a classifier\n");
        return 1;
    }
    if (check_errors(&m) != 0) {
        return 1;
    }
    in = fopen(argv[1], "rb");
    if (in == NULL) {
        perror(argv[1]);
        return 1;
    }
    out = fopen(argv[2], "wb");
    if (out == NULL) {
        perror(argv[2]);
        fclose(in);
        return 1;
    }
    while (fread(image, 1, sizeof image, in) == sizeof image) {
        uint32_t class = 0;
        uint8_t byte;
        code = tinyvae_classify(&m, image, sizeof image, arena, sizeof arena, &class);
        if (code != TINYVAE_OK) {
            fclose(in);
            fclose(out);
            return fail("tinyvae_classify", code);
        }
        byte = (uint8_t)class;
        if (fwrite(&byte, 1, 1, out) != 1) {
            perror(argv[2]);
            fclose(in);
            fclose(out);
            return 1;
        }
        count++;
    }
    fclose(in);
    if (fclose(out) != 0) {
        perror(argv[2]);
        return 1;
    }
    printf("classified %lu images into %u classes with %lu MACs each; wrote %s\n", count,
           (unsigned)tinyvae_classes(&m), (unsigned long)TINYVAE_MODEL_MACS, argv[2]);
    return 0;
}
