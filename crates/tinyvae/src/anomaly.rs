//! Whole autoencoders as anomaly detectors: a feature vector in, its reconstruction out, and
//! the reconstruction error as an anomaly score.
//!
//! On an int8 blob the score is integer arithmetic from the graph's input codes and output
//! codes (an autoencoder blob keeps its input intact in the arena through the run): the input
//! is brought to the output's quantization units by a fixed-point multiplier (with 8
//! fractional bits), and the squared differences are summed in a `u64`. So a
//! microcontroller compares `Score::raw` against a threshold chosen on the host (`tinyvae
//! score --fpr`, written by `tinyvae deploy`) with no float work after the input quantization,
//! and every target gets the same integer.

use crate::api::check_len;
use crate::error::Error;
use crate::format::{DType, ModelKind};
use crate::kernels::{self, Kernels};
use crate::model::{Model, TensorInfo};

/// Fractional bits of the int8 score's differences: the input, rescaled to the output's
/// units, keeps this much precision.
const FRACTION_BITS: i32 = 8;
/// `raw = round(mse * 2^32)` for float models.
const FLOAT_RAW_PER_UNIT: f32 = 4_294_967_296.0;

/// The reconstruction error of one sample: `mse = raw * unit`, the mean over features of
/// `(x̂ - x)²` in the features' own units.
///
/// `raw` is what to compare on a device: for int8 blobs it is exact integer arithmetic (the
/// sum of squared differences in units of the output's scale / 256), for float blobs
/// `round(mse * 2^32)`. It saturates at `u64::MAX` rather than wrapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The error as an integer, in units of [`Score::unit`].
    pub raw: u64,
    /// What one unit of `raw` is worth, in mean squared error.
    pub unit: f32,
}

impl Score {
    /// Mean squared reconstruction error.
    pub fn mse(&self) -> f32 {
        self.raw as f32 * self.unit
    }

    /// True when the score is above `threshold_raw` (an alarm).
    pub fn exceeds(&self, threshold_raw: u64) -> bool {
        self.raw > threshold_raw
    }
}

/// How an int8 input code becomes a value in the output's units (see the module doc): times
/// `multiplier` (15 bits), then a rounding right shift by `shift`, all in `i32` (a Cortex-M
/// does an element in about a dozen instructions).
#[derive(Debug, Clone, Copy)]
struct Rescale {
    input: TensorInfo,
    output: TensorInfo,
    multiplier: i32,
    shift: u32,
}

/// Largest input-to-output scale ratio an int8 score takes: beyond it the output's range is
/// less than 1/128 of the input's, which no reconstruction of the input can be.
const MAX_SCALE_RATIO: f64 = 128.0;

impl Rescale {
    fn new(input: TensorInfo, output: TensorInfo) -> Result<Self, Error> {
        let bad = Error::BadGraph { reason: "autoencoder input and output scales are not comparable" };
        let ratio = input.scale as f64 / output.scale as f64;
        if !(ratio > 0.0 && ratio < MAX_SCALE_RATIO) {
            return Err(bad);
        }
        // ratio * 2^FRACTION_BITS = multiplier * 2^-shift, with multiplier below 2^15 and as
        // many bits as fit (shift at most 30: a smaller ratio rounds towards 0).
        let mut shift = 0u32;
        let mut scaled = ratio * (1u32 << FRACTION_BITS) as f64;
        while scaled * 2.0 < (1u32 << 15) as f64 && shift < 30 {
            scaled *= 2.0;
            shift += 1;
        }
        let multiplier = libm::round(scaled) as i32;
        Ok(Rescale { input, output, multiplier, shift })
    }

    /// Squared difference, in (output scale / 2^FRACTION_BITS)², of output code `out` and
    /// input code `x`.
    #[cfg(test)]
    fn squared(&self, out: i8, x: i8) -> u64 {
        self.sum_squared(&[out as u8], &[x as u8])
    }

