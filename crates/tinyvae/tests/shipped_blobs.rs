//! Every blob shipped in `models/` still parses and computes the same bytes as before format
//! version 2 (convolutions) was added: dense models are unchanged, byte for byte.
//!
//! The hashes below were recorded with the runtime as it was before the version-2 work (commit
//! c7c543c, `format::VERSION` 1), by running this file there with `TINYVAE_PRINT_HASHES=1`
//! (`cargo test --release -p tinyvae --test shipped_blobs -- --nocapture`), which prints the
//! table instead of checking it. Each is an FNV-1a 64 hash over the outputs of a fixed run
//! with the scalar reference kernels (int8 bytes, f32 bit patterns; the reference float
//! kernels are deterministic on every IEEE target): decoders decode 5 Gaussian z's from
//! `Rng::new(2024)` to pixels and to f32 values (labels 0, 3, 7, 9, 1 for conditional ones);
//! encoders encode 4 pseudo-random images from `Rng::new(77)` as pixels and as [0, 1] values
//! (labels 2, 5, 8, 0), hashing mu and log-variance.

use std::path::{Path, PathBuf};

use tinyvae::kernels::REFERENCE;
use tinyvae::{AlignedBlob, Autoencoder, Classifier, Decoder, Encoder, Model, ModelKind, Rng, Score};

/// `write::example_decoder()`: (length, FNV-1a 64 of its bytes), recorded as the table below.
const EXAMPLE_DECODER: (usize, u64) = (1280, 0xed70_7ea3_f1d5_4cec);

/// (path under `models/`, hash of the run described above).
const SHIPPED: &[(&str, u64)] = &[
    ("mnist-aae/decoder.f16.tvae", 0xcdb09e216442d81c),
    ("mnist-aae/decoder.int8.tvae", 0xe7c20cf8142ee430),
    ("mnist-aae/encoder.int8.tvae", 0x92ec887dcb085ae5),
    ("mnist-ae/decoder.f16.tvae", 0x27e5f1d0782df1dd),
    ("mnist-ae/decoder.int8.tvae", 0x1b445d047ab6ce40),
    ("mnist-ae/encoder.int8.tvae", 0xa5a68362379cdf41),
    ("mnist-cae/decoder.f16.tvae", 0xc5e9a6b95e353ba2),
    ("mnist-cae/decoder.int8.tvae", 0x76104574714bbf24),
    ("mnist-cae/encoder.int8.tvae", 0xa3f98c289f67f471),
    ("mnist-cvae/decoder.f16.tvae", 0x99b89eca799b8d2a),
    ("mnist-cvae/decoder.int8.tvae", 0x4ffa3bc126850efb),
    ("mnist-cvae/encoder.int8.tvae", 0x362b69256c7f0729),
    ("mnist-dae/decoder.f16.tvae", 0xf365d8766527d78a),
    ("mnist-dae/decoder.int8.tvae", 0xf0aa6989f9088390),
    ("mnist-dae/encoder.int8.tvae", 0x69eeae15e20f5965),
    // Re-recorded when M2 was retrained (72 epochs) with its classifier exported (format
    // version 6): new weights, so new bytes; the runtime's arithmetic is what the other
    // entries check. Re-recorded again for the KL-weight-4 M2 (new weights again).
    // M1+M2 as one image classifier (convolutions, then q(y|z1)); re-recorded for its KL
    // weight 0.5 (new weights).
    ("mnist-m1m2/classifier.int8.tvae", 0xfe912e06f68f1c42),
    ("mnist-m2/classifier.int8.tvae", 0x7d7c38e9bda8b633),
    ("mnist-m2/decoder.f16.tvae", 0xfba576ff33d0b40a),
    ("mnist-m2/decoder.int8.tvae", 0x69f0fe1840b5fe38),
    ("mnist-m2/encoder.int8.tvae", 0xbbdce0f4361edae5),
    ("mnist-vae-gaussian/decoder.f16.tvae", 0xda9a2d85d3058ed5),
    ("mnist-vae-gaussian/decoder.int8.tvae", 0x6a111ef0ea581ed3),
    ("mnist-vae-gaussian/encoder.int8.tvae", 0xbf5acb6fd8f4a729),
    ("mnist-vae-z2/decoder.f16.tvae", 0x33eeb3c4862ad9de),
    ("mnist-vae-z2/decoder.int8.tvae", 0xc7f4c25f3e1b3789),
    ("mnist-vae-z2/encoder.int8.tvae", 0x12ce03e18c906b4d),
    ("mnist-vae-z20/decoder.f16.tvae", 0x389268b40e7a00f2),
    ("mnist-vae-z20/decoder.int8.tvae", 0x4c54048f21dbc860),
    ("mnist-vae-z20/encoder.int8.tvae", 0x7820c728e461063d),
    ("mnist-vae-z5/decoder.f16.tvae", 0xdb2495a051642754),
    ("mnist-vae-z5/decoder.int8.tvae", 0xb2bbc9e7ea25a5c7),
    ("mnist-vae-z5/encoder.int8.tvae", 0xd3db6283e294bec5),
];

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 = (self.0 ^ x as u64).wrapping_mul(0x0100_0000_01b3);
        }
    }
    fn floats(&mut self, v: &[f32]) {
        for x in v {
            self.bytes(&x.to_bits().to_le_bytes());
        }
    }
}

