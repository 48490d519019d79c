//! The loss terms of the family, per row of a batch: the closed-form KL of a diagonal
//! Gaussian to N(0, I), the Bernoulli cross-entropy from logits, the Gaussian negative
//! log-likelihoods (identity covariance, or a learned per-pixel variance), the softmax
//! cross-entropy of a classifier and the squared error.
//!
//! Every term is computed from logits in a form that stays finite where the textbook formula
//! overflows (`ln(1 + e^-|l|)` instead of `ln(sigmoid(l))`), and is summed over the last axis,
//! so a caller chooses how to reduce over the batch.

use candle_core::{Tensor, D};

use crate::config::Likelihood;
use crate::error::TrainError;
use crate::nn::one_hot;

/// KL(N(mu, diag exp(logvar)) || N(0, I)) per row, closed form:
/// `0.5 * sum_j (mu_j^2 + exp(logvar_j) - logvar_j - 1)`.
pub fn kl_to_standard_normal(mu: &Tensor, logvar: &Tensor) -> Result<Tensor, TrainError> {
    let t = ((mu.sqr()? + logvar.exp()?)? - logvar)?;
    Ok(((t - 1.0)?.sum(D::Minus1)? * 0.5)?)
}

/// Binary cross-entropy of sigmoid(`logits`) against targets in [0, 1], summed per row,
/// computed stably as `max(l, 0) - l x + ln(1 + e^-|l|)`.
pub fn bce_with_logits(logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    Ok((softplus(logits)? - logits.mul(target)?)?.sum(D::Minus1)?)
}

/// Negative log-likelihood of `target` under N(sigmoid(`logits`), I), summed per row:
/// `0.5 * ||x - mean||^2 + D/2 ln(2 pi)`.
pub fn gaussian_nll(logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    let d = logits.dims()[logits.rank() - 1] as f64;
    let mean = candle_nn::ops::sigmoid(logits)?;
    let half_sq = ((mean - target)?.sqr()?.sum(D::Minus1)? * 0.5)?;
    Ok((half_sq + 0.5 * d * (2.0 * std::f64::consts::PI).ln())?)
}

/// Negative log-likelihood of `target` under N(sigmoid(`logits`), diag exp(`logvar`)), summed
/// per row: `0.5 * sum_j (logvar_j + (x_j - mean_j)^2 exp(-logvar_j) + ln(2 pi))`.
pub fn gaussian_nll_learned_variance(logits: &Tensor, logvar: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    let mean = candle_nn::ops::sigmoid(logits)?;
    let scaled = (mean - target)?.sqr()?.mul(&logvar.neg()?.exp()?)?;
    let per_pixel = ((scaled + logvar)? + (2.0 * std::f64::consts::PI).ln())?;
    Ok((per_pixel.sum(D::Minus1)? * 0.5)?)
}

/// `floor + softplus(x - floor)`: a smooth lower bound at `floor` that is the identity well
/// above it (softplus computed stably as `max(a, 0) + ln(1 + e^-|a|)`).
pub(crate) fn soft_floor(x: &Tensor, floor: f64) -> Result<Tensor, TrainError> {
    Ok((softplus(&(x - floor)?)? + floor)?)
}

/// `ln(1 + e^a)` elementwise, as `max(a, 0) + ln(1 + e^-|a|)` so that it never overflows.
fn softplus(a: &Tensor) -> Result<Tensor, TrainError> {
    Ok((a.relu()? + (a.abs()?.neg()?.exp()? + 1.0)?.log()?)?)
}

/// -log p(x|z) per row for the given likelihood. The learned-variance Gaussian needs its
/// log-variance head: use [`gaussian_nll_learned_variance`] (here it is taken as unit variance,
/// which is [`gaussian_nll`]).
pub fn reconstruction_nll(likelihood: Likelihood, logits: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    match likelihood {
        Likelihood::Bernoulli => bce_with_logits(logits, target),
        Likelihood::Gaussian | Likelihood::GaussianLearned => gaussian_nll(logits, target),
    }
}

