//! Fitting a decoder's learned latent prior: a Gaussian mixture over the encoder's codes of
//! the training images, stored in the decoder blob (format version 4) and sampled by the
//! runtime ([`tinyvae::Prior`]).
//!
//! The fit is k-means++ seeding, a few Lloyd steps, then EM with full covariances plus a small
//! ridge on the diagonal; the number of components is given, or chosen by the log-likelihood
//! of held-out codes. It is written here on plain `f64` slices rather than taken from a crate:
//! linfa's mixture would bring ndarray-linalg's LAPACK bindings or a second linear-algebra
//! stack into the build for about two hundred lines of arithmetic on at most 64 dimensions,
//! and the fit must be deterministic for a seed (it seeds from the runtime's own
//! [`tinyvae::Rng`]) so that a rebuilt model carries the same bytes.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use tinyvae::format::{MAX_PRIOR_COMPONENTS, MAX_PRIOR_LATENT};
use tinyvae::PriorSpec;
use tinyvae::Rng;

/// Codes: `n` points of `dim` values, row-major.
#[derive(Debug, Clone)]
pub struct Codes {
    /// The values, `n * dim`.
    pub values: Vec<f64>,
    /// Values per point.
    pub dim: usize,
}

impl Codes {
    /// Number of points.
    pub fn len(&self) -> usize {
        self.values.len().checked_div(self.dim).unwrap_or(0)
    }

    /// True with no points.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn point(&self, i: usize) -> &[f64] {
        &self.values[i * self.dim..(i + 1) * self.dim]
    }

    /// The first `n` points and the rest.
    pub fn split_at(&self, n: usize) -> (Codes, Codes) {
        let (a, b) = self.values.split_at(n.min(self.len()) * self.dim);
        (Codes { values: a.to_vec(), dim: self.dim }, Codes { values: b.to_vec(), dim: self.dim })
    }
}

/// How to fit.
#[derive(Debug, Clone)]
pub struct FitSettings {
    /// Component counts to try; the one whose fit gives the held-out codes the highest
    /// likelihood wins. One value: that many components, no held-out choice.
    pub candidates: Vec<usize>,
    /// Fraction of the codes held out to choose among the candidates.
    pub held_out: f64,
    /// Added to every covariance's diagonal, relative to the codes' mean variance.
    pub ridge: f64,
    /// Most EM iterations.
    pub max_iterations: usize,
    /// EM stops when the mean log-likelihood per code rises by less than this.
    pub tolerance: f64,
    /// Seed of k-means++.
    pub seed: u64,
}

impl Default for FitSettings {
    fn default() -> Self {
        FitSettings {
            candidates: vec![1, 2, 5, 10, 15, 20, 30, 40, 50],
            held_out: 0.2,
            ridge: 1e-3,
            max_iterations: 300,
            tolerance: 1e-5,
            seed: 0,
        }
    }
}

/// Why a fit could not be made.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PriorError {
    /// Too few codes for the components asked for.
    #[error("{codes} codes are too few for a mixture of {components} components (need at least {need})")]
    TooFewCodes {
        /// Codes given.
        codes: usize,
        /// Components asked for.
        components: usize,
        /// Codes needed.
        need: usize,
    },
    /// A component count or latent size the blob format cannot store.
    #[error("{what} is {value}; a stored prior allows 1..={max}")]
    OutOfRange {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: usize,
        /// The format's limit.
        max: usize,
    },
    /// A code is NaN or infinite.
    #[error("code {index} is not finite")]
    NotFinite {
        /// Index of the code.
        index: usize,
    },
}

/// A fitted Gaussian mixture.
#[derive(Debug, Clone)]
pub struct Mixture {
    /// Values per point.
    pub dim: usize,
    /// Component weights, summing to 1.
    pub weights: Vec<f64>,
    /// `components x dim` means.
    pub means: Vec<f64>,
    /// `components` packed lower Cholesky factors of the covariances, `dim (dim + 1) / 2` each.
    pub cholesky: Vec<f64>,
    /// EM iterations run.
    pub iterations: usize,
}