fn models_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../models")
}

/// The hash of the fixed run of `blob`, computed with `kernels`; also checks that the
/// batched run of int8 blobs gives the same bytes as the fastest kernels.
fn run_hash(blob: &[u8]) -> u64 {
    let model = Model::parse(blob).expect("parse");
    let mut h = Fnv::new();
    let classes = model.meta().classes as u32;
    match model.kind() {
        ModelKind::Decoder => {
            let d = Decoder::new(&model).unwrap().with_kernels(&REFERENCE);
            let batch = 5;
            let labels: Vec<u32> = [0u32, 3, 7, 9, 1].iter().map(|l| l % classes.max(1)).collect();
            let labels = (classes > 0).then_some(&labels[..]);
            let mut z = vec![0f32; batch * d.latent_dim()];
            Rng::new(2024).fill_gaussian(&mut z);
            let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
            let mut px = vec![0u8; batch * d.output_len()];
            d.decode_batch(&z, labels, batch, &mut arena, &mut px).unwrap();
            h.bytes(&px);
            let mut out = vec![0f32; batch * d.output_len()];
            d.decode_batch_f32(&z, labels, batch, &mut arena, &mut out).unwrap();
            h.floats(&out);
            if model.precision() == tinyvae::Precision::Int8 {
                let fast = Decoder::new(&model).unwrap();
                let mut px2 = vec![0u8; px.len()];
                fast.decode_batch(&z, labels, batch, &mut arena, &mut px2).unwrap();
                assert_eq!(px, px2, "best kernels differ from the reference");
            }
        }
        ModelKind::Encoder => {
            let e = Encoder::new(&model).unwrap().with_kernels(&REFERENCE);
            let batch = 4;
            let labels: Vec<u32> = [2u32, 5, 8, 0].iter().map(|l| l % classes.max(1)).collect();
            let labels = (classes > 0).then_some(&labels[..]);
            let mut rng = Rng::new(77);
            let px: Vec<u8> = (0..batch * e.input_len()).map(|_| rng.next_u64() as u8).collect();
            let x: Vec<f32> = px.iter().map(|&p| p as f32 / 255.0).collect();
            let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
            let (mut mu, mut logvar) = (vec![0f32; batch * e.latent_dim()], vec![0f32; batch * e.latent_dim()]);
            e.encode_pixels_batch(&px, labels, batch, &mut arena, &mut mu, &mut logvar).unwrap();
            h.floats(&mu);
            h.floats(&logvar);
            e.encode_batch(&x, labels, batch, &mut arena, &mut mu, &mut logvar).unwrap();
            h.floats(&mu);
            h.floats(&logvar);
        }
        ModelKind::Autoencoder => {
            // 3 pseudo-random feature vectors in [0, 1): reconstructions and scores, and the
            // same scores on the fastest kernels.
            let ae = Autoencoder::new(&model).unwrap().with_kernels(&REFERENCE);
            let batch = 3;
            let mut rng = Rng::new(77);
            let x: Vec<f32> = (0..batch * ae.features()).map(|_| rng.below(1000) as f32 / 1000.0).collect();
            let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
            let mut out = vec![0f32; x.len()];
            ae.reconstruct_batch(&x, batch, &mut arena, &mut out).unwrap();
            h.floats(&out);
            let mut scores = vec![Score { raw: 0, unit: 0.0 }; batch];
            ae.score_batch(&x, batch, &mut arena, &mut scores).unwrap();
            scores.iter().for_each(|s| h.bytes(&s.raw.to_le_bytes()));
            let mut fast = scores.clone();
            Autoencoder::new(&model).unwrap().score_batch(&x, batch, &mut arena, &mut fast).unwrap();
            assert_eq!(scores, fast, "best kernels differ from the reference");
        }
        ModelKind::Classifier => {
            // 4 pseudo-random images: classes and logits on the reference, and the same
            // classes on the fastest kernels.
            let c = Classifier::new(&model).unwrap().with_kernels(&REFERENCE);
            let batch = 4;
            let mut rng = Rng::new(77);
            let px: Vec<u8> = (0..batch * c.input_len()).map(|_| rng.next_u64() as u8).collect();
            let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
            let mut classes = vec![0u32; batch];
            c.classify_pixels_batch(&px, batch, &mut arena, &mut classes).unwrap();
            classes.iter().for_each(|k| h.bytes(&k.to_le_bytes()));
            let mut logits = vec![0f32; batch * c.classes()];
            c.logits(&mut arena, batch, &mut logits).unwrap();
            h.floats(&logits);
            let mut fast = vec![0u32; batch];
            Classifier::new(&model).unwrap().classify_pixels_batch(&px, batch, &mut arena, &mut fast).unwrap();
            assert_eq!(classes, fast, "best kernels differ from the reference");
        }
        ModelKind::Generic => panic!("no generic blobs are shipped"),
    }
    h.0
}

