//! The `blob` fuzz target: arbitrary bytes through `tinyvae::Model::parse`, then every entry
//! point that accepts the parsed model, once per kernel table this CPU has.
//!
//! The runtime promises that a blob `Model::parse` accepts runs without a panic or an
//! out-of-bounds access, and that a hostile blob is an `Error` value, so any panic here is a bug.
//! Most mutations break the CRC-32 (or the length in the header), which the parser checks
//! first; so an input rejected for its length or checksum is also tried with both fixed up,
//! which lets the fuzzer reach the checks of every section, tensor and node.
//!
//! This file is also compiled into `crates/tinyvae/tests/fuzz_regressions.rs`, which runs the
//! seeds and the regression inputs through it in the normal test suite.

use tinyvae::format::{self, CHECKSUM_START};
use tinyvae::{
    kernels, AlignedBlob, Autoencoder, Classifier, Decoder, Encoder, Error, Kernels, Model, ModelKind, Precision,
    Prior, Rng, Score, ScoreKind,
};

/// The largest arena the harness allocates (larger models are parsed, not run).
pub const MAX_ARENA: usize = 4 << 20;
/// The most multiply-accumulates per sample the harness runs (keeps each input fast).
pub const MAX_MACS: usize = 4_000_000;
/// The most values the harness allocates for one input or output buffer.
const MAX_VALUES: usize = 1 << 20;

/// Runs one fuzz input. Panics exactly when the runtime misbehaves.
pub fn run(data: &[u8]) {
    prior_section(data);
    let blob = AlignedBlob::new(data);
    match Model::parse(&blob) {
        Ok(model) => exercise(&model, Tables::All),
        Err(Error::LengthMismatch { .. } | Error::ChecksumMismatch { .. }) => {
            let fixed = AlignedBlob::new(&with_fixed_header(data));
            if let Ok(model) = Model::parse(&fixed) {
                exercise(&model, Tables::All);
            }
        }
        Err(_) => {}
    }
}

/// Parses a blob that must be valid (the quantizer's output) and runs its entry points once,
/// with the fastest kernel table only: the `onnx` target's cheaper check of what it writes.
pub fn run_valid(data: &[u8]) {
    let blob = AlignedBlob::new(data);
    match Model::parse(&blob) {
        Ok(model) => exercise(&model, Tables::Best),
        Err(e) => panic!("a blob that should be valid does not parse: {e}"),
    }
}

/// Which kernel tables a model runs with.
#[derive(Clone, Copy)]
enum Tables {
    /// Every table usable here, the scalar reference first.
    All,
    /// The fastest only.
    Best,
}

/// `data` with the header's file length and CRC-32 made to match its bytes.
pub fn with_fixed_header(data: &[u8]) -> Vec<u8> {
    let mut b = data.to_vec();
    if b.len() >= CHECKSUM_START {
        let len = u32::try_from(b.len()).unwrap_or(u32::MAX);
        b[8..12].copy_from_slice(&len.to_le_bytes());
        let crc = format::crc32(&b[CHECKSUM_START..]);
        b[12..16].copy_from_slice(&crc.to_le_bytes());
    }
    b
}

/// `Prior::parse` on the input's tail, sized by its first two bytes.
fn prior_section(data: &[u8]) {
    if let [c, l, rest @ ..] = data {
        if let Ok(prior) = Prior::parse(rest, usize::from(*c), usize::from(*l)) {
            inspect_prior(&prior);
            let mut z = vec![0f32; prior.latent_dim()];
            let mut rng = Rng::new(u64::from(*c));
            let _ = prior.sample(&mut rng, &mut z);
            let _ = prior.sample_for_label(0, &mut rng, &mut z);
            let _ = prior.sample_for_label(u32::from(*l), &mut rng, &mut z);
            let _ = prior.sample_component(prior.components(), &mut rng, &mut z);
        }
    }
}

fn inspect_prior(prior: &Prior<'_>) {
    let (k, n) = (prior.components(), prior.latent_dim());
    for c in 0..=k {
        let _ = prior.weight(c);
    }
    let _ = prior.groups();
    let _ = (prior.mean(0, 0), prior.mean(k, n), prior.cholesky(0, 0, 0), prior.cholesky(k, n, n));
    let _ = (prior.mean(k.saturating_sub(1), n.saturating_sub(1)), prior.cholesky(0, n.saturating_sub(1), 0));
}

