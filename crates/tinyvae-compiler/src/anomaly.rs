//! The host half of anomaly detection with an autoencoder blob: scoring files of feature
//! vectors as the device would, choosing the alarm threshold for a target false-positive rate
//! on normal data, and the AUROC of scores against labelled anomalies.

use ndarray::Array2;
use serde::Serialize;
use tinyvae::{Score, ScoreKind};
use tinyvae_data::features::Features;

use crate::pipeline::PipelineError;
use crate::runner;

/// The blob's scores of `kind` of every vector of `features` (integer arithmetic on int8
/// blobs, as on a device), on the fastest kernel table.
pub fn score_features(blob: &[u8], features: &Features, kind: ScoreKind) -> Result<Vec<Score>, PipelineError> {
    let x = Array2::from_shape_vec((features.rows, features.len), features.values.clone()).expect("shape");
    Ok(runner::score_blob(blob, &x, kind, tinyvae::kernels::best())?)
}

/// The float model's scores of `kind` (f64), per row of `x` and its reconstruction `x_hat`:
/// what [`score_features`] computes in the runtime, for comparing the two. The likelihood keeps
/// each probability half a level (0.5 / 255) from 0, as the runtime does.
pub fn reference_scores(kind: ScoreKind, x: &Array2<f32>, x_hat: &Array2<f32>) -> Vec<f64> {
    match kind {
        ScoreKind::SquaredError => crate::metrics::reconstruction_errors(x, x_hat),
        ScoreKind::BernoulliNll => {
            let floor = 0.5 / 255.0;
            x.outer_iter()
                .zip(x_hat.outer_iter())
                .map(|(x, p)| {
                    x.iter()
                        .zip(p)
                        .map(|(&v, &p)| {
                            let (v, p) = (v as f64, p as f64);
                            -(v * p.max(floor).ln() + (1.0 - v) * (1.0 - p).max(floor).ln())
                        })
                        .sum()
                })
                .collect()
        }
    }
}

/// A score kind by its command-line name: `mse` or `nll` (the Bernoulli negative
/// log-likelihood).
pub fn parse_score_kind(name: &str) -> Result<ScoreKind, String> {
    match name {
        "mse" => Ok(ScoreKind::SquaredError),
        "nll" => Ok(ScoreKind::BernoulliNll),
        other => Err(format!("`{other}` is not a score: mse (squared error) or nll (Bernoulli likelihood)")),
    }
}

/// The command-line name of a score kind.
pub fn score_kind_name(kind: ScoreKind) -> &'static str {
    match kind {
        ScoreKind::SquaredError => "mse",
        ScoreKind::BernoulliNll => "nll",
    }
}

/// An alarm threshold and what it does on the data it was chosen on.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Threshold {
    /// Alarm when `Score::raw` is above this.
    pub raw: u64,
    /// The same threshold as a value of the score (a mean squared error, or nats).
    pub value: f64,
    /// The false-positive rate asked for.
    pub target_fpr: f64,
    /// The fraction of the normal vectors above the threshold (at most `target_fpr`).
    pub normal_fpr: f64,
    /// Normal vectors it was chosen on.
    pub normal_vectors: usize,
}

/// The lowest threshold at which at most `fpr` of the `normal` scores raise an alarm
/// (`raw > threshold`). `fpr` is clamped to [0, 1]; an empty set gives `u64::MAX`.
pub fn threshold_for_fpr(normal: &[Score], fpr: f64) -> Threshold {
    let fpr = if fpr.is_nan() { 0.0 } else { fpr.clamp(0.0, 1.0) };
    let mut raw: Vec<u64> = normal.iter().map(|s| s.raw).collect();
    raw.sort_unstable();
    let n = raw.len();
    // At most `allowed` vectors may lie above the threshold; the threshold is the score of
    // the highest vector that must not alarm.
    let allowed = ((fpr * n as f64).floor() as usize).min(n);
    let threshold = if n == 0 || allowed == n {
        raw.first().map_or(u64::MAX, |&r| r.saturating_sub(1))
    } else {
        raw[n - 1 - allowed]
    };
    let above = raw.iter().filter(|&&r| r > threshold).count();
    let unit = normal.first().map_or(0.0, |s| s.unit as f64);
    Threshold {
        raw: threshold,
        value: threshold as f64 * unit,
        target_fpr: fpr,
        normal_fpr: if n == 0 { 0.0 } else { above as f64 / n as f64 },
        normal_vectors: n,
    }
}

/// The area under the ROC curve of scores separating `anomalous` (positives) from `normal`:
/// the probability that a random anomaly scores above a random normal vector, ties counting
/// one half (the Mann-Whitney statistic). 0.5 when either set is empty.
pub fn auroc(normal: &[f64], anomalous: &[f64]) -> f64 {
    if normal.is_empty() || anomalous.is_empty() {
        return 0.5;
    }
    let mut all: Vec<(f64, bool)> =
        normal.iter().map(|&s| (s, false)).chain(anomalous.iter().map(|&s| (s, true))).collect();
    all.sort_by(|a, b| a.0.total_cmp(&b.0));
    // Sum of the anomalies' ranks (1-based), ties sharing their mean rank.
    let mut rank_sum = 0f64;
    let mut i = 0;
    while i < all.len() {
        let mut j = i;
        while j < all.len() && all[j].0 == all[i].0 {
            j += 1;
        }
        let mean_rank = (i + 1 + j) as f64 / 2.0;
        rank_sum += mean_rank * all[i..j].iter().filter(|e| e.1).count() as f64;
        i = j;
    }
    let (p, n) = (anomalous.len() as f64, normal.len() as f64);
    (rank_sum - p * (p + 1.0) / 2.0) / (p * n)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scores(raw: &[u64]) -> Vec<Score> {
        raw.iter().map(|&raw| Score { raw, unit: 0.5 }).collect()
    }

    #[test]
    fn the_threshold_keeps_the_false_positives_within_the_target() {
        let normal = scores(&[5, 1, 9, 3, 7, 2, 8, 4, 6, 10]);
        let t = threshold_for_fpr(&normal, 0.2);
        assert_eq!((t.raw, t.normal_fpr, t.value), (8, 0.2, 4.0));
        assert_eq!(threshold_for_fpr(&normal, 0.0).raw, 10);
        assert_eq!(threshold_for_fpr(&normal, 0.15).raw, 9);
        assert_eq!(threshold_for_fpr(&normal, 1.0).raw, 0);
        // Ties never let more than the target through.
        let tied = scores(&[4, 4, 4, 4, 1]);
        let t = threshold_for_fpr(&tied, 0.5);
        assert!(t.normal_fpr <= 0.5, "{t:?}");
        assert_eq!(threshold_for_fpr(&[], 0.1).raw, u64::MAX);
    }

    #[test]
    fn auroc_is_the_probability_an_anomaly_scores_higher() {
        assert_eq!(auroc(&[1.0, 2.0], &[3.0, 4.0]), 1.0);
        assert_eq!(auroc(&[3.0, 4.0], &[1.0, 2.0]), 0.0);
        assert_eq!(auroc(&[1.0, 1.0], &[1.0, 1.0]), 0.5);
        // 3 of 4 pairs ordered right.
        assert_eq!(auroc(&[1.0, 3.0], &[2.0, 4.0]), 0.75);
        assert_eq!(auroc(&[], &[1.0]), 0.5);
    }
}
