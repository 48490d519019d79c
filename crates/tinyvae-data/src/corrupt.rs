//! The denoising autoencoder's corruption processes q(x~ | x) from the lecture: zero-masking,
//! additive Gaussian noise and salt-and-pepper noise, drawn from the runtime's deterministic PRNG
//! so a seed fixes the corrupted images everywhere they are made (training, figures, checks).

use tinyvae::Rng;

/// A corruption process and its strength.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Corruption {
    /// Each pixel set to 0 with probability `rate` (the lecture's "zeroing pixels at random").
    Masking {
        /// Probability of zeroing a pixel.
        rate: f32,
    },
    /// `x + N(0, sigma^2)`, clipped to [0, 1].
    Gaussian {
        /// Standard deviation.
        sigma: f32,
    },
    /// Each pixel set to 0 or 1 (even odds) with probability `rate`.
    SaltPepper {
        /// Probability of replacing a pixel.
        rate: f32,
    },
}

impl Corruption {
    /// Parses `masking`, `gaussian` or `salt-pepper` with a strength.
    pub fn new(kind: &str, strength: f32) -> Result<Corruption, String> {
        if !(0.0..=1.0).contains(&strength) && kind != "gaussian" || strength.is_nan() || strength < 0.0 {
            return Err(format!("noise strength {strength} is out of range"));
        }
        match kind {
            "masking" => Ok(Corruption::Masking { rate: strength }),
            "gaussian" => Ok(Corruption::Gaussian { sigma: strength }),
            "salt-pepper" | "salt-and-pepper" => Ok(Corruption::SaltPepper { rate: strength }),
            other => Err(format!("unknown corruption `{other}` (use masking, gaussian or salt-pepper)")),
        }
    }

    /// Corrupts `x` (values in [0, 1]) in place, drawing from `rng`.
    pub fn apply(&self, x: &mut [f32], rng: &mut Rng) {
        match *self {
            Corruption::Masking { rate } => {
                for v in x {
                    if rng.uniform() <= rate {
                        *v = 0.0;
                    }
                }
            }
            Corruption::Gaussian { sigma } => {
                for v in x {
                    *v = (*v + sigma * rng.gaussian()).clamp(0.0, 1.0);
                }
            }
            Corruption::SaltPepper { rate } => {
                for v in x {
                    if rng.uniform() <= rate {
                        *v = (rng.next_u64() >> 63) as f32;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_determinism() {
        let clean = vec![0.5f32; 100_000];
        for c in [Corruption::Masking { rate: 0.25 }, Corruption::SaltPepper { rate: 0.25 }] {
            let mut x = clean.clone();
            c.apply(&mut x, &mut Rng::new(1));
            let changed = x.iter().filter(|&&v| v != 0.5).count() as f64 / x.len() as f64;
            assert!((changed - 0.25).abs() < 0.01, "{c:?}: {changed}");
            let mut y = clean.clone();
            c.apply(&mut y, &mut Rng::new(1));
            assert_eq!(x, y);
        }
        let mut x = clean.clone();
        Corruption::Gaussian { sigma: 0.1 }.apply(&mut x, &mut Rng::new(2));
        let var = x.iter().map(|v| (v - 0.5) * (v - 0.5)).sum::<f32>() / x.len() as f32;
        assert!((var.sqrt() - 0.1).abs() < 0.005, "{}", var.sqrt());
        assert!(Corruption::new("blur", 0.1).is_err() && Corruption::new("masking", 1.5).is_err());
    }
}