/// Everything a user can do with a parsed model.
fn exercise(model: &Model<'_>, tables: Tables) {
    // The compile-time arena size reads the same header.
    assert_eq!(format::arena_size_of(model.blob()), Some(model.arena_size()), "arena_size_of disagrees with parse");
    let _ = (model.version(), model.kind(), model.precision(), model.meta(), model.weight_bytes(), model.macs());
    for t in 0..=model.tensor_count() {
        if let Some(info) = u16::try_from(t).ok().and_then(|t| model.tensor(t)) {
            let _ = (info.bytes(), info.channels(), info.shape(), info.is_pixel_quantized());
        }
        let _ = u16::try_from(t).map(|t| model.channels_last(t));
    }
    for i in 0..=model.node_count() {
        let _ = (model.node(i), model.node_macs(i));
    }
    for k in 0..=model.input_count().max(model.output_count()) {
        let _ = (model.input(k), model.output(k));
    }
    if let Some(prior) = model.prior() {
        inspect_prior(&prior);
    }
    if model.arena_size() > MAX_ARENA || model.macs() > MAX_MACS {
        return;
    }
    let mut arena = vec![0u8; model.arena_size()];
    match model.kind() {
        ModelKind::Decoder => decoders(model, tables, &mut arena),
        ModelKind::Encoder => encoders(model, tables, &mut arena),
        ModelKind::Autoencoder => autoencoders(model, tables, &mut arena),
        ModelKind::Classifier => classifiers(model, tables, &mut arena),
        _ => {
            let accepted = Decoder::new(model).is_ok()
                || Encoder::new(model).is_ok()
                || Autoencoder::new(model).is_ok()
                || Classifier::new(model).is_ok();
            assert!(!accepted, "a generic model was accepted");
        }
    }
}

fn classifiers(model: &Model<'_>, tables: Tables, arena: &mut [u8]) {
    assert!(Decoder::new(model).is_err(), "a classifier was accepted as a decoder");
    assert!(Encoder::new(model).is_err(), "a classifier was accepted as an encoder");
    let Ok(classifier) = Classifier::new(model) else { panic!("Classifier::new refused a classifier blob") };
    let (n, k) = (classifier.input_len(), classifier.classes());
    if n > MAX_VALUES || k > MAX_VALUES {
        return;
    }
    let mut rng = Rng::new(9);
    let px: Vec<u8> = (0..n).map(|_| rng.below(256) as u8).collect();
    let mut first: Option<u32> = None;
    for table in tables.iter() {
        let c = classifier.with_kernels(table);
        if let Ok(class) = c.classify_pixels(&px, arena) {
            assert!((class as usize) < k, "class {class} of {k}");
            if model.precision() == Precision::Int8 {
                // Every table answers with the reference's class.
                match first {
                    None => first = Some(class),
                    Some(reference) => assert_eq!(reference, class, "kernel table `{}` differs", table.name),
                }
            }
            let mut logits = vec![0f32; k];
            let _ = c.logits(arena, 1, &mut logits);
        }
        let x: Vec<f32> = px.iter().map(|&p| p as f32 / 255.0).collect();
        let _ = c.classify(&x, arena);
        let _ = c.classify_pixels(&px[..n.saturating_sub(1)], arena);
        let short = model.arena_size().saturating_sub(17);
        let _ = c.classify_pixels(&px, &mut arena[..short]);
    }
}

impl Tables {
    fn iter(self) -> impl Iterator<Item = &'static Kernels> {
        let all = matches!(self, Tables::All);
        let best = (!all).then(kernels::best);
        kernels::available().filter(move |_| all).chain(best)
    }
}

