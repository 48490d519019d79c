/* Reset and fault handlers of the C examples on a Cortex-M4F (or a Cortex-M3): turn the FPU on
   where there is one (the thumbv7em-none-eabihf library uses the hard-float ABI), copy .data,
   clear .bss, run main, and leave QEMU through semihosting with main's status. */
#include <stdint.h>

extern uint32_t _sidata, _sdata, _edata, _sbss, _ebss, __stack_top;
int main(void);
void semihosting_exit(int status) __attribute__((noreturn));

/* SYS_EXIT with ADP_Stopped_ApplicationExit (status 0) or ADP_Stopped_RunTimeErrorUnknown. */
void semihosting_exit(int status) {
    register uint32_t op __asm__("r0") = 0x18;
    register uint32_t reason __asm__("r1") = status == 0 ? 0x20026u : 0x20023u;
    for (;;) {
        __asm__ volatile("bkpt 0xab" : : "r"(op), "r"(reason) : "memory");
    }
}

void Reset_Handler(void) {
    uint32_t *src = &_sidata, *dst = &_sdata;
#if defined(__ARM_FP)
    volatile uint32_t *cpacr = (volatile uint32_t *)0xE000ED88u;
    *cpacr |= 0xFu << 20; /* CP10 and CP11: full access to the FPU */
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    while (dst < &_edata) *dst++ = *src++;
    for (dst = &_sbss; dst < &_ebss; dst++) *dst = 0;
    semihosting_exit(main());
}

static void fault(void) { semihosting_exit(1); }

/* What the library calls on a panic: it does not return. */
void abort(void) { semihosting_exit(1); }

__attribute__((section(".vector_table"), used)) static void (*const vectors[16])(void) = {
    (void (*)(void))&__stack_top, Reset_Handler, fault, fault, fault, fault, fault, 0, 0, 0, 0,
    fault, fault, 0, fault, fault,
};