/// One candidate's figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// Components.
    pub components: usize,
    /// Mean log-likelihood per training code (nats).
    pub train_log_likelihood: f64,
    /// Mean log-likelihood per held-out code (nats).
    pub held_out_log_likelihood: f64,
}

/// The chosen mixture, refitted on every code, and what each candidate scored.
#[derive(Debug, Clone)]
pub struct PriorFit {
    /// The mixture to store.
    pub mixture: Mixture,
    /// Mean log-likelihood per code of all codes under it (nats).
    pub log_likelihood: f64,
    /// Each candidate, in the order tried (empty when one count was given).
    pub candidates: Vec<Candidate>,
}

/// Values in a packed lower triangle of side `d`; row `i` starts at `tri(i)`.
const fn tri(d: usize) -> usize {
    d * (d + 1) / 2
}

impl Mixture {
    /// Number of components.
    pub fn components(&self) -> usize {
        self.weights.len()
    }

    /// The stored form (f32 values, integer weights).
    pub fn to_spec(&self) -> Result<PriorSpec, tinyvae::Error> {
        let f = |v: &[f64]| v.iter().map(|&x| x as f32).collect();
        PriorSpec::from_weights(&self.weights, f(&self.means), f(&self.cholesky))
    }

    /// `log p(x)` of one point.
    fn log_density(&self, x: &[f64], scratch: &mut [f64], logs: &mut [f64]) -> f64 {
        for (k, l) in logs.iter_mut().enumerate() {
            *l = self.weights[k].ln() + self.component_log_density(k, x, scratch);
        }
        log_sum_exp(logs)
    }

    /// `log N(x | mean_k, L_k L_kᵀ)`: solve `L y = x - mean` forward, then the quadratic form
    /// is `|y|²` and the log-determinant twice the sum of `log L_ii`.
    fn component_log_density(&self, k: usize, x: &[f64], y: &mut [f64]) -> f64 {
        let d = self.dim;
        let l = &self.cholesky[k * tri(d)..(k + 1) * tri(d)];
        let mean = &self.means[k * d..(k + 1) * d];
        let (mut quad, mut logdet) = (0.0, 0.0);
        for i in 0..d {
            let row = &l[tri(i)..tri(i) + i + 1];
            let s: f64 = (0..i).map(|j| row[j] * y[j]).sum();
            y[i] = (x[i] - mean[i] - s) / row[i];
            quad += y[i] * y[i];
            logdet += row[i].ln();
        }
        -0.5 * quad - logdet - 0.5 * d as f64 * (2.0 * std::f64::consts::PI).ln()
    }

    /// Mean log-likelihood per point of `codes`.
    pub fn mean_log_likelihood(&self, codes: &Codes) -> f64 {
        let (mut y, mut logs) = (vec![0.0; self.dim], vec![0.0; self.components()]);
        let total: f64 = (0..codes.len()).map(|i| self.log_density(codes.point(i), &mut y, &mut logs)).sum();
        total / codes.len().max(1) as f64
    }
}

fn log_sum_exp(v: &[f64]) -> f64 {
    let m = v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if m == f64::NEG_INFINITY {
        return m;
    }
    m + v.iter().map(|x| (x - m).exp()).sum::<f64>().ln()
}

/// Packed lower Cholesky factor of a packed symmetric matrix; on a non-positive pivot, retries
/// with the diagonal raised (the ridge keeps that rare).
fn cholesky(a: &[f64], d: usize) -> Vec<f64> {
    let mut jitter = 0.0;
    loop {
        let mut l = vec![0.0; tri(d)];
        let mut ok = true;
        'rows: for i in 0..d {
            for j in 0..=i {
                let mut s = a[tri(i) + j] + if i == j { jitter } else { 0.0 };
                for k in 0..j {
                    s -= l[tri(i) + k] * l[tri(j) + k];
                }
                if i == j {
                    if s <= 0.0 || !s.is_finite() {
                        ok = false;
                        break 'rows;
                    }
                    l[tri(i) + i] = s.sqrt();
                } else {
                    l[tri(i) + j] = s / l[tri(j) + j];
                }
            }
        }
        if ok {
            return l;
        }
        let scale = (0..d).map(|i| a[tri(i) + i].abs()).fold(1e-12, f64::max);
        jitter = if jitter == 0.0 { 1e-9 * scale } else { jitter * 10.0 };
    }
}