    /// The sum of the squared differences of output codes `out` and input codes `x`: the
    /// arithmetic of [`Self::squared`] with the zero points and the rounding folded into
    /// constants, so that an element costs a Cortex-M4 about ten instructions (a
    /// multiply-accumulate, a shift, a subtract with a shifted operand, a 64-bit
    /// multiply-accumulate).
    fn sum_squared(&self, out: &[u8], x: &[u8]) -> u64 {
        // |x - zero point| <= 255 and multiplier <= 2^15: the product fits in 24 bits.
        let round = if self.shift == 0 { 0 } else { 1 << (self.shift - 1) };
        let offset = round - self.input.zero_point * self.multiplier;
        let out_zero = self.output.zero_point << FRACTION_BITS;
        let mut total = 0u64;
        // |d| < 2^24, so d² < 2^48 and 2^15 of them stay below 2^63.
        for (out, x) in out.chunks(1 << 15).zip(x.chunks(1 << 15)) {
            let mut sum = 0i64;
            for (&o, &q) in out.iter().zip(x) {
                let x_out = (q as i8 as i32 * self.multiplier + offset) >> self.shift;
                let d = ((o as i8 as i32) << FRACTION_BITS) - x_out - out_zero;
                sum += d as i64 * d as i64;
            }
            total = total.saturating_add(sum as u64);
        }
        total
    }

    fn unit(&self) -> f32 {
        let step = self.output.scale / (1u32 << FRACTION_BITS) as f32;
        step * step / self.output.len.max(1) as f32
    }
}

/// Runs an autoencoder blob ([`ModelKind::Autoencoder`]): a feature vector to its
/// reconstruction, and the reconstruction error as an anomaly score. Like [`crate::Decoder`]
/// it runs in the caller's arena and allocates nothing.
///
/// ```
/// use tinyvae::{Autoencoder, Model};
///
/// // A tiny int8 autoencoder of 8 features (the documentation's example blob).
/// let blob = tinyvae::AlignedBlob::new(&tinyvae::doc_example_autoencoder());
/// let model = Model::parse(&blob)?;
/// let ae = Autoencoder::new(&model)?;
/// let mut arena = vec![0u8; model.arena_size()];
/// let x = [0.1f32, 0.9, 0.3, 0.5, 0.0, 0.7, 0.2, 0.4];
/// let mut x_hat = [0f32; 8];
/// ae.reconstruct(&x, &mut arena, &mut x_hat)?;
/// let score = ae.score(&x, &mut arena)?;
/// // The integer score is the mean squared error of the reconstruction (to the input's
/// // int8 step, since the score sees the quantized input).
/// let mse: f32 = x.iter().zip(&x_hat).map(|(a, b)| (a - b) * (a - b)).sum::<f32>() / 8.0;
/// assert!((score.mse() - mse).abs() <= 0.01 * mse.max(1.0));
/// assert!(!score.exceeds(u64::MAX));
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Autoencoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
    /// `Some` for int8 blobs.
    rescale: Option<Rescale>,
}

