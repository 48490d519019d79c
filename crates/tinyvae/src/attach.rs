//! Adding a learned latent prior (format version 4, [`crate::Prior`]) to a written decoder
//! blob, without touching its graph: the prior is fitted after quantization, from the
//! encoder, and a decoder blob should not need its ONNX file again to get one. (It parses the
//! blob it edits, so it sits above both the format and the model, not in `format`.)

use alloc::vec::Vec;

use crate::error::Error;
use crate::format::ModelKind;
use crate::format::{align_up, crc32, hdr, mrec, ALIGN, CHECKSUM_START, PRIOR_WEIGHT_TOTAL, VERSION_4};
use crate::prior::Prior;
use crate::Model;

/// A Gaussian mixture over z, as a blob stores it: integer cumulative weights, means and the
/// packed lower triangles of the Cholesky factors (the prior section of the format specification, [`crate::format`]).
#[derive(Debug, Clone, PartialEq)]
pub struct PriorSpec {
    /// Size of z.
    pub latent: usize,
    /// Cumulative integer weights, strictly increasing, the last [`PRIOR_WEIGHT_TOTAL`].
    pub cumulative: Vec<u32>,
    /// `components x latent` means.
    pub means: Vec<f32>,
    /// `components x latent (latent + 1) / 2` Cholesky values, row by row.
    pub cholesky: Vec<f32>,
}

impl PriorSpec {
    /// From real weights (any positive scale), means and Cholesky factors. The weights become
    /// integers summing to [`PRIOR_WEIGHT_TOTAL`], each at least 1, by largest remainder.
    pub fn from_weights(weights: &[f64], means: Vec<f32>, cholesky: Vec<f32>) -> Result<Self, Error> {
        let bad = |field| Err(Error::BadPrior { field });
        let k = weights.len();
        if k == 0 || !means.len().is_multiple_of(k) {
            return bad("components");
        }
        let latent = means.len() / k;
        if Prior::section_len(k, latent).is_none() || cholesky.len() != k * latent * (latent + 1) / 2 {
            return bad("length");
        }
        let sum: f64 = weights.iter().sum();
        if !(sum.is_finite() && sum > 0.0) || weights.iter().any(|w| w.is_nan() || *w < 0.0) {
            return bad("cumulative weights");
        }
        // Each component keeps at least 1; the rest of the total is shared by largest remainder.
        let spare = PRIOR_WEIGHT_TOTAL as f64 - k as f64;
        let exact: Vec<f64> = weights.iter().map(|w| w / sum * spare).collect();
        let mut ints: Vec<u32> = exact.iter().map(|e| libm::floor(*e) as u32 + 1).collect();
        let mut short = PRIOR_WEIGHT_TOTAL - ints.iter().sum::<u32>();
        let mut order: Vec<usize> = (0..k).collect();
        order.sort_by(|&a, &b| (exact[b] - libm::floor(exact[b])).total_cmp(&(exact[a] - libm::floor(exact[a]))));
        for &i in order.iter().cycle().take(k * 2) {
            if short == 0 {
                break;
            }
            ints[i] += 1;
            short -= 1;
        }
        let cumulative = ints
            .iter()
            .scan(0u32, |acc, w| {
                *acc += w;
                Some(*acc)
            })
            .collect();
        Ok(PriorSpec { latent, cumulative, means, cholesky })
    }

    /// One mixture per label of a conditional decoder (`groups[l]` for label `l`), in one
    /// prior: the groups' weights are kept apart, each summing to [`PRIOR_WEIGHT_TOTAL`].
    pub fn per_label(groups: &[PriorSpec]) -> Result<Self, Error> {
        let latent = groups.first().map_or(0, |g| g.latent);
        if groups.is_empty() || groups.iter().any(|g| g.latent != latent) {
            return Err(Error::BadPrior { field: "groups (none, or of different latent sizes)" });
        }
        let mut spec = PriorSpec { latent, cumulative: Vec::new(), means: Vec::new(), cholesky: Vec::new() };
        for g in groups {
            spec.cumulative.extend_from_slice(&g.cumulative);
            spec.means.extend_from_slice(&g.means);
            spec.cholesky.extend_from_slice(&g.cholesky);
        }
        Ok(spec)
    }

    /// Number of components.
    pub fn components(&self) -> usize {
        self.cumulative.len()
    }

    /// The section's bytes.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(4 * (self.cumulative.len() + self.means.len() + self.cholesky.len()));
        out.extend(self.cumulative.iter().flat_map(|c| c.to_le_bytes()));
        out.extend(self.means.iter().chain(&self.cholesky).flat_map(|v| v.to_le_bytes()));
        out
    }
}

