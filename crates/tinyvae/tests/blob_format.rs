//! The blob format end to end: what the writer produces the parser accepts with the same
//! values, and no corruption, truncation or hostile edit makes the runtime panic.

use tinyvae::format::write::{self, BlobSpec, MetaSpec, NodeSpec, TensorSpec};
use tinyvae::format::{self, ActKind, DType, EncoderHead, OutputKind, WeightLayout};
use tinyvae::{Decoder, Error, Model, ModelKind, Precision, Rng};

fn decode_everything(blob: &[u8]) -> Result<Vec<u8>, Error> {
    let model = Model::parse(blob)?;
    let mut arena = vec![0u8; model.arena_size_for_batch(3).unwrap()];
    let decoder = Decoder::new(&model)?;
    let mut px = vec![0u8; decoder.output_len() * 3];
    let z: Vec<f32> = (0..decoder.latent_dim() * 3).map(|i| i as f32 * 0.37 - 1.0).collect();
    decoder.decode_batch(&z, None, 3, &mut arena, &mut px)?;
    let mut f = vec![0f32; decoder.output_len()];
    decoder.decode_f32(&z[..decoder.latent_dim()], &mut arena, &mut f)?;
    Ok(px)
}

#[test]
fn written_blob_parses_back_with_the_same_fields() {
    let blob = write::example_decoder();
    let m = Model::parse(&blob).expect("parse");
    assert_eq!(m.kind(), ModelKind::Decoder);
    assert_eq!(m.precision(), Precision::Int8);
    assert_eq!(m.node_count(), 3);
    assert_eq!(m.tensor_count(), 4);
    assert_eq!(m.arena_size(), 48 + format::ALIGN);
    assert_eq!(format::arena_size_of(&blob), Some(m.arena_size()));
    assert_eq!(m.macs(), 2 * 8 + 8 * 16);
    let out = m.output(0).unwrap();
    assert!(out.is_pixel_quantized());
    assert_eq!(out.len, 16);
    let meta = m.meta();
    assert_eq!((meta.latent, meta.width, meta.height), (2, 4, 4));
    let n0 = m.node(0).unwrap();
    assert_eq!((n0.rows, n0.cols, n0.act_min, n0.act_max), (8, 2, -128, 127));
    assert_eq!(&blob[n0.weights.clone()].len(), &16);
    // Writing the same spec twice gives the same bytes (no hidden state, no padding garbage).
    assert_eq!(blob, write::example_decoder());
}

#[test]
fn a_float_blob_round_trips_and_computes_the_layer() {
    // y = relu(W x + b) with W = [[1, -2], [0.5, 0.25]], b = [0.5, -1]; then sigmoid.
    let w: Vec<f32> = vec![1.0, -2.0, 0.5, 0.25];
    let spec = BlobSpec {
        kind: ModelKind::Decoder,
        precision: Precision::F32,
        arena_bytes: 32,
        tensors: vec![
            TensorSpec::flat(DType::F32, 2, 0, 0.0, 0),
            TensorSpec::flat(DType::F32, 2, 16, 0.0, 0),
            TensorSpec::flat(DType::F32, 2, 0, 0.0, 0),
        ],
        nodes: vec![
            NodeSpec::Dense {
                input: 0,
                output: 1,
                rows: 2,
                cols: 2,
                weight_dtype: DType::F32,
                layout: WeightLayout::RowMajor,
                weights: w.iter().flat_map(|v| v.to_le_bytes()).collect(),
                bias: [0.5f32, -1.0].iter().flat_map(|v| v.to_le_bytes()).collect(),
                requant: vec![],
                act: ActKind::Relu,
                act_min: 0,
                act_max: 0,
            },
            NodeSpec::Activation { input: 1, output: 2, act: ActKind::Sigmoid, alpha: 0.0 },
        ],
        inputs: vec![0],
        outputs: vec![2],
        meta: MetaSpec {
            latent: 2,
            classes: 0,
            width: 0,
            height: 0,
            output_kind: OutputKind::Bernoulli,
            head: EncoderHead::None,
        },
    };
    let blob = write::write(&spec);
    let m = Model::parse(&blob).unwrap();
    let d = Decoder::new(&m).unwrap();
    let mut arena = vec![0u8; m.arena_size()];
    let mut out = [0f32; 2];
    d.decode_f32(&[3.0, 1.0], &mut arena, &mut out).unwrap();
    let sig = |v: f32| 1.0 / (1.0 + (-v).exp());
    // relu(3 - 2 + 0.5) = 1.5 ; relu(1.5 + 0.25 - 1) = 0.75
    assert!((out[0] - sig(1.5)).abs() < 1e-6 && (out[1] - sig(0.75)).abs() < 1e-6, "{out:?}");
    let mut px = [0u8; 2];
    d.decode(&[3.0, 1.0], &mut arena, &mut px).unwrap();
    assert_eq!(px, [(sig(1.5) * 255.0).round() as u8, (sig(0.75) * 255.0).round() as u8]);
}

