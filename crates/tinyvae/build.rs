//! Tells the crate whether the target has the ARMv7E-M DSP instructions. On stable Rust,
//! `cfg(target_feature = "dsp")` is never set (Arm target features are unstable), but every
//! `thumbv7em-*` target is a Cortex-M4/M7 and always has them.
fn main() {
    println!("cargo::rustc-check-cfg=cfg(tinyvae_armv7em_dsp)");
    println!("cargo::rustc-check-cfg=cfg(tinyvae_armv7em_fpu)");
    println!("cargo::rerun-if-changed=build.rs");
    let target = std::env::var("TARGET").unwrap_or_default();
    if target.starts_with("thumbv7em") {
        println!("cargo::rustc-cfg=tinyvae_armv7em_dsp");
        // The hard-float targets have the single-precision FPU (Cortex-M4F, M7).
        if target.ends_with("eabihf") {
            println!("cargo::rustc-cfg=tinyvae_armv7em_fpu");
        }
    }
}
