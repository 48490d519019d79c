//! The stored latent prior (format version 4) samples what it stores: the mixture's weights,
//! means and covariances, one mixture per label, pinned bits on every target (this file also
//! runs under `qemu-aarch64`), and clear errors.

use tinyvae::attach::{attach_prior, example_decoder_with_prior, PriorSpec};
use tinyvae::format::write::example_decoder;
use tinyvae::format::PRIOR_WEIGHT_TOTAL;
use tinyvae::{Error, Model, Prior, Rng};

#[test]
fn draws_follow_the_mixture() {
    let blob = example_decoder_with_prior();
    let model = Model::parse(&blob).unwrap();
    let prior = model.prior().unwrap();
    let mut rng = Rng::new(4);
    let n = 40_000;
    let (mut count, mut sum) = ([0usize; 2], [[0f64; 2]; 2]);
    let mut z = [0f32; 2];
    for _ in 0..n {
        let k = prior.sample(&mut rng, &mut z).unwrap();
        count[k] += 1;
        sum[k][0] += z[0] as f64;
        sum[k][1] += z[1] as f64;
    }
    // The example's weights are 0.25 and 0.75, its means (-2, 1) and (3, 0.5).
    let share = count[0] as f64 / n as f64;
    assert!((share - 0.25).abs() < 0.01, "{share}");
    let mean0 = [sum[0][0] / count[0] as f64, sum[0][1] / count[0] as f64];
    assert!((mean0[0] + 2.0).abs() < 0.05 && (mean0[1] - 1.0).abs() < 0.05, "{mean0:?}");
    let mean1 = [sum[1][0] / count[1] as f64, sum[1][1] / count[1] as f64];
    assert!((mean1[0] - 3.0).abs() < 0.05 && (mean1[1] - 0.5).abs() < 0.05, "{mean1:?}");
}

#[test]
fn covariance_is_l_times_l_transposed() {
    // One component with L = [[2, 0], [1.5, 0.5]]: cov = [[4, 3], [3, 2.5]].
    let spec = PriorSpec::from_weights(&[1.0], vec![0.0, 0.0], vec![2.0, 1.5, 0.5]).unwrap();
    let blob = attach_prior(&example_decoder(), &spec).unwrap();
    let model = Model::parse(&blob).unwrap();
    let prior = model.prior().unwrap();
    let (mut rng, mut z) = (Rng::new(9), [0f32; 2]);
    let (mut xx, mut xy, mut yy, n) = (0f64, 0f64, 0f64, 100_000);
    for _ in 0..n {
        prior.sample(&mut rng, &mut z).unwrap();
        let (x, y) = (z[0] as f64, z[1] as f64);
        (xx, xy, yy) = (xx + x * x, xy + x * y, yy + y * y);
    }
    let cov = [xx / n as f64, xy / n as f64, yy / n as f64];
    assert!((cov[0] - 4.0).abs() < 0.08 && (cov[1] - 3.0).abs() < 0.06 && (cov[2] - 2.5).abs() < 0.05, "{cov:?}");
}

#[test]
fn golden_draws() {
    // Pinned bit patterns, as for the Gaussian stream (rng.rs): the same test runs under
    // QEMU on aarch64, and a z must not move between targets or releases.
    let blob = example_decoder_with_prior();
    let model = Model::parse(&blob).unwrap();
    let prior = model.prior().unwrap();
    let mut rng = Rng::new(42);
    let mut got = [0u32; 8];
    let mut z = [0f32; 2];
    for pair in got.chunks_exact_mut(2) {
        prior.sample(&mut rng, &mut z).unwrap();
        pair.copy_from_slice(&[z[0].to_bits(), z[1].to_bits()]);
    }
    assert_eq!(got, GOLDEN, "{got:#010x?}");
}

const GOLDEN: [u32; 8] =
    [0x4033bf64, 0x3ec0307d, 0x40365eb5, 0x3f291fd4, 0x4048055d, 0x3e405c6a, 0x405f0005, 0x3f9ca044];

#[test]
fn one_mixture_per_label() {
    // Label 0: one component at (-5, 0); label 1: two, at (5, 0) and (5, 10).
    let unit = |n: usize| [1.0, 0.0, 1.0].repeat(n);
    let groups = [
        PriorSpec::from_weights(&[1.0], vec![-5.0, 0.0], unit(1)).unwrap(),
        PriorSpec::from_weights(&[1.0, 1.0], vec![5.0, 0.0, 5.0, 10.0], unit(2)).unwrap(),
    ];
    let spec = PriorSpec::per_label(&groups).unwrap();
    let bytes = spec.to_bytes();
    let prior = Prior::parse(&bytes, 3, 2).unwrap();
    assert_eq!((prior.groups(), prior.weight(0), prior.weight(1)), (2, PRIOR_WEIGHT_TOTAL, PRIOR_WEIGHT_TOTAL / 2));
    let (mut rng, mut z) = (Rng::new(5), [0f32; 2]);
    for _ in 0..50 {
        assert_eq!(prior.sample_for_label(0, &mut rng, &mut z).unwrap(), 0);
        assert!((z[0] + 5.0).abs() < 6.0);
        let k = prior.sample_for_label(1, &mut rng, &mut z).unwrap();
        assert!(k == 1 || k == 2);
        assert!((z[0] - 5.0).abs() < 6.0);
    }
    assert_eq!(prior.sample(&mut rng, &mut z), Err(Error::MissingLabel { classes: 2 }));
    assert_eq!(prior.sample_for_label(2, &mut rng, &mut z), Err(Error::BadLabel { label: 2, classes: 2 }));
    // A group that does not end at the total is an error.
    let mut broken = bytes.clone();
    broken[8..12].copy_from_slice(&5u32.to_le_bytes());
    assert_eq!(Prior::parse(&broken, 3, 2).unwrap_err(), Error::BadPrior { field: "cumulative weights" });
    // An unconditional decoder takes one mixture, not one per label.
    assert_eq!(
        attach_prior(&example_decoder(), &spec),
        Err(Error::BadPrior { field: "groups (neither one mixture nor one per label)" })
    );
}

#[test]
fn wrong_buffer_and_component_are_errors() {
    let blob = example_decoder_with_prior();
    let model = Model::parse(&blob).unwrap();
    let prior = model.prior().unwrap();
    let mut rng = Rng::new(1);
    assert!(matches!(prior.sample(&mut rng, &mut [0f32; 3]), Err(Error::BufferLength { .. })));
    assert!(matches!(prior.sample_component(2, &mut rng, &mut [0f32; 2]), Err(Error::BadLabel { .. })));
}
