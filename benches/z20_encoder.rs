//! Per-sample latency of the shipped z20 encoder (`models/mnist-vae-z20/encoder.onnx`): the
//! runtime at int8 (every usable kernel table), f16 and f32 against tract f32 on the same
//! ONNX, at batch 1 and 64, plus the weight-streaming floor. See `benches/README.md`.
//!
//! `cargo bench -p tinyvae-cli --bench z20_encoder`

mod common;

fn main() {
    common::run(common::Net::Encoder);
}
