//! Per-sample latency of the shipped conv VAE's decoder (`models/mnist-conv-vae/decoder.onnx`):
//! the runtime at int8 (every usable kernel table), f16 and f32 against tract f32 on the same
//! ONNX, at batch 1 and 64, plus the weight-streaming floor. See `benches/README.md`.
//!
//! `cargo bench -p tinyvae-cli --bench conv_decoder`

mod common;

fn main() {
    let Some((onnx, source)) = common::model_onnx(common::Net::ConvDecoder) else { return };
    let prepared = match common::prepare(common::Net::ConvDecoder, onnx) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("conv_decoder: cannot prepare the model: {e}");
            std::process::exit(1);
        }
    };
    let mut c = common::criterion();
    common::bench(&mut c, &prepared);
    c.final_summary();
    common::summary(&prepared, source);
}