/// Returns `blob` (a decoder) with `prior` as its stored latent prior, replacing any it had,
/// as format version 4. The graph, weights and arena plan are the same bytes.
///
/// ```
/// use tinyvae::attach::{attach_prior, PriorSpec};
/// use tinyvae::format::write::example_decoder;
/// // One component: mean (1, -1), covariance diag(0.25, 0.25).
/// let prior = PriorSpec::from_weights(&[1.0], vec![1.0, -1.0], vec![0.5, 0.0, 0.5])?;
/// let blob = attach_prior(&example_decoder(), &prior)?;
/// let model = tinyvae::Model::parse(&blob)?;
/// assert_eq!((model.version(), model.prior().map(|p| p.components())), (4, Some(1)));
/// # Ok::<(), tinyvae::Error>(())
/// ```
pub fn attach_prior(blob: &[u8], prior: &PriorSpec) -> Result<Vec<u8>, Error> {
    let model = Model::parse(blob)?;
    if model.kind() != ModelKind::Decoder {
        return Err(Error::WrongKind { expected: ModelKind::Decoder, found: model.kind() });
    }
    if prior.latent != model.meta().latent {
        return Err(Error::BadPrior { field: "latent (not the decoder's)" });
    }
    let section = prior.to_bytes();
    if Prior::section_len(prior.components(), prior.latent) != Some(section.len()) {
        return Err(Error::BadPrior { field: "length" });
    }
    let mut out = blob[..model.body_end()].to_vec();
    out.resize(align_up(out.len()).max(ALIGN), 0);
    let prior_off = out.len();
    out.extend_from_slice(&section);
    let total = out.len();
    let put_u32 = |b: &mut [u8], off: usize, v: u32| b[off..off + 4].copy_from_slice(&v.to_le_bytes());
    out[hdr::VERSION..hdr::VERSION + 2].copy_from_slice(&VERSION_4.to_le_bytes());
    put_u32(&mut out, hdr::FILE_LEN, total as u32);
    let meta = model.meta_offset();
    let components = prior.components() as u16;
    out[meta + mrec::PRIOR_COMPONENTS..meta + mrec::PRIOR_COMPONENTS + 2].copy_from_slice(&components.to_le_bytes());
    put_u32(&mut out, meta + mrec::PRIOR_OFF, prior_off as u32);
    put_u32(&mut out, meta + mrec::PRIOR_LEN, section.len() as u32);
    let crc = crc32(&out[CHECKSUM_START..]);
    put_u32(&mut out, hdr::CRC, crc);
    Model::parse(&out)?;
    Ok(out)
}