#[test]
fn every_flipped_byte_is_rejected() {
    let blob = write::example_decoder();
    // Under Miri (scripts/miri.sh), which checks the parser's memory accesses rather than its
    // coverage, every 13th byte: each flip re-reads the whole blob for its checksum.
    for i in (0..blob.len()).step_by(if cfg!(miri) { 13 } else { 1 }) {
        for mask in [0x01u8, 0x80, 0xFF] {
            let mut bad = blob.clone();
            bad[i] ^= mask;
            assert!(Model::parse(&bad).is_err(), "flip {mask:#x} at byte {i} was accepted");
        }
    }
}

#[test]
fn every_truncation_and_extension_is_rejected() {
    let blob = write::example_decoder();
    // Every 13th length under Miri, as above; the header's lengths all.
    for len in (0..blob.len()).filter(|&n| !cfg!(miri) || n < format::HEADER_LEN || n % 13 == 0) {
        let err = Model::parse(&blob[..len]).unwrap_err();
        if len < format::HEADER_LEN {
            assert_eq!(err, Error::TooShort { len });
        }
    }
    let mut longer = blob.clone();
    longer.push(0);
    assert!(matches!(Model::parse(&longer), Err(Error::LengthMismatch { .. })));
}

/// Re-seals a mutated blob with a valid checksum, so the mutation reaches the field validators.
fn reseal(blob: &mut [u8]) {
    let crc = format::crc32(&blob[format::CHECKSUM_START..]);
    blob[12..16].copy_from_slice(&crc.to_le_bytes());
}

#[test]
fn hostile_blobs_with_valid_checksums_never_panic() {
    let blob = write::example_decoder();
    let clean = decode_everything(&blob).unwrap();
    let mut accepted = 0;
    // Every byte set to a few adversarial values, checksum fixed up: the parser must either
    // reject the blob or accept one that runs without panicking or reading out of bounds.
    for i in 0..blob.len() {
        for v in [0x00u8, 0x01, 0x7F, 0x80, 0xFF, blob[i] ^ 0x10] {
            let mut bad = blob.clone();
            bad[i] = v;
            reseal(&mut bad);
            if decode_everything(&bad).is_ok() {
                accepted += 1;
            }
        }
    }
    // Weight bytes are free to change, so many mutations are legitimately accepted.
    assert!(accepted > 0);
    // Random multi-byte mutations over the header and tables.
    let mut rng = Rng::new(99);
    let tables_end = blob.len() - Model::parse(&blob).unwrap().weight_bytes();
    for _ in 0..20_000 {
        let mut bad = blob.clone();
        for _ in 0..1 + rng.below(4) {
            let at = rng.below(tables_end as u32) as usize;
            bad[at] = rng.next_u64() as u8;
        }
        reseal(&mut bad);
        let _ = decode_everything(&bad);
    }
    assert_eq!(decode_everything(&blob).unwrap(), clean);
}