impl<'m, 'a> Autoencoder<'m, 'a> {
    /// Wraps a parsed model; fails unless it is an autoencoder.
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Autoencoder {
            return Err(Error::WrongKind { expected: ModelKind::Autoencoder, found: model.kind() });
        }
        let lost = Error::BadGraph { reason: "autoencoder input or output missing" };
        let (input, output) = (model.input(0).ok_or(lost)?, model.output(0).ok_or(lost)?);
        let rescale = match (input.dtype, output.dtype) {
            (DType::I8, DType::I8) => Some(Rescale::new(input, output)?),
            (DType::I8, _) | (_, DType::I8) => {
                return Err(Error::BadGraph { reason: "autoencoder input and output differ in precision" })
            }
            _ => None,
        };
        Ok(Autoencoder { model, kernels: kernels::best(), rescale })
    }

    /// Uses a specific kernel table instead of the fastest one.
    pub fn with_kernels(mut self, kernels: &'static Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The underlying model.
    pub fn model(&self) -> &Model<'a> {
        self.model
    }

    /// Features per sample (input and output).
    pub fn features(&self) -> usize {
        self.model.input(0).map(|t| t.len).unwrap_or(0)
    }

    /// The int8 quantization of the input, `(scale, zero_point)`, for callers that quantize
    /// their features themselves ([`Self::score_quantized`]); `None` for float blobs.
    pub fn input_quantization(&self) -> Option<(f32, i32)> {
        self.rescale.map(|r| (r.input.scale, r.input.zero_point))
    }

    /// What one unit of [`Score::raw`] is worth in mean squared error.
    pub fn score_unit(&self) -> f32 {
        match &self.rescale {
            Some(r) => r.unit(),
            None => 1.0 / FLOAT_RAW_PER_UNIT,
        }
    }

    fn run(&self, x: &[f32], batch: usize, arena: &mut [u8]) -> Result<(), Error> {
        check_len("x", batch * self.features(), x.len())?;
        let work = self.model.working_arena(arena, batch)?;
        self.model.stage_input_slice(self.kernels, work, 0, batch, x)?;
        self.model.execute(self.kernels, work, batch)
    }

    /// Reconstructs `batch` feature vectors (`x.len() == out.len() == batch * features`).
    pub fn reconstruct_batch(&self, x: &[f32], batch: usize, arena: &mut [u8], out: &mut [f32]) -> Result<(), Error> {
        check_len("reconstruction", batch * self.features(), out.len())?;
        self.run(x, batch, arena)?;
        let work = self.model.working_arena(arena, batch)?;
        self.model.read_output(work, 0, batch, out)
    }

    /// Reconstructs one feature vector.
    pub fn reconstruct(&self, x: &[f32], arena: &mut [u8], out: &mut [f32]) -> Result<(), Error> {
        self.reconstruct_batch(x, 1, arena, out)
    }

    /// Scores `batch` feature vectors: `scores[b]` is sample `b`'s reconstruction error.
    pub fn score_batch(&self, x: &[f32], batch: usize, arena: &mut [u8], scores: &mut [Score]) -> Result<(), Error> {
        check_len("scores", batch, scores.len())?;
        self.run(x, batch, arena)?;
        self.finish_scores(x, batch, arena, scores)
    }

    /// Scores one feature vector.
    pub fn score(&self, x: &[f32], arena: &mut [u8]) -> Result<Score, Error> {
        let mut score = [Score { raw: 0, unit: 0.0 }];
        self.score_batch(x, 1, arena, &mut score)?;
        Ok(score[0])
    }

    /// Scores one feature vector given as the input's int8 codes (see
    /// [`Self::input_quantization`]): integer arithmetic only, from the codes to the score.
    /// Int8 blobs only.
    pub fn score_quantized(&self, codes: &[i8], arena: &mut [u8]) -> Result<Score, Error> {
        if self.rescale.is_none() {
            return Err(Error::BadGraph { reason: "int8 codes given for a float autoencoder" });
        }
        check_len("codes", self.features(), codes.len())?;
        let work = self.model.working_arena(arena, 1)?;
        self.model.stage_codes(work, 0, 1, codes)?;
        self.model.execute(self.kernels, work, 1)?;
        let mut score = [Score { raw: 0, unit: 0.0 }];
        self.finish_scores(&[], 1, arena, &mut score)?;
        Ok(score[0])
    }

    /// Each sample's score after a run: from the input codes, which an autoencoder blob keeps
    /// intact in the arena (the parser checks that no node writes over them), and the output
    /// codes, for int8 blobs; from `x` and the output values for float blobs.
    fn finish_scores(&self, x: &[f32], batch: usize, arena: &mut [u8], scores: &mut [Score]) -> Result<(), Error> {
        let n = self.features();
        let work = self.model.working_arena(arena, batch)?;
        let out = self.model.output_bytes(work, 0, batch)?;
        let lost = Error::BufferLength { what: "x", expected: batch * n, got: x.len() };
        for (b, score) in scores.iter_mut().enumerate() {
            let rows = b * n..(b + 1) * n;
            *score = match &self.rescale {
                Some(r) => {
                    let input = self.model.input_bytes(work, 0, batch)?.get(rows.clone()).ok_or(lost)?;
                    let output = out.get(rows).ok_or(lost)?;
                    Score { raw: r.sum_squared(output, input), unit: r.unit() }
                }
                None => {
                    let values = crate::cast::f32s(out).get(rows.clone()).ok_or(lost)?;
                    float_score(values, x.get(rows).ok_or(lost)?)
                }
            };
        }
        Ok(())
    }
}