/// k-means++ seeds, then `steps` Lloyd iterations: hard assignments to start EM from.
fn kmeans(codes: &Codes, k: usize, seed: u64, steps: usize) -> Vec<usize> {
    let (n, d) = (codes.len(), codes.dim);
    let mut rng = Rng::new(seed);
    let dist = |a: &[f64], b: &[f64]| a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum::<f64>();
    let mut centres: Vec<f64> = codes.point(rng.below(n as u32) as usize).to_vec();
    let mut nearest: Vec<f64> = (0..n).map(|i| dist(codes.point(i), &centres[..d])).collect();
    while centres.len() < k * d {
        let total: f64 = nearest.iter().sum();
        let mut target = rng.uniform() as f64 * total;
        let mut pick = n - 1;
        for (i, w) in nearest.iter().enumerate() {
            if target < *w {
                pick = i;
                break;
            }
            target -= w;
        }
        let c = codes.point(pick).to_vec();
        for (i, m) in nearest.iter_mut().enumerate() {
            *m = m.min(dist(codes.point(i), &c));
        }
        centres.extend(c);
    }
    let mut assign = vec![0usize; n];
    for _ in 0..steps {
        for (i, a) in assign.iter_mut().enumerate() {
            let p = codes.point(i);
            *a = (0..k)
                .min_by(|&x, &y| dist(p, &centres[x * d..][..d]).total_cmp(&dist(p, &centres[y * d..][..d])))
                .unwrap_or(0);
        }
        let mut sums = vec![0.0; k * d];
        let mut counts = vec![0usize; k];
        for (i, &a) in assign.iter().enumerate() {
            counts[a] += 1;
            sums[a * d..(a + 1) * d].iter_mut().zip(codes.point(i)).for_each(|(s, v)| *s += v);
        }
        for c in 0..k {
            if counts[c] > 0 {
                for j in 0..d {
                    centres[c * d + j] = sums[c * d + j] / counts[c] as f64;
                }
            }
        }
    }
    assign
}

/// M step: weights, means and ridged covariances from responsibilities `resp` (`n x k`).
fn maximize(codes: &Codes, resp: &[f64], k: usize, ridge: f64) -> Mixture {
    let (n, d) = (codes.len(), codes.dim);
    let mut mixture =
        Mixture { dim: d, weights: vec![0.0; k], means: vec![0.0; k * d], cholesky: Vec::new(), iterations: 0 };
    let mut cov = vec![0.0; tri(d)];
    let mut diff = vec![0.0; d];
    for c in 0..k {
        let nk: f64 = (0..n).map(|i| resp[i * k + c]).sum::<f64>() + 1e-10;
        let mean = &mut mixture.means[c * d..(c + 1) * d];
        for i in 0..n {
            let r = resp[i * k + c];
            mean.iter_mut().zip(codes.point(i)).for_each(|(m, v)| *m += r * v);
        }
        mean.iter_mut().for_each(|m| *m /= nk);
        cov.iter_mut().for_each(|v| *v = 0.0);
        for i in 0..n {
            let r = resp[i * k + c];
            if r < 1e-12 {
                continue;
            }
            diff.iter_mut().zip(codes.point(i)).zip(mean.iter()).for_each(|((o, x), m)| *o = x - m);
            for a in 0..d {
                let ra = r * diff[a];
                let row = &mut cov[tri(a)..tri(a) + a + 1];
                row.iter_mut().zip(&diff[..=a]).for_each(|(v, b)| *v += ra * b);
            }
        }
        cov.iter_mut().for_each(|v| *v /= nk);
        (0..d).for_each(|a| cov[tri(a) + a] += ridge);
        mixture.weights[c] = nk / n as f64;
        mixture.cholesky.extend(cholesky(&cov, d));
    }
    let total: f64 = mixture.weights.iter().sum();
    mixture.weights.iter_mut().for_each(|w| *w /= total);
    mixture
}