#[test]
fn errors_say_what_is_wrong() {
    let blob = write::example_decoder();
    let mut bad = blob.clone();
    bad[100] ^= 1;
    let msg = Model::parse(&bad).unwrap_err().to_string();
    assert!(msg.contains("checksum"), "{msg}");
    let msg = Model::parse(&blob[..10]).unwrap_err().to_string();
    assert!(msg.contains("10 bytes"), "{msg}");
    let mut v7 = blob.clone();
    v7[4] = 7;
    assert_eq!(Model::parse(&v7).unwrap_err(), Error::UnsupportedVersion { found: 7 });
    assert!(Model::parse(&v7).unwrap_err().to_string().contains("version 7"));
    // A classifier is a version 6 kind: labelled 5, the kind is unknown.
    let mut v5 = write::example_classifier();
    v5[4] = 5;
    let crc = format::crc32(&v5[format::CHECKSUM_START..]);
    v5[12..16].copy_from_slice(&crc.to_le_bytes());
    assert_eq!(Model::parse(&v5).unwrap_err(), Error::BadHeader { field: "kind" });
}

#[test]
fn api_checks_buffers_kinds_and_labels() {
    let blob = write::example_decoder();
    let m = Model::parse(&blob).unwrap();
    let d = Decoder::new(&m).unwrap();
    let mut px = [0u8; 16];
    let mut small = vec![0u8; m.arena_size() - 1];
    assert!(matches!(d.decode(&[0.0, 0.0], &mut small, &mut px), Err(Error::ArenaTooSmall { .. })));
    let mut arena = vec![0u8; m.arena_size()];
    assert!(matches!(d.decode(&[0.0], &mut arena, &mut px), Err(Error::BufferLength { what: "z", .. })));
    // The label the caller gave is the one the message names.
    let err = d.decode_conditional(&[0.0, 0.0], 3, &mut arena, &mut px).unwrap_err();
    assert_eq!(err, Error::BadLabel { label: 3, classes: 0 });
    assert_eq!(err.to_string(), "label 3 given, but the model is not conditional");
    let err = tinyvae::Encoder::new(&m).unwrap_err();
    assert!(matches!(err, Error::WrongKind { .. }));
    assert_eq!(err.to_string(), "model is a decoder, expected an encoder");
    assert!(matches!(d.decode_batch(&[], None, 0, &mut arena, &mut []), Err(Error::BadBatch { batch: 0 })));
}

#[test]
fn sampling_is_deterministic_and_batch_matches_single() {
    let blob = write::example_decoder();
    let m = Model::parse(&blob).unwrap();
    let d = Decoder::new(&m).unwrap();
    let mut arena = vec![0u8; m.arena_size_for_batch(4).unwrap() + 3];
    // An unaligned arena start must work as well as an aligned one.
    let arena = &mut arena[3..];
    let mut rng = Rng::new(5);
    let mut singles = Vec::new();
    let mut zs = Vec::new();
    for _ in 0..4 {
        let mut probe = rng.clone();
        let z = [probe.gaussian(), probe.gaussian()];
        zs.extend_from_slice(&z);
        let mut px = [0u8; 16];
        d.sample(&mut rng, arena, &mut px).unwrap();
        let mut px2 = [0u8; 16];
        d.decode(&z, arena, &mut px2).unwrap();
        assert_eq!(px, px2);
        singles.extend_from_slice(&px);
    }
    let mut batched = vec![0u8; 64];
    d.decode_batch(&zs, None, 4, arena, &mut batched).unwrap();
    assert_eq!(batched, singles);
    assert!(singles.iter().any(|&p| p != singles[0]), "outputs should vary");
}

#[test]
fn a_conditional_decoder_asks_for_its_label() {
    let bytes = include_bytes!(concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/mnist-cvae/decoder.int8.tvae"));
    let blob = tinyvae::AlignedBlob::new(bytes);
    let m = Model::parse(&blob).unwrap();
    let d = Decoder::new(&m).unwrap();
    let (mut arena, mut px) = (vec![0u8; m.arena_size()], vec![0u8; d.output_len()]);
    let err = d.sample(&mut Rng::new(1), &mut arena, &mut px).unwrap_err();
    assert_eq!(err, Error::MissingLabel { classes: 10 });
    assert_eq!(err.to_string(), "the model is conditional on 10 classes: give a label");
    let err = d.sample_conditional(&mut Rng::new(1), 10, &mut arena, &mut px).unwrap_err();
    assert_eq!(err.to_string(), "label 10 is out of range 0..10");
}
