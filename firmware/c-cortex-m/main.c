/* The bare-metal C example: samples 8 digits with the tinyvae C API on a Cortex-M4 (QEMU's
   mps2-an386) and writes their pixels to samples.raw on the host through semihosting, the
   layout and bytes of `tinyvae sample --count 8 --seed 1 --raw`. It reports the instructions of
   each draw and decode (SysTick under `-icount shift=0`) and the RAM one decode needs: the arena
   plus the stack the library used (measured by painting the stack). */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "model.h"
#include "tinyvae.h"

#define SAMPLES 8
#define SEED 1

/* From newlib's librdimon: opens stdin, stdout and stderr over semihosting. */
extern void initialise_monitor_handles(void);

static uint8_t arena[TINYVAE_MODEL_ARENA_SIZE] __attribute__((aligned(16)));
static uint8_t pixels[TINYVAE_MODEL_OUTPUT_SIZE];

/* Instruction counting: under `qemu-system-arm -icount shift=0` every instruction is 1 ns of
   virtual time and SysTick counts that clock, so ticks times the instructions per tick
   (calibrated on a loop of known length) count instructions, exact to one tick. On hardware the
   same code counts core cycles. */
#define SYST_CSR (*(volatile uint32_t *)0xE000E010u)
#define SYST_RVR (*(volatile uint32_t *)0xE000E014u)
#define SYST_CVR (*(volatile uint32_t *)0xE000E018u)

static void systick_start(void) {
    SYST_RVR = 0xFFFFFFu;
    SYST_CVR = 0;
    SYST_CSR = 5; /* enable, processor clock, no interrupt */
}

static uint32_t systick_now(void) { return SYST_CVR; }

/* Ticks from `start` (the counter counts down and wraps at 2^24). */
static uint32_t ticks_since(uint32_t start) { return (start - systick_now()) & 0xFFFFFFu; }

/* Instructions per tick: a loop of exactly 2 instructions per turn (subs, bne), 2^17 turns. */
static uint32_t calibrate(void) {
    uint32_t n = 1u << 17, start = systick_now(), ticks;
    __asm__ volatile("1: subs %0, %0, #1\n\tbne 1b" : "+r"(n) : : "cc");
    ticks = ticks_since(start);
    return ticks ? (2u << 17) / ticks : 0;
}

/* Stack painting: fill the PAINT bytes below the current stack pointer with a pattern, run the
   call, and find the deepest word it changed. */
#define PAINT 16384u
#define PATTERN 0xA5C3A5C3u

static uintptr_t stack_pointer(void) {
    uintptr_t sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    return sp;
}

static __attribute__((noinline)) void paint(uintptr_t sp) {
    volatile uint32_t *p = (volatile uint32_t *)(sp - PAINT);
    /* Leave this function's own frame alone: stop 256 bytes below the caller's sp. */
    while ((uintptr_t)p < sp - 256u) *p++ = PATTERN;
}

static uint32_t deepest(uintptr_t sp) {
    const volatile uint32_t *p = (const volatile uint32_t *)(sp - PAINT);
    while ((uintptr_t)p < sp && *p == PATTERN) p++;
    return (uint32_t)(sp - (uintptr_t)p);
}

int main(void) {
    tinyvae_model m;
    tinyvae_rng rng;
    FILE *out;
    uint32_t stack = 0, per_tick, fewest = 0xFFFFFFFFu, most = 0;
    int32_t rc;
    int i;
    initialise_monitor_handles();
    systick_start();
    per_tick = calibrate();
    rc = tinyvae_model_parse(tinyvae_model_blob, TINYVAE_MODEL_BLOB_SIZE, &m);
    if (rc != TINYVAE_OK) {
        printf("error: tinyvae_model_parse: %s\n", tinyvae_error_message(rc));
        return 1;
    }
    printf("model: decoder, latent %u, blob %u B in flash, arena %u B, %u MACs per decode\n",
           (unsigned)tinyvae_latent_size(&m), (unsigned)TINYVAE_MODEL_BLOB_SIZE, (unsigned)TINYVAE_MODEL_ARENA_SIZE,
           (unsigned)tinyvae_macs(&m));
    out = fopen("samples.raw", "wb");
    if (out == NULL) {
        printf("error: cannot open samples.raw on the host\n");
        return 1;
    }
    tinyvae_rng_init(&rng, SEED);
    for (i = 0; i < SAMPLES; i++) {
        int32_t label = TINYVAE_MODEL_CLASSES > 0 ? (int32_t)(i % TINYVAE_MODEL_CLASSES) : TINYVAE_NO_LABEL;
        uintptr_t sp = stack_pointer();
        uint32_t used;
        uint32_t start, instructions;
        paint(sp);
        start = systick_now();
        rc = tinyvae_sample(&m, &rng, label, arena, sizeof arena, pixels, sizeof pixels);
        instructions = ticks_since(start) * per_tick;
        used = deepest(sp);
        if (instructions < fewest) fewest = instructions;
        if (instructions > most) most = instructions;
        if (rc != TINYVAE_OK) {
            printf("error: tinyvae_sample: %s\n", tinyvae_error_message(rc));
            return 1;
        }
        if (used > stack) stack = used;
        if (fwrite(pixels, 1, sizeof pixels, out) != sizeof pixels) {
            printf("error: cannot write samples.raw\n");
            return 1;
        }
    }
    fclose(out);
    printf("summary: %d samples; draw and decode %lu..%lu instructions (%lu per tick)\n", SAMPLES,
           (unsigned long)fewest, (unsigned long)most, (unsigned long)per_tick);
    printf("summary: RAM for one decode: arena %u B + decode stack %u B = %u B\n", (unsigned)sizeof arena,
           (unsigned)stack, (unsigned)(sizeof arena + stack));
    printf("summary: wrote samples.raw (%d x %u B)\nPASS\n", SAMPLES, (unsigned)sizeof pixels);
    return 0;
}
