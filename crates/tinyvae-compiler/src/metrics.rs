//! Fidelity of a quantized model against its full-precision reference.

use serde::Serialize;

/// Error statistics of `got` against `reference` over every output value of every sample.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Fidelity {
    /// Samples compared.
    pub samples: usize,
    /// Largest absolute difference.
    pub max_abs: f64,
    /// Mean absolute difference.
    pub mean_abs: f64,
    /// Root mean squared difference.
    pub rmse: f64,
    /// Peak signal-to-noise ratio in dB: `10 log10(peak^2 / MSE)`; infinite when identical.
    pub psnr_db: f64,
    /// The peak used (1.0 for [0, 1] images, else the reference's value range).
    pub peak: f64,
}

impl Fidelity {
    /// Compares flat arrays of equal length holding `samples` samples. `peak` of `None` uses
    /// the reference's range (max - min).
    pub fn compare(reference: &[f32], got: &[f32], samples: usize, peak: Option<f64>) -> Fidelity {
        assert_eq!(reference.len(), got.len(), "fidelity needs equal-length outputs");
        let n = reference.len().max(1) as f64;
        let (mut max_abs, mut sum_abs, mut sum_sq) = (0f64, 0f64, 0f64);
        let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
        for (&r, &g) in reference.iter().zip(got) {
            let d = (r as f64 - g as f64).abs();
            max_abs = max_abs.max(d);
            sum_abs += d;
            sum_sq += d * d;
            lo = lo.min(r as f64);
            hi = hi.max(r as f64);
        }
        let peak = peak.unwrap_or(if hi > lo { hi - lo } else { 1.0 });
        let mse = sum_sq / n;
        let psnr_db = if mse == 0.0 { f64::INFINITY } else { 10.0 * (peak * peak / mse).log10() };
        Fidelity { samples, max_abs, mean_abs: sum_abs / n, rmse: mse.sqrt(), psnr_db, peak }
    }
}

#[cfg(test)]
mod tests {
    use super::Fidelity;

    #[test]
    fn psnr_of_a_known_error() {
        // Every value off by 0.01 on a [0, 1] scale: MSE 1e-4, PSNR 40 dB.
        let r = vec![0.5f32; 100];
        let g = vec![0.51f32; 100];
        let f = Fidelity::compare(&r, &g, 1, Some(1.0));
        assert!((f.psnr_db - 40.0).abs() < 1e-3, "{}", f.psnr_db);
        assert!((f.max_abs - 0.01).abs() < 1e-6 && (f.mean_abs - 0.01).abs() < 1e-6);
        assert!(Fidelity::compare(&r, &r, 1, None).psnr_db.is_infinite());
    }
}

/// How closely an autoencoder blob's anomaly score (its reconstruction error, as the runtime
/// computes it on the device) follows the reference model's reconstruction error, per vector.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ScoreAgreement {
    /// Vectors compared.
    pub vectors: usize,
    /// Mean reconstruction error (MSE) of the reference.
    pub reference_mse: f64,
    /// Mean of the blob's scores (MSE).
    pub blob_mse: f64,
    /// `|blob_mse - reference_mse| / reference_mse`.
    pub relative_error_of_mean: f64,
    /// Median over vectors of `|score - reference| / reference`.
    pub median_relative_error: f64,
    /// Largest of those.
    pub max_relative_error: f64,
}

impl ScoreAgreement {
    /// Compares per-vector scores; `reference` and `got` have one entry per vector.
    pub fn compare(reference: &[f64], got: &[f64]) -> ScoreAgreement {
        assert_eq!(reference.len(), got.len(), "one score per vector on both sides");
        let n = reference.len().max(1) as f64;
        let reference_mse = reference.iter().sum::<f64>() / n;
        let blob_mse = got.iter().sum::<f64>() / n;
        let mut rel: Vec<f64> =
            reference.iter().zip(got).map(|(&r, &g)| if r > 0.0 { (g - r).abs() / r } else { (g - r).abs() }).collect();
        rel.sort_by(f64::total_cmp);
        ScoreAgreement {
            vectors: reference.len(),
            reference_mse,
            blob_mse,
            relative_error_of_mean: if reference_mse > 0.0 {
                (blob_mse - reference_mse).abs() / reference_mse
            } else {
                0.0
            },
            median_relative_error: rel.get(rel.len() / 2).copied().unwrap_or(0.0),
            max_relative_error: rel.last().copied().unwrap_or(0.0),
        }
    }
}

/// How a classifier blob's answers (as the runtime gives them on the device) compare with the
/// reference model's argmax, and both with the labels when the inputs have them.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ClassAgreement {
    /// Inputs compared.
    pub inputs: usize,
    /// Fraction of inputs whose blob class is the reference's.
    pub agreement: f64,
    /// The reference's error rate against the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reference_error: Option<f64>,
    /// The blob's error rate against the labels.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub blob_error: Option<f64>,
}

impl ClassAgreement {
    /// Compares the reference's logits (one row per input) with the blob's classes, and
    /// both with `labels` when given (one per input).
    pub fn compare(reference_logits: &ndarray::Array2<f32>, got: &[u32], labels: Option<&[u8]>) -> ClassAgreement {
        let reference: Vec<u32> =
            reference_logits.rows().into_iter().map(|r| tinyvae::first_max(r.iter().copied())).collect();
        assert_eq!(reference.len(), got.len(), "one class per input on both sides");
        let n = got.len().max(1) as f64;
        let share =
            |a: &[u32], b: &mut dyn Iterator<Item = u32>| a.iter().zip(b).filter(|(x, y)| **x == *y).count() as f64 / n;
        let error = |classes: &[u32]| labels.map(|l| 1.0 - share(classes, &mut l.iter().map(|&v| v as u32)));
        ClassAgreement {
            inputs: got.len(),
            agreement: share(&reference, &mut got.iter().copied()),
            reference_error: error(&reference),
            blob_error: error(got),
        }
    }
}

/// Per-row mean squared difference of `x_hat` against `x` (an autoencoder's reconstruction
/// error).
pub fn reconstruction_errors(x: &ndarray::Array2<f32>, x_hat: &ndarray::Array2<f32>) -> Vec<f64> {
    x.outer_iter()
        .zip(x_hat.outer_iter())
        .map(|(a, b)| a.iter().zip(b).map(|(&p, &q)| ((q - p) as f64).powi(2)).sum::<f64>() / a.len().max(1) as f64)
        .collect()
}
