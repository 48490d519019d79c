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
/// Units of a Bernoulli negative log-likelihood's `raw` per nat: 255 (pixel levels) x 2^16
/// (the table's fixed point).
const NLL_RAW_PER_NAT: f32 = 255.0 * 65_536.0;

/// `-ln(max(k, 1/2) / 255)` in units of 2^-16 nats, for `k` in 0..=255: the Bernoulli
/// log-likelihood terms of a pixel-quantized probability `k / 255` (and of `1 - p`, at
/// `255 - k`), kept half a level away from 0 (where a sigmoid output rounds to 0 or 1, the
/// logarithm would be infinite). Written out
/// rather than computed, so that every target has the same integers (a test recomputes them).
const NEG_LN_LEVEL: [u32; 256] = [
    408578, 363152, 317726, 291154, 272300, 257676, 245727, 235625, 226874, 219155, 212250, 206004, 200301, 195056,
    190199, 185677, 181448, 177475, 173729, 170185, 166824, 163626, 160578, 157664, 154875, 152200, 149630, 147156,
    144773, 142473, 140251, 138102, 136022, 134005, 132049, 130149, 128303, 126507, 124759, 123057, 121398, 119780,
    118200, 116658, 115152, 113679, 112238, 110829, 109449, 108098, 106774, 105476, 104204, 102955, 101730, 100528,
    99347, 98187, 97047, 95927, 94825, 93742, 92676, 91628, 90596, 89580, 88579, 87594, 86623, 85666, 84723, 83793,
    82877, 81973, 81081, 80201, 79333, 78477, 77631, 76796, 75972, 75158, 74353, 73559, 72774, 71999, 71232, 70474,
    69726, 68985, 68253, 67529, 66812, 66104, 65403, 64709, 64023, 63344, 62672, 62006, 61348, 60696, 60050, 59411,
    58777, 58150, 57529, 56914, 56304, 55700, 55102, 54508, 53921, 53338, 52761, 52188, 51621, 51058, 50501, 49948,
    49399, 48855, 48316, 47781, 47250, 46724, 46202, 45684, 45170, 44660, 44154, 43651, 43153, 42658, 42167, 41680,
    41196, 40716, 40240, 39767, 39297, 38830, 38367, 37907, 37451, 36997, 36547, 36099, 35655, 35214, 34775, 34340,
    33907, 33477, 33051, 32626, 32205, 31786, 31370, 30957, 30546, 30137, 29732, 29328, 28927, 28529, 28133, 27739,
    27348, 26959, 26573, 26188, 25806, 25426, 25048, 24673, 24299, 23928, 23559, 23192, 22827, 22464, 22102, 21743,
    21386, 21031, 20678, 20326, 19977, 19629, 19283, 18939, 18597, 18257, 17918, 17581, 17246, 16912, 16580, 16250,
    15922, 15595, 15270, 14946, 14624, 14303, 13985, 13667, 13351, 13037, 12724, 12413, 12103, 11795, 11488, 11182,
    10878, 10575, 10274, 9974, 9675, 9378, 9082, 8788, 8495, 8203, 7912, 7623, 7335, 7048, 6762, 6478, 6195, 5913,
    5632, 5353, 5075, 4797, 4522, 4247, 3973, 3701, 3429, 3159, 2890, 2622, 2355, 2089, 1824, 1560, 1298, 1036, 776,
    516, 258, 0,
];

/// What an autoencoder's anomaly score measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ScoreKind {
    /// The mean squared reconstruction error over the features.
    #[default]
    SquaredError,
    /// The Bernoulli negative log-likelihood of the input under the output (a VAE's or a
    /// sigmoid autoencoder's reconstruction term), summed over the features, in nats: for
    /// inputs and outputs in [0, 1] (pixel-quantized on int8 blobs: scale 1/255, zero point
    /// -128).
    BernoulliNll,
}

/// One sample's anomaly score: `value = raw * unit` (the mean squared error, or the negative
/// log-likelihood in nats; [`ScoreKind`]).
///
/// `raw` is what to compare on a device: for int8 blobs it is exact integer arithmetic (the
/// sum of squared differences in units of the output's scale / 256; the likelihood in units of
/// 1 / (255 * 2^16) nats), for float blobs `value` scaled to the same kind of integer. It
/// saturates at `u64::MAX` rather than wrapping.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// The score as an integer, in units of [`Score::unit`].
    pub raw: u64,
    /// What one unit of `raw` is worth.
    pub unit: f32,
}