/// EM for `k` components on `codes`.
fn fit_components(codes: &Codes, k: usize, s: &FitSettings, ridge: f64) -> Mixture {
    let n = codes.len();
    let mut resp = vec![0.0; n * k];
    for (i, a) in kmeans(codes, k, s.seed, 10).into_iter().enumerate() {
        resp[i * k + a] = 1.0;
    }
    let mut mixture = maximize(codes, &resp, k, ridge);
    let mut previous = f64::NEG_INFINITY;
    let (mut y, mut logs) = (vec![0.0; codes.dim], vec![0.0; k]);
    for iteration in 1..=s.max_iterations {
        // E step; the log-likelihood is the one of the mixture before this M step.
        let mut total = 0.0;
        for i in 0..n {
            let lse = mixture.log_density(codes.point(i), &mut y, &mut logs);
            total += lse;
            for c in 0..k {
                resp[i * k + c] = (logs[c] - lse).exp();
            }
        }
        let ll = total / n as f64;
        let next = maximize(codes, &resp, k, ridge);
        mixture = Mixture { iterations: iteration, ..next };
        if ll - previous < s.tolerance {
            break;
        }
        previous = ll;
    }
    mixture
}

/// Fits the prior: every candidate count on the training part, the best by held-out
/// likelihood refitted on all codes. `progress` hears each candidate as it finishes.
pub fn fit_prior(
    codes: &Codes,
    s: &FitSettings,
    progress: &(dyn Fn(&Candidate) + Sync),
) -> Result<PriorFit, PriorError> {
    let d = codes.dim;
    if d == 0 || d > MAX_PRIOR_LATENT {
        return Err(PriorError::OutOfRange { what: "the latent size", value: d, max: MAX_PRIOR_LATENT });
    }
    if let Some(i) = codes.values.iter().position(|v| !v.is_finite()) {
        return Err(PriorError::NotFinite { index: i / d });
    }
    for &k in &s.candidates {
        if k == 0 || k > MAX_PRIOR_COMPONENTS {
            return Err(PriorError::OutOfRange {
                what: "the number of components",
                value: k,
                max: MAX_PRIOR_COMPONENTS,
            });
        }
    }
    let largest = s.candidates.iter().copied().max().unwrap_or(1);
    // Each component's covariance needs more points than dimensions; the held-out part too.
    let need = largest * (d + 1) * if s.candidates.len() > 1 { 2 } else { 1 };
    if codes.len() < need {
        return Err(PriorError::TooFewCodes { codes: codes.len(), components: largest, need });
    }
    let n = codes.len() as f64;
    let variance: f64 = (0..d)
        .map(|j| {
            let mean = (0..codes.len()).map(|i| codes.point(i)[j]).sum::<f64>() / n;
            (0..codes.len()).map(|i| (codes.point(i)[j] - mean).powi(2)).sum::<f64>() / n
        })
        .sum::<f64>()
        / d as f64;
    let ridge = s.ridge * variance.max(1e-12);

    let chosen = if let [k] = s.candidates[..] {
        (k, Vec::new())
    } else {
        let held = ((codes.len() as f64 * s.held_out) as usize).clamp(1, codes.len() - 1);
        let (train, test) = codes.split_at(codes.len() - held);
        let results = Mutex::new(Vec::new());
        let next = AtomicUsize::new(0);
        let workers = std::thread::available_parallelism().map_or(1, |n| n.get()).min(s.candidates.len());
        std::thread::scope(|scope| {
            for _ in 0..workers {
                scope.spawn(|| loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(&k) = s.candidates.get(i) else { break };
                    let m = fit_components(&train, k, s, ridge);
                    let c = Candidate {
                        components: k,
                        train_log_likelihood: m.mean_log_likelihood(&train),
                        held_out_log_likelihood: m.mean_log_likelihood(&test),
                    };
                    progress(&c);
                    results.lock().expect("no worker panics").push((i, c));
                });
            }
        });
        let mut results = results.into_inner().expect("no worker panics");
        results.sort_by_key(|r| r.0);
        let candidates: Vec<Candidate> = results.into_iter().map(|r| r.1).collect();
        let best = candidates
            .iter()
            .max_by(|a, b| a.held_out_log_likelihood.total_cmp(&b.held_out_log_likelihood))
            .map_or(1, |c| c.components);
        (best, candidates)
    };
    let mixture = fit_components(codes, chosen.0, s, ridge);
    let log_likelihood = mixture.mean_log_likelihood(codes);
    Ok(PriorFit { mixture, log_likelihood, candidates: chosen.1 })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `n` points from a known 2-D mixture, drawn with the runtime's sampler.
    fn two_clusters(n: usize) -> Codes {
        let mut rng = Rng::new(11);
        let mut values = Vec::new();
        for i in 0..n {
            let (g0, g1) = (rng.gaussian() as f64, rng.gaussian() as f64);
            if i % 4 == 0 {
                values.extend([-3.0 + 0.5 * g0, 2.0 + 0.5 * g1]);
            } else {
                // Covariance [[1, 0.8], [0.8, 1]]: L = [[1, 0], [0.8, 0.6]].
                values.extend([4.0 + g0, 0.8 * g0 + 0.6 * g1]);
            }
        }
        Codes { values, dim: 2 }
    }

    #[test]
    fn recovers_a_known_mixture_and_chooses_its_size() {
        let codes = two_clusters(4000);
        let s = FitSettings { candidates: vec![1, 2, 3, 6], ..FitSettings::default() };
        let fit = fit_prior(&codes, &s, &|_| {}).unwrap();
        let m = &fit.mixture;
        assert_eq!(m.components(), 2, "{:?}", fit.candidates);
        let small = if m.weights[0] < m.weights[1] { 0 } else { 1 };
        let big = 1 - small;
        assert!((m.weights[small] - 0.25).abs() < 0.02, "{:?}", m.weights);
        assert!((m.means[small * 2] + 3.0).abs() < 0.05 && (m.means[small * 2 + 1] - 2.0).abs() < 0.05);
        let l = &m.cholesky[big * 3..big * 3 + 3];
        assert!((l[0] - 1.0).abs() < 0.05 && (l[1] - 0.8).abs() < 0.05 && (l[2] - 0.6).abs() < 0.05, "{l:?}");
        // One component fits worse on held-out codes than two.
        assert!(fit.candidates[0].held_out_log_likelihood < fit.candidates[1].held_out_log_likelihood);
    }

    #[test]
    fn the_same_seed_gives_the_same_bytes() {
        let codes = two_clusters(1000);
        let s = FitSettings { candidates: vec![3], ..FitSettings::default() };
        let a = fit_prior(&codes, &s, &|_| {}).unwrap().mixture.to_spec().unwrap();
        let b = fit_prior(&codes, &s, &|_| {}).unwrap().mixture.to_spec().unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn impossible_requests_are_errors() {
        let codes = two_clusters(30);
        let s = |c: Vec<usize>| FitSettings { candidates: c, ..FitSettings::default() };
        assert!(matches!(fit_prior(&codes, &s(vec![20]), &|_| {}), Err(PriorError::TooFewCodes { .. })));
        assert!(matches!(fit_prior(&codes, &s(vec![0]), &|_| {}), Err(PriorError::OutOfRange { .. })));
        assert!(matches!(fit_prior(&codes, &s(vec![300]), &|_| {}), Err(PriorError::OutOfRange { .. })));
        let mut bad = codes.clone();
        bad.values[7] = f64::NAN;
        assert_eq!(fit_prior(&bad, &s(vec![1]), &|_| {}).unwrap_err(), PriorError::NotFinite { index: 3 });
    }
}
