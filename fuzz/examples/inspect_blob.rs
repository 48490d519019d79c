//! Prints what the `blob` target sees in one input (a debugging aid for crashes):
//! `cargo run --release --manifest-path fuzz/Cargo.toml --example inspect_blob -- FILE`.

use tinyvae::{AlignedBlob, Autoencoder, Decoder, Encoder, Model};

fn main() {
    let path = std::env::args().nth(1).expect("usage: inspect_blob FILE");
    let bytes = std::fs::read(&path).expect("read");
    let mut blob = AlignedBlob::new(&bytes);
    let mut model = Model::parse(&blob);
    if let Err(e) = &model {
        println!("as given: {e}; with the header's length and CRC fixed:");
        blob = AlignedBlob::new(&tinyvae_fuzz::blob::with_fixed_header(&bytes));
        model = Model::parse(&blob);
    }
    let model = match model {
        Ok(m) => m,
        Err(e) => return println!("parse error: {e}"),
    };
    println!("version {}, {} {}, meta {:?}", model.version(), model.kind(), model.precision(), model.meta());
    println!(
        "arena {} bytes, {} MACs, {} nodes, {} tensors",
        model.arena_size(),
        model.macs(),
        model.node_count(),
        model.tensor_count()
    );
    for k in 0..model.input_count() {
        println!("input {k}: {:?}", model.input(k));
    }
    for k in 0..model.output_count() {
        println!("output {k}: {:?}", model.output(k));
    }
    for i in 0..model.node_count() {
        println!("node {i}: {:?}", model.node(i));
    }
    println!("Decoder::new: {:?}", Decoder::new(&model).map(|_| ()));
    println!("Encoder::new: {:?}", Encoder::new(&model).map(|_| ()));
    println!("Autoencoder::new: {:?}", Autoencoder::new(&model).map(|_| ()));
}
