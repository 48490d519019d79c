//! Generates the flash-resident weights of the test program's fixed layers and hands
//! `memory.x` to the linker.

use std::{env, fs, path::PathBuf};

/// xorshift64*: the same bytes on every host, no dependency.
fn bytes(seed: u64, n: usize, map: impl Fn(u64) -> u8) -> Vec<u8> {
    let mut s = seed;
    (0..n)
        .map(|_| {
            s ^= s >> 12;
            s ^= s << 25;
            s ^= s >> 27;
            map(s.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 32)
        })
        .collect()
}

fn main() {
    let out = PathBuf::from(env::var_os("OUT_DIR").unwrap());
    // int8 weights in [-127, 127] as the blob stores them, 16 spare bytes so that a slice
    // starting one byte in (misaligned rows) still holds the whole matrix.
    let weight = |v: u64| ((v % 255) as i32 - 127) as i8 as u8;
    for (name, rows, cols, seed) in [("w400x20", 400, 20, 1), ("w784x400", 784, 400, 2), ("w400x784", 400, 784, 3)] {
        let w = bytes(seed, rows * cols + 16, weight);
        // The same weights widened to little-endian int16, for the opt-in int16-weight kernel.
        let wide: Vec<u8> = w.iter().flat_map(|&b| (b as i8 as i16).to_le_bytes()).collect();
        fs::write(out.join(format!("{name}.bin")), w).unwrap();
        fs::write(out.join(format!("{name}_i16.bin")), wide).unwrap();
    }
    fs::copy("memory.x", out.join("memory.x")).unwrap();
    println!("cargo:rustc-link-search={}", out.display());
    println!("cargo:rerun-if-changed=memory.x");
    println!("cargo:rerun-if-changed=build.rs");
}