impl Score {
    /// The score: the mean squared reconstruction error, or the negative log-likelihood.
    pub fn value(&self) -> f32 {
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

impl Rescale {
    fn new(input: TensorInfo, output: TensorInfo) -> Result<Self, Error> {
        let bad = Error::BadGraph { reason: "autoencoder input and output scales are not comparable" };
        let ratio = input.scale as f64 / output.scale as f64;
        // `Model::parse` checked it; kept so that a `Rescale` never exists outside its range.
        if !(ratio > 0.0 && ratio < crate::format::AUTOENCODER_MAX_SCALE_RATIO) {
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
/// assert!((score.value() - mse).abs() <= 0.01 * mse.max(1.0));
/// assert!(!score.exceeds(u64::MAX));
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Autoencoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
    /// `Some` for int8 blobs.
    rescale: Option<Rescale>,
    kind: ScoreKind,
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
        Ok(Autoencoder { model, kernels: kernels::best(), rescale, kind: ScoreKind::SquaredError })
    }

    /// Scores with `kind` instead of the squared error. The Bernoulli likelihood needs an int8
    /// blob's input and output pixel-quantized (values in [0, 1]).
    ///
    /// ```
    /// # use tinyvae::{Autoencoder, Model, ScoreKind};
    /// let blob = tinyvae::AlignedBlob::new(&tinyvae::doc_example_autoencoder());
    /// let model = Model::parse(&blob)?;
    /// // Its output is not a probability: no likelihood.
    /// assert!(Autoencoder::new(&model)?.with_score(ScoreKind::BernoulliNll).is_err());
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn with_score(mut self, kind: ScoreKind) -> Result<Self, Error> {
        if let (ScoreKind::BernoulliNll, Some(r)) = (kind, &self.rescale) {
            if !(r.input.is_pixel_quantized() && r.output.is_pixel_quantized()) {
                return Err(Error::BadGraph {
                    reason: "a Bernoulli likelihood needs pixel-quantized input and output (values in [0, 1])",
                });
            }
        }
        self.kind = kind;
        Ok(self)
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

    /// What one unit of [`Score::raw`] is worth (in mean squared error, or in nats).
    pub fn score_unit(&self) -> f32 {
        match (self.kind, &self.rescale) {
            (ScoreKind::BernoulliNll, _) => 1.0 / NLL_RAW_PER_NAT,
            (ScoreKind::SquaredError, Some(r)) => r.unit(),
            (ScoreKind::SquaredError, None) => 1.0 / FLOAT_RAW_PER_UNIT,
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
            let unit = self.score_unit();
            *score = match (self.kind, &self.rescale) {
                (kind, Some(r)) => {
                    let input = self.model.input_bytes(work, 0, batch)?.get(rows.clone()).ok_or(lost)?;
                    let output = out.get(rows).ok_or(lost)?;
                    let raw = match kind {
                        ScoreKind::SquaredError => r.sum_squared(output, input),
                        ScoreKind::BernoulliNll => pixel_nll(output, input),
                    };
                    Score { raw, unit }
                }
                (kind, None) => {
                    let values = crate::cast::f32s(out).get(rows.clone()).ok_or(lost)?;
                    float_score(kind, values, x.get(rows).ok_or(lost)?)
                }
            };
        }
        Ok(())
    }
}

/// The Bernoulli negative log-likelihood of pixel-quantized input codes `x` under
/// pixel-quantized output codes `out` (level = code + 128), in units of 1 / (255 * 2^16)
/// nats: `sum(x * -ln p + (255 - x) * -ln(1 - p))` with `x` and `p = k / 255` in levels.
fn pixel_nll(out: &[u8], x: &[u8]) -> u64 {
    out.iter().zip(x).fold(0u64, |sum, (&o, &q)| {
        let (k, level) = ((o ^ 0x80) as usize, (q ^ 0x80) as u64);
        let on = NEG_LN_LEVEL.get(k).copied().unwrap_or(0) as u64;
        let off = NEG_LN_LEVEL.get(255 - k).copied().unwrap_or(0) as u64;
        sum.saturating_add(level * on + (255 - level) * off)
    })
}

/// The score of a float reconstruction.
fn float_score(kind: ScoreKind, x_hat: &[f32], x: &[f32]) -> Score {
    let (value, per_unit) = match kind {
        ScoreKind::SquaredError => {
            let sum: f32 = x_hat.iter().zip(x).map(|(a, b)| (a - b) * (a - b)).sum();
            (sum / x.len().max(1) as f32, FLOAT_RAW_PER_UNIT)
        }
        ScoreKind::BernoulliNll => {
            // The same half-level floor as the int8 table, on p and on 1 - p.
            let floor = 0.5 / 255.0;
            let nll: f32 = x_hat
                .iter()
                .zip(x)
                .map(|(&p, &v)| -(v * libm::logf(p.max(floor)) + (1.0 - v) * libm::logf((1.0 - p).max(floor))))
                .sum();
            (nll, NLL_RAW_PER_NAT)
        }
    };
    // `as` saturates; a NaN (a non-finite feature) is the largest score, an alarm.
    let raw = if value.is_nan() { u64::MAX } else { (value * per_unit) as u64 };
    Score { raw, unit: 1.0 / per_unit }
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
        assert_eq!(model.version(), crate::format::VERSION_5);
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
            assert!((score.value() - mse as f32).abs() <= bound, "seed {seed}: {} vs {mse}", score.value());
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
    fn the_likelihood_table_is_minus_the_log_of_each_level() {
        for (k, &t) in NEG_LN_LEVEL.iter().enumerate() {
            let p = (k as f64).max(0.5) / 255.0;
            assert_eq!(t as f64, libm::round(-libm::log(p) * 65536.0), "level {k}");
        }
    }

    #[test]
    fn the_integer_likelihood_is_the_float_one_on_the_levels() {
        // Levels of input and output, the integer sum against the float formula on them.
        let mut rng = crate::Rng::new(3);
        let out: Vec<u8> = (0..784).map(|_| rng.next_u64() as u8).collect();
        let x: Vec<u8> = (0..784).map(|_| rng.next_u64() as u8).collect();
        let raw = pixel_nll(&out, &x);
        let want: f64 = out
            .iter()
            .zip(&x)
            .map(|(&o, &q)| {
                let (k, v) = ((o ^ 0x80) as f64, (q ^ 0x80) as f64 / 255.0);
                let (on, off) = (k.max(0.5) / 255.0, (255.0 - k).max(0.5) / 255.0);
                -(v * libm::log(on) + (1.0 - v) * libm::log(off))
            })
            .sum();
        let got = raw as f64 / NLL_RAW_PER_NAT as f64;
        assert!((got - want).abs() < 1e-3, "{got} vs {want}");
        // And the float path agrees (f32 logarithms).
        let p: Vec<f32> = out.iter().map(|&o| (o ^ 0x80) as f32 / 255.0).collect();
        let v: Vec<f32> = x.iter().map(|&q| (q ^ 0x80) as f32 / 255.0).collect();
        let float = float_score(ScoreKind::BernoulliNll, &p, &v).value() as f64;
        assert!((float - want).abs() < 1e-2 * want, "{float} vs {want}");
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

    /// What the score needs is checked at parse time, so `Autoencoder::new` accepts every
    /// autoencoder blob that parses: an input scale 128 times the output's is refused there.
    #[test]
    fn incomparable_scales_are_refused_by_the_parser() {
        let mut bytes = write::example_autoencoder();
        let tensors = u32::from_le_bytes(bytes[hdr::TENSORS_OFF..hdr::TENSORS_OFF + 4].try_into().unwrap()) as usize;
        let scale_at = |t: usize| tensors + t * crate::format::TENSOR_RECORD_LEN + crate::format::trec::SCALE;
        let output = f32::from_le_bytes(bytes[scale_at(2)..scale_at(2) + 4].try_into().unwrap());
        for (ratio, ok) in [(127.0f32, true), (128.0, false)] {
            bytes[scale_at(0)..scale_at(0) + 4].copy_from_slice(&(output * ratio).to_le_bytes());
            let crc = crate::format::crc32(&bytes[crate::format::CHECKSUM_START..]);
            bytes[hdr::CRC..hdr::CRC + 4].copy_from_slice(&crc.to_le_bytes());
            let blob = AlignedBlob::new(&bytes);
            match Model::parse(&blob) {
                Ok(m) => assert!(ok && Autoencoder::new(&m).is_ok(), "ratio {ratio}"),
                Err(e) => assert!(!ok && e.to_string().contains("not comparable"), "ratio {ratio}: {e}"),
            }
        }
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