/// Per-row cross-entropy `-log softmax(logits)[label]`, computed from log-softmax.
pub fn cross_entropy(logits: &Tensor, labels: &[u8]) -> Result<Tensor, TrainError> {
    let classes = logits.dims()[1];
    let log_q = candle_nn::ops::log_softmax(logits, D::Minus1)?;
    Ok(log_q.mul(&one_hot(labels, classes)?)?.sum(D::Minus1)?.neg()?)
}

/// `||x^ - x||^2` per row.
pub fn squared_error(output: &Tensor, target: &Tensor) -> Result<Tensor, TrainError> {
    Ok((output - target)?.sqr()?.sum(D::Minus1)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// The VAE's floor (`crate::model::DECODER_LOGVAR_FLOOR`).
    const FLOOR: f64 = -6.0;

    fn t(v: &[f32], shape: (usize, usize)) -> Tensor {
        Tensor::from_vec(v.to_vec(), shape, &Device::Cpu).unwrap()
    }

    #[test]
    fn kl_closed_form_matches_numeric_integration() {
        // KL(q || p) = E_q[ln q(z) - ln p(z)], integrated on a fine grid per dimension
        // (the KL of a diagonal Gaussian is the sum over dimensions).
        let mu = [0.7f32, -1.3, 0.0, 2.0];
        let logvar = [-0.5f32, 0.8, 0.0, -2.0];
        let closed = kl_to_standard_normal(&t(&mu, (1, 4)), &t(&logvar, (1, 4))).unwrap();
        let closed = closed.to_vec1::<f32>().unwrap()[0] as f64;
        let mut numeric = 0.0f64;
        for (&m, &lv) in mu.iter().zip(&logvar) {
            let (m, s) = (m as f64, (0.5 * lv as f64).exp());
            let (lo, hi, n) = (m - 12.0 * s, m + 12.0 * s, 200_000);
            let h = (hi - lo) / n as f64;
            for k in 0..=n {
                let z = lo + k as f64 * h;
                let lq = -0.5 * ((z - m) / s).powi(2) - s.ln() - 0.5 * (2.0 * std::f64::consts::PI).ln();
                let lp = -0.5 * z * z - 0.5 * (2.0 * std::f64::consts::PI).ln();
                let w = if k == 0 || k == n { 0.5 } else { 1.0 };
                numeric += w * h * lq.exp() * (lq - lp);
            }
        }
        assert!((closed - numeric).abs() < 1e-4, "closed {closed} numeric {numeric}");
        // And a zero KL at the prior.
        let zero = kl_to_standard_normal(&t(&[0.0; 3], (1, 3)), &t(&[0.0; 3], (1, 3))).unwrap();
        assert_eq!(zero.to_vec1::<f32>().unwrap()[0], 0.0);
    }

    #[test]
    fn bce_from_logits_matches_direct_formula_and_stays_finite() {
        let logits = [-30.0f32, -4.0, -0.5, 0.0, 0.3, 2.5, 9.0, 30.0];
        let target = [0.0f32, 0.2, 1.0, 0.5, 0.0, 0.9, 1.0, 0.3];
        let got = bce_with_logits(&t(&logits, (2, 4)), &t(&target, (2, 4))).unwrap().to_vec1::<f32>().unwrap();
        for row in 0..2 {
            let mut want = 0.0f64;
            for j in 0..4 {
                let (l, x) = (logits[row * 4 + j] as f64, target[row * 4 + j] as f64);
                let p = 1.0 / (1.0 + (-l).exp());
                // Direct formula (f64 keeps ln(1-p) meaningful except at the saturated ends).
                let (lp, l1p) =
                    if l.abs() > 20.0 { (-(-l).exp().ln_1p(), -l.exp().ln_1p()) } else { (p.ln(), (1.0 - p).ln()) };
                want -= x * lp + (1.0 - x) * l1p;
            }
            assert!((got[row] as f64 - want).abs() < 1e-4 * want.max(1.0), "row {row}: {} vs {want}", got[row]);
        }
        // Saturated logits that a naive sigmoid-then-log would turn into inf.
        let huge = bce_with_logits(&t(&[200.0, -200.0], (1, 2)), &t(&[0.0, 1.0], (1, 2))).unwrap();
        assert!((huge.to_vec1::<f32>().unwrap()[0] - 400.0).abs() < 1e-3);
    }

    #[test]
    fn gaussian_nll_is_half_squared_error_plus_constant() {
        let got = gaussian_nll(&t(&[0.0, 0.0], (1, 2)), &t(&[1.0, 0.0], (1, 2))).unwrap().to_vec1::<f32>().unwrap()[0];
        let want = 0.5 * (0.25 + 0.25) + (2.0 * std::f32::consts::PI).ln();
        assert!((got - want).abs() < 1e-5);
    }

    #[test]
    fn learned_variance_nll_matches_the_gaussian_density() {
        let logits = [-1.0f32, 0.0, 2.0, 0.5];
        let logvar = [-2.0f32, 0.0, 1.0, -5.5];
        let x = [0.1f32, 0.9, 0.5, 0.62];
        let got = gaussian_nll_learned_variance(&t(&logits, (1, 4)), &t(&logvar, (1, 4)), &t(&x, (1, 4))).unwrap();
        let want: f64 = (0..4)
            .map(|j| {
                let mean = 1.0 / (1.0 + (-(logits[j] as f64)).exp());
                let var = (logvar[j] as f64).exp();
                // -ln N(x; mean, var)
                0.5 * (2.0 * std::f64::consts::PI * var).ln() + (x[j] as f64 - mean).powi(2) / (2.0 * var)
            })
            .sum();
        assert!((got.to_vec1::<f32>().unwrap()[0] as f64 - want).abs() < 1e-4);
        // Unit variance is the identity-covariance Gaussian.
        let unit = gaussian_nll_learned_variance(&t(&logits, (1, 4)), &t(&[0.0; 4], (1, 4)), &t(&x, (1, 4))).unwrap();
        let identity = gaussian_nll(&t(&logits, (1, 4)), &t(&x, (1, 4))).unwrap();
        assert!((unit.to_vec1::<f32>().unwrap()[0] - identity.to_vec1::<f32>().unwrap()[0]).abs() < 1e-5);
    }

    #[test]
    fn learned_variance_is_optimal_at_the_squared_residual() {
        // d/dlogvar [logvar + r^2 exp(-logvar)] = 1 - r^2 exp(-logvar): zero at exp(logvar) = r^2.
        let (logits, x) = (t(&[0.0, 0.0], (1, 2)), t(&[0.8, 0.3], (1, 2)));
        let r2 = [0.09f64, 0.04];
        let logvar =
            candle_core::Var::from_vec(vec![r2[0].ln() as f32, r2[1].ln() as f32], (1, 2), &Device::Cpu).unwrap();
        let nll = gaussian_nll_learned_variance(&logits, logvar.as_tensor(), &x).unwrap().sum_all().unwrap();
        let g =
            nll.backward().unwrap().get(logvar.as_tensor()).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(g.iter().all(|v| v.abs() < 1e-5), "{g:?}");
    }

    #[test]
    fn soft_floor_bounds_the_log_variance() {
        let raw = t(&[-100.0, -6.0, 0.0, 3.0], (1, 4));
        let v = soft_floor(&raw, FLOOR).unwrap().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        assert!(v.iter().all(|&l| l as f64 >= FLOOR));
        assert!((v[0] as f64 - FLOOR).abs() < 1e-6 && (v[1] as f64 + 6.0 - 2f64.ln()).abs() < 1e-5);
        assert!((v[3] - 3.0).abs() < 1e-3, "the identity well above the floor: {}", v[3]);
    }
}
