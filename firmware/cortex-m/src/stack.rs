//! Stack high-water marks by painting: every free word below the stack pointer gets a
//! pattern, and after the code under test the lowest word that lost it shows how deep the
//! stack went. The stack grows down from `_stack_start` (the top of RAM) towards `_stack_end`
//! (the end of `.bss`), both from cortex-m-rt's linker script.

use core::arch::asm;

/// Unlikely as data: neither a small integer, nor a RAM or flash address, nor a float in use.
const PAINT: u32 = 0x5AFE_C0DE;

extern "C" {
    static _stack_start: u32;
    static _stack_end: u32;
}

/// Top of the stack: the initial stack pointer.
pub fn top() -> usize {
    &raw const _stack_start as usize
}

fn limit() -> usize {
    &raw const _stack_end as usize
}

/// The current stack pointer.
#[inline(always)]
pub fn pointer() -> usize {
    let sp: usize;
    // SAFETY: reads a register.
    unsafe { asm!("mov {}, sp", out(reg) sp, options(nomem, nostack, preserves_flags)) };
    sp
}

/// Paints every word from the end of `.bss` up to the stack pointer. Inlined and register-only
/// so that it paints below the caller's own frame and writes nothing that is in use: the words
/// below the stack pointer hold no live data (no interrupts run here).
#[inline(always)]
pub fn paint() {
    // SAFETY: writes only the free words in `_stack_end..sp`, which belong to the stack and are
    // unused; the loop itself uses no stack.
    unsafe {
        asm!(
            "mov {end}, sp",
            "2:",
            "cmp {at}, {end}",
            "bhs 3f",
            "str {paint}, [{at}], #4",
            "b 2b",
            "3:",
            at = inout(reg) limit() => _,
            end = out(reg) _,
            paint = in(reg) PAINT,
            options(nostack),
        );
    }
}

/// Lowest stack address written since the last [`paint`]: the high-water mark.
pub fn lowest_touched() -> usize {
    let mut at = limit();
    // The scan stops at the first word that lost the paint; this function's own frame lies
    // above the deepest frame of the code that ran before it, so it does not hide that mark.
    while at < top() {
        // SAFETY: `at` is a word-aligned address in the stack region, which is mapped RAM.
        if unsafe { core::ptr::read_volatile(at as *const u32) } != PAINT {
            return at;
        }
        at += 4;
    }
    top()
}