/// The score of a float reconstruction.
fn float_score(x_hat: &[f32], x: &[f32]) -> Score {
    let sum: f32 = x_hat.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
    let mse = sum / x.len().max(1) as f32;
    // `as` saturates; a NaN (a non-finite feature) is the largest score, an alarm.
    let raw = if mse.is_nan() { u64::MAX } else { (mse * FLOAT_RAW_PER_UNIT) as u64 };
    Score { raw, unit: 1.0 / FLOAT_RAW_PER_UNIT }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::{hdr, write};
    use crate::quant::{dequantize_i8, quantize_i8};
    use crate::AlignedBlob;
    use alloc::vec;
    use alloc::vec::Vec;

    fn features(seed: u64, n: usize) -> Vec<f32> {
        let mut rng = crate::Rng::new(seed);
        (0..n).map(|_| rng.below(1001) as f32 / 1000.0).collect()
    }

    #[test]
    fn the_integer_score_is_the_mean_squared_error_against_the_quantized_input() {
        let blob = AlignedBlob::new(&write::example_autoencoder());
        let model = Model::parse(&blob).unwrap();
        assert_eq!(model.version(), crate::format::VERSION);
        let ae = Autoencoder::new(&model).unwrap();
        let (scale, zp) = ae.input_quantization().unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        for seed in 0..50 {
            let x = features(seed, 8);
            let mut x_hat = [0f32; 8];
            ae.reconstruct(&x, &mut arena, &mut x_hat).unwrap();
            let score = ae.score(&x, &mut arena).unwrap();
            let seen: Vec<f32> = x.iter().map(|&v| dequantize_i8(quantize_i8(v, scale, zp), scale, zp)).collect();
            let mse = x_hat.iter().zip(&seen).map(|(a, b)| ((a - b) as f64).powi(2)).sum::<f64>() / 8.0;
            // The input in the output's units keeps 8 fractional bits: within half a step of
            // 0.02 / 256 per feature.
            let step = 0.02 / 256.0;
            let bound = (2.0 * mse.sqrt() * step + step * step) as f32 + 1e-6;
            assert!((score.mse() - mse as f32).abs() <= bound, "seed {seed}: {} vs {mse}", score.mse());
            let codes: Vec<i8> = x.iter().map(|&v| quantize_i8(v, scale, zp)).collect();
            assert_eq!(ae.score_quantized(&codes, &mut arena).unwrap(), score);
            let reference = ae.with_kernels(&kernels::REFERENCE);
            assert_eq!(reference.score(&x, &mut arena).unwrap(), score);
        }
    }

    #[test]
    fn a_batch_scores_like_single_samples() {
        let blob = AlignedBlob::new(&write::example_autoencoder());
        let model = Model::parse(&blob).unwrap();
        let ae = Autoencoder::new(&model).unwrap();
        let batch = 5;
        let x = features(7, 8 * batch);
        let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
        let mut scores = vec![Score { raw: 0, unit: 0.0 }; batch];
        ae.score_batch(&x, batch, &mut arena, &mut scores).unwrap();
        for (b, s) in scores.iter().enumerate() {
            assert_eq!(ae.score(&x[8 * b..8 * (b + 1)], &mut arena).unwrap(), *s);
        }
        assert!(scores.windows(2).any(|w| w[0] != w[1]));
        // Wrong sizes are errors.
        assert!(ae.score_batch(&x[1..], batch, &mut arena, &mut scores).is_err());
        assert!(ae.score(&x[..7], &mut arena).is_err());
        assert!(ae.score_quantized(&[0; 9], &mut arena).is_err());
        assert!(ae.score(&x[..8], &mut arena[..10]).is_err());
    }

    #[test]
    fn only_version_5_blobs_are_autoencoders() {
        let mut bytes = write::example_autoencoder();
        bytes[hdr::VERSION..hdr::VERSION + 2].copy_from_slice(&4u16.to_le_bytes());
        let crc = crate::format::crc32(&bytes[crate::format::CHECKSUM_START..]);
        bytes[hdr::CRC..hdr::CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let blob = AlignedBlob::new(&bytes);
        assert_eq!(Model::parse(&blob).unwrap_err(), Error::BadHeader { field: "kind" });
        let decoder = AlignedBlob::new(&write::example_decoder());
        let decoder = Model::parse(&decoder).unwrap();
        assert!(matches!(Autoencoder::new(&decoder), Err(Error::WrongKind { .. })));
        assert!(crate::Decoder::new(&Model::parse(&AlignedBlob::new(&write::example_autoencoder())).unwrap()).is_err());
    }

    #[test]
    fn a_blob_that_writes_over_its_input_is_not_an_autoencoder() {
        let mut bytes = write::example_autoencoder();
        let tensors = u32::from_le_bytes(bytes[hdr::TENSORS_OFF..hdr::TENSORS_OFF + 4].try_into().unwrap()) as usize;
        // Tensor 2 (the output) moved onto the input's bytes.
        let at = tensors + 2 * crate::format::TENSOR_RECORD_LEN + crate::format::trec::ARENA_OFF;
        bytes[at..at + 4].copy_from_slice(&0u32.to_le_bytes());
        let crc = crate::format::crc32(&bytes[crate::format::CHECKSUM_START..]);
        bytes[hdr::CRC..hdr::CRC + 4].copy_from_slice(&crc.to_le_bytes());
        let blob = AlignedBlob::new(&bytes);
        assert_eq!(
            Model::parse(&blob).unwrap_err(),
            Error::BadGraph { reason: "a node writes over an autoencoder's input, which must stay intact" }
        );
    }

    #[test]
    fn the_rescale_fits_in_32_bits_for_every_ratio_it_takes() {
        let t = |scale: f32| TensorInfo {
            dtype: DType::I8,
            len: 4,
            arena_offset: 0,
            scale,
            zero_point: 0,
            height: 0,
            width: 0,
        };
        assert!(Rescale::new(t(1.0e8), t(1.0e-8)).is_err(), "a ratio of 1e16");
        assert!(Rescale::new(t(128.0), t(1.0)).is_err());
        assert!(Rescale::new(t(f32::NAN), t(1.0)).is_err());
        // The largest ratio taken, at the extreme codes: no overflow.
        let wide = Rescale::new(t(127.9), t(1.0)).unwrap();
        let d = (127i64 << FRACTION_BITS) + (127.9f64 * 128.0 * 256.0).round() as i64;
        // The multiplier keeps 15 bits: within 1e-4 of the exact square.
        let exact = (d * d) as f64;
        assert!((wide.squared(127, -128) as f64 - exact).abs() <= 1e-4 * exact, "{}", wide.squared(127, -128));
        let same = Rescale::new(t(0.1), t(0.1)).unwrap();
        assert_eq!(same.squared(5, 5), 0);
        assert_eq!(same.squared(6, 5), 1 << (2 * FRACTION_BITS));
        // A tiny ratio keeps its bits: 1/1000 in 15 bits.
        let tiny = Rescale::new(t(0.001), t(1.0)).unwrap();
        assert!(tiny.multiplier >= 1 << 14, "{tiny:?}");
    }
}