fn decoders(model: &Model<'_>, tables: Tables, arena: &mut [u8]) {
    assert!(Encoder::new(model).is_err(), "a decoder was accepted as an encoder");
    assert!(Autoencoder::new(model).is_err(), "a decoder was accepted as an autoencoder");
    let Ok(decoder) = Decoder::new(model) else { panic!("Decoder::new refused a decoder blob") };
    let (latent, out_len, classes) = (decoder.latent_dim(), decoder.output_len(), decoder.classes());
    if latent > MAX_VALUES || out_len > MAX_VALUES {
        return;
    }
    let label = u32::try_from(classes.saturating_sub(1)).unwrap_or(u32::MAX);
    let mut z = vec![0f32; latent];
    Rng::new(7).fill_gaussian(&mut z);
    let z = z;
    let mut first: Option<Vec<u8>> = None;
    for table in tables.iter() {
        let d = decoder.with_kernels(table);
        let mut pixels = vec![0u8; out_len];
        let mut out = vec![0f32; out_len];
        let decoded = d.decode(&z, arena, &mut pixels);
        if decoded.is_ok() && model.precision() == Precision::Int8 {
            // The optimized tables give the reference's int8 bytes exactly.
            match &first {
                None => first = Some(pixels.clone()),
                Some(reference) => {
                    assert!(reference == &pixels, "kernel table `{}` differs from the reference", table.name)
                }
            }
        }
        let _ = d.decode_f32(&z, arena, &mut out);
        let _ = d.decode_conditional(&z, label, arena, &mut pixels);
        let _ = d.sample(&mut Rng::new(1), arena, &mut pixels);
        let _ = d.sample_conditional(&mut Rng::new(2), label, arena, &mut pixels);
        let _ = d.with_standard_prior().sample(&mut Rng::new(3), arena, &mut pixels);
        let mut drawn = vec![0f32; latent];
        let _ = d.draw_latent(None, &mut Rng::new(4), &mut drawn);
        let _ = d.draw_latent(Some(label), &mut Rng::new(5), &mut drawn);
        let _ = d.draw_latent(Some(label.saturating_add(1)), &mut Rng::new(6), &mut drawn);
        let _ = d.decode(&z[..latent.saturating_sub(1)], arena, &mut pixels);
        if let Some(prior) = d.prior() {
            let mut zp = vec![0f32; prior.latent_dim()];
            let _ = prior.sample(&mut Rng::new(8), &mut zp);
        }
        if model.arena_size_for_batch(2).is_some_and(|n| n <= MAX_ARENA) {
            let mut big = vec![0u8; model.arena_size_for_batch(2).unwrap_or(0)];
            let z2: Vec<f32> = z.iter().chain(z.iter()).copied().collect();
            let mut p2 = vec![0u8; 2 * out_len];
            let labels = [0, label];
            let _ = d.decode_batch(&z2, (classes > 0).then_some(&labels[..]), 2, &mut big, &mut p2);
            let mut o2 = vec![0f32; 2 * out_len];
            let _ = d.decode_batch_f32(&z2, None, 2, &mut big, &mut o2);
        }
        // Too small an arena is an error, not an out-of-bounds write.
        let short = model.arena_size().saturating_sub(17);
        let _ = d.decode(&z, &mut arena[..short], &mut pixels);
    }
}