fn shipped_blobs() -> Vec<String> {
    let mut found = Vec::new();
    for dir in std::fs::read_dir(models_dir()).unwrap() {
        let dir = dir.unwrap().path();
        if !dir.is_dir() {
            continue;
        }
        for f in std::fs::read_dir(&dir).unwrap() {
            let f = f.unwrap().path();
            if f.extension().is_some_and(|e| e == "tvae") {
                let rel = f.strip_prefix(models_dir()).unwrap().to_string_lossy().replace('\\', "/");
                found.push(rel);
            }
        }
    }
    found.sort();
    found
}

#[test]
fn every_shipped_blob_decodes_to_the_recorded_bytes() {
    let print = std::env::var_os("TINYVAE_PRINT_HASHES").is_some();
    let mut computed = Vec::new();
    for rel in shipped_blobs() {
        let blob = AlignedBlob::new(&std::fs::read(models_dir().join(&rel)).unwrap());
        computed.push((rel.clone(), run_hash(&blob)));
    }
    if print {
        for (rel, h) in &computed {
            println!("    (\"{rel}\", {h:#018x}),");
        }
        return;
    }
    // Every recorded blob is still there and computes what it did; blobs added since are only
    // required to parse and run (above).
    for &(rel, want) in SHIPPED {
        let got = computed.iter().find(|(r, _)| r == rel).map(|&(_, h)| h);
        assert_eq!(got, Some(want), "{rel}: hash of the fixed run changed (or the blob is gone)");
    }
    assert!(SHIPPED.len() >= 30, "the table lists every blob shipped at the time");
}

/// The writer still writes dense blobs byte for byte as before (version 1, every reserved
/// byte zero), so that old firmware reads what the new quantizer makes. Hash recorded as the
/// table above.
#[test]
fn the_writer_writes_dense_blobs_as_before() {
    let blob = tinyvae::format::write::example_decoder();
    let mut h = Fnv::new();
    h.bytes(&blob);
    if std::env::var_os("TINYVAE_PRINT_HASHES").is_some() {
        println!("example_decoder: {} bytes, {:#018x}", blob.len(), h.0);
        return;
    }
    assert_eq!(u16::from_le_bytes([blob[4], blob[5]]), 1);
    assert_eq!((blob.len(), h.0), (EXAMPLE_DECODER.0, EXAMPLE_DECODER.1));
}

/// The shipped VAE decoders carry the learned priors their model cards fitted (`tinyvae
/// fit-prior`): one mixture, or one per label for the CVAE and M2. Sampling draws from it, and
/// `with_standard_prior` still from N(0, I), the same pixels as a decode of N(0, I) draws.
#[test]
fn shipped_vae_decoders_sample_their_learned_priors() {
    let expected = [
        ("mnist-vae-z20", 50, 1),
        ("mnist-vae-gaussian", 50, 1),
        ("mnist-conv-vae", 50, 1),
        ("mnist-vae-z5", 50, 1),
        ("mnist-vae-z2", 30, 1),
        ("mnist-cvae", 39, 10),
        ("mnist-m2", 60, 10),
    ];
    for (model, components, groups) in expected {
        for precision in ["int8", "f16"] {
            let path = models_dir().join(model).join(format!("decoder.{precision}.tvae"));
            let blob = AlignedBlob::new(&std::fs::read(&path).unwrap());
            let m = Model::parse(&blob).unwrap();
            let prior = m.prior().unwrap_or_else(|| panic!("{} stores no prior", path.display()));
            assert_eq!(
                (prior.components(), prior.groups(), m.version()),
                (components, groups, 4),
                "{}",
                path.display()
            );
            let d = Decoder::new(&m).unwrap().with_kernels(&REFERENCE);
            let mut arena = vec![0u8; m.arena_size()];
            let (mut learned, mut standard, mut decoded) = ([0u8; 784], [0u8; 784], [0u8; 784]);
            let label = if d.classes() > 0 { Some(3) } else { None };
            let sample = |d: &Decoder, arena: &mut [u8], out: &mut [u8; 784]| match label {
                Some(l) => d.sample_conditional(&mut Rng::new(9), l, arena, out),
                None => d.sample(&mut Rng::new(9), arena, out),
            };
            sample(&d, &mut arena, &mut learned).unwrap();
            sample(&d.with_standard_prior(), &mut arena, &mut standard).unwrap();
            let mut z = vec![0f32; d.latent_dim()];
            Rng::new(9).fill_gaussian(&mut z);
            match label {
                Some(l) => d.decode_conditional(&z, l, &mut arena, &mut decoded),
                None => d.decode(&z, &mut arena, &mut decoded),
            }
            .unwrap();
            assert_eq!(standard, decoded, "{}", path.display());
            assert_ne!(learned, standard, "{}", path.display());
        }
    }
}