/// [`crate::format::write::example_decoder`] with a two-component prior over its 2-D z (weights 0.25
/// and 0.75, means (-2, 1) and (3, 0.5), standard deviations 0.5 and 0.25), for examples and
/// tests.
pub fn example_decoder_with_prior() -> Vec<u8> {
    let prior = PriorSpec::from_weights(
        &[0.25, 0.75],
        alloc::vec![-2.0, 1.0, 3.0, 0.5],
        alloc::vec![0.5, 0.0, 0.5, 0.25, 0.0, 0.25],
    )
    .expect("a valid example prior");
    attach_prior(&crate::format::write::example_decoder(), &prior).expect("the example decoder takes a 2-D prior")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::write::{example_conv_decoder, example_decoder};

    fn one_component(latent: usize) -> PriorSpec {
        let mut chol = alloc::vec![0.0f32; latent * (latent + 1) / 2];
        for i in 0..latent {
            chol[i * (i + 1) / 2 + i] = 1.0;
        }
        PriorSpec::from_weights(&[1.0], alloc::vec![0.0; latent], chol).unwrap()
    }

    #[test]
    fn weights_become_integers_summing_to_the_total() {
        let spec = PriorSpec::from_weights(&[1.0, 2.0, 1e-12], alloc::vec![0.0; 3], alloc::vec![1.0; 3]).unwrap();
        assert_eq!(*spec.cumulative.last().unwrap(), PRIOR_WEIGHT_TOTAL);
        let w: Vec<u32> = spec.cumulative.iter().scan(0, |p, &c| Some(c - core::mem::replace(p, c))).collect();
        assert_eq!(w[2], 1, "a vanishing weight keeps 1");
        assert!((w[1] as f64 / w[0] as f64 - 2.0).abs() < 1e-6);
        assert!(PriorSpec::from_weights(&[f64::NAN], alloc::vec![0.0], alloc::vec![1.0]).is_err());
        assert!(PriorSpec::from_weights(&[1.0], alloc::vec![0.0; 65], alloc::vec![1.0; 65 * 33]).is_err());
    }

    #[test]
    fn attaching_keeps_the_graph_and_replaces_an_old_prior() {
        let plain = example_decoder();
        let with = example_decoder_with_prior();
        let model = Model::parse(&with).unwrap();
        assert_eq!(model.version(), VERSION_4);
        let again = attach_prior(&with, &one_component(2)).unwrap();
        assert_eq!(again.len(), plain.len() + Prior::section_len(1, 2).unwrap());
        assert_eq!(Model::parse(&again).unwrap().prior().unwrap().components(), 1);
        // Everything but the version, length, checksum and the meta's prior fields is the old
        // bytes.
        let (a, b) = (Model::parse(&plain).unwrap(), Model::parse(&again).unwrap());
        let end = a.body_end();
        assert_eq!(end, b.body_end());
        let meta = a.meta_offset();
        assert_eq!(plain[hdr::KIND..meta + mrec::PRIOR_COMPONENTS], again[hdr::KIND..meta + mrec::PRIOR_COMPONENTS]);
        assert_eq!(plain[meta + mrec::PRIOR_LEN + 4..end], again[meta + mrec::PRIOR_LEN + 4..end]);
        // A conv decoder (version 2 before) takes one too.
        let conv = attach_prior(&example_conv_decoder(), &one_component(4)).unwrap();
        assert_eq!(Model::parse(&conv).unwrap().version(), VERSION_4);
    }

    #[test]
    fn wrong_latent_is_refused() {
        assert_eq!(
            attach_prior(&example_decoder(), &one_component(3)),
            Err(Error::BadPrior { field: "latent (not the decoder's)" })
        );
    }

    /// Rewrites a field of a blob with a prior and fixes the checksum.
    fn corrupt(blob: &[u8], off: usize, bytes: &[u8]) -> Result<(), Error> {
        let mut b = blob.to_vec();
        b[off..off + bytes.len()].copy_from_slice(bytes);
        let crc = crc32(&b[CHECKSUM_START..]);
        b[hdr::CRC..hdr::CRC + 4].copy_from_slice(&crc.to_le_bytes());
        Model::parse(&b).map(|_| ())
    }

    #[test]
    fn corrupt_priors_are_errors_naming_the_field() {
        let blob = example_decoder_with_prior();
        let model = Model::parse(&blob).unwrap();
        let meta = model.meta_offset();
        let off = u32::from_le_bytes(blob[meta + mrec::PRIOR_OFF..][..4].try_into().unwrap()) as usize;
        let prior = |field| Err(Error::BadPrior { field });
        assert_eq!(corrupt(&blob, meta + mrec::PRIOR_COMPONENTS, &3u16.to_le_bytes()), prior("length"));
        assert_eq!(corrupt(&blob, meta + mrec::PRIOR_COMPONENTS, &300u16.to_le_bytes()), prior("components"));
        assert_eq!(corrupt(&blob, off, &(PRIOR_WEIGHT_TOTAL + 1).to_le_bytes()), prior("cumulative weights"));
        assert_eq!(corrupt(&blob, off + 4, &5u32.to_le_bytes()), prior("cumulative weights"));
        assert_eq!(corrupt(&blob, off + 8, &f32::INFINITY.to_le_bytes()), prior("values (not finite)"));
        // Component 0's first Cholesky value, after 2 weights and 4 mean values.
        assert_eq!(corrupt(&blob, off + 24, &f32::NAN.to_le_bytes()), prior("values (not finite)"));
        assert_eq!(
            corrupt(&blob, meta + mrec::PRIOR_OFF, &8u32.to_le_bytes()),
            Err(Error::BadSection { section: "prior" })
        );
        assert_eq!(
            corrupt(&blob, meta + mrec::PRIOR_OFF, &(model.meta_offset() as u32).to_le_bytes()),
            Err(Error::BadSection { section: "overlap" })
        );
        // Before version 4 the meta bytes are not read: a version-3 label leaves no prior.
        let mut v3 = blob.clone();
        v3[hdr::VERSION..hdr::VERSION + 2].copy_from_slice(&3u16.to_le_bytes());
        let crc = crc32(&v3[CHECKSUM_START..]);
        v3[hdr::CRC..hdr::CRC + 4].copy_from_slice(&crc.to_le_bytes());
        assert!(Model::parse(&v3).unwrap().prior().is_none());
    }
}