fn encoders(model: &Model<'_>, tables: Tables, arena: &mut [u8]) {
    assert!(Decoder::new(model).is_err(), "an encoder was accepted as a decoder");
    assert!(Autoencoder::new(model).is_err(), "an encoder was accepted as an autoencoder");
    let Ok(encoder) = Encoder::new(model) else { panic!("Encoder::new refused an encoder blob") };
    let (latent, in_len, classes) = (encoder.latent_dim(), encoder.input_len(), encoder.classes());
    if latent > MAX_VALUES || in_len > MAX_VALUES {
        return;
    }
    let label = u32::try_from(classes.saturating_sub(1)).unwrap_or(u32::MAX);
    let px: Vec<u8> = (0..in_len).map(|i| (i * 37 % 256) as u8).collect();
    let x: Vec<f32> = px.iter().map(|&p| f32::from(p) / 255.0).collect();
    let mut first: Option<(Vec<f32>, Vec<f32>)> = None;
    for table in tables.iter() {
        let e = encoder.with_kernels(table);
        let (mut mu, mut logvar, mut z) = (vec![0f32; latent], vec![0f32; latent], vec![0f32; latent]);
        let encoded = e.encode_pixels(&px, arena, &mut mu, &mut logvar);
        if encoded.is_ok() && model.precision() == Precision::Int8 {
            let same = |a: &[f32], b: &[f32]| a.iter().zip(b).all(|(x, y)| x.to_bits() == y.to_bits());
            match &first {
                None => first = Some((mu.clone(), logvar.clone())),
                Some((m, l)) => assert!(
                    same(m, &mu) && same(l, &logvar),
                    "kernel table `{}` differs from the reference",
                    table.name
                ),
            }
        }
        let _ = e.encode(&x, arena, &mut mu, &mut logvar);
        let _ = e.encode_pixels_conditional(&px, label, arena, &mut mu, &mut logvar);
        let _ = Encoder::reparametrize(&mu, &logvar, &mut Rng::new(9), &mut z);
        let _ = e.encode(&x[..in_len.saturating_sub(1)], arena, &mut mu, &mut logvar);
        if model.arena_size_for_batch(2).is_some_and(|n| n <= MAX_ARENA) {
            let mut big = vec![0u8; model.arena_size_for_batch(2).unwrap_or(0)];
            let x2: Vec<f32> = x.iter().chain(x.iter()).copied().collect();
            let p2: Vec<u8> = px.iter().chain(px.iter()).copied().collect();
            let (mut m2, mut l2) = (vec![0f32; 2 * latent], vec![0f32; 2 * latent]);
            let labels = [0, label];
            let _ = e.encode_batch(&x2, (classes > 0).then_some(&labels[..]), 2, &mut big, &mut m2, &mut l2);
            let _ = e.encode_pixels_batch(&p2, None, 2, &mut big, &mut m2, &mut l2);
        }
        let short = model.arena_size().saturating_sub(17);
        let _ = e.encode_pixels(&px, &mut arena[..short], &mut mu, &mut logvar);
    }
}

fn autoencoders(model: &Model<'_>, tables: Tables, arena: &mut [u8]) {
    assert!(Decoder::new(model).is_err() && Encoder::new(model).is_err(), "an autoencoder was accepted as a codec");
    // `Model::parse` checks what the score needs (one precision, comparable scales).
    let autoencoder = match Autoencoder::new(model) {
        Ok(a) => a,
        Err(e) => panic!("Autoencoder::new refused an autoencoder blob: {e}"),
    };
    let n = autoencoder.features();
    if n > MAX_VALUES {
        return;
    }
    let _ = (autoencoder.input_quantization(), autoencoder.score_unit());
    let x: Vec<f32> = (0..n).map(|i| ((i * 37 % 256) as f32 - 128.0) / 64.0).collect();
    let codes: Vec<i8> = (0..n).map(|i| (i * 37 % 256) as u8 as i8).collect();
    let mut first: Option<Score> = None;
    for table in tables.iter() {
        let a = autoencoder.with_kernels(table);
        let mut out = vec![0f32; n];
        let _ = a.reconstruct(&x, arena, &mut out);
        let scored = a.score(&x, arena);
        if let (Ok(score), Precision::Int8) = (scored, model.precision()) {
            let _ = score.exceeds(1);
            match first {
                None => first = Some(score),
                Some(reference) => {
                    assert!(reference.raw == score.raw, "kernel table `{}` differs from the reference", table.name)
                }
            }
        }
        let _ = a.score_quantized(&codes, arena);
        if let Ok(nll) = a.with_score(ScoreKind::BernoulliNll) {
            let pixels: Vec<f32> = x.iter().map(|v| v.clamp(0.0, 1.0)).collect();
            let _ = nll.score(&pixels, arena);
            let _ = nll.score_quantized(&codes, arena);
        }
        let _ = a.score(&x[..n.saturating_sub(1)], arena);
        if model.arena_size_for_batch(2).is_some_and(|size| size <= MAX_ARENA) {
            let mut big = vec![0u8; model.arena_size_for_batch(2).unwrap_or(0)];
            let x2: Vec<f32> = x.iter().chain(x.iter()).copied().collect();
            let mut o2 = vec![0f32; 2 * n];
            let _ = a.reconstruct_batch(&x2, 2, &mut big, &mut o2);
            let mut scores = [Score { raw: 0, unit: 0.0 }; 2];
            let _ = a.score_batch(&x2, 2, &mut big, &mut scores);
        }
        let short = model.arena_size().saturating_sub(17);
        let _ = a.score(&x, &mut arena[..short]);
    }
}
