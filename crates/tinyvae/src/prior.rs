//! A decoder's learned latent prior (format version 4): a Gaussian mixture over z, fitted on
//! the host to the encoder's codes of the training images (`tinyvae fit-prior`) and sampled
//! here, on the device.
//!
//! A VAE's decoder only ever saw codes from the aggregate posterior q(z), which is not
//! N(0, I); z drawn from N(0, I) lands where q(z) has little mass and decodes to something
//! that is not a digit. Sampling the mixture instead ("ex-post density estimation", Ghosh et
//! al. 2020) puts z where the decoder was trained.
//!
//! A conditional decoder (CVAE) may store one mixture per label instead, fitted to the codes of
//! that label's images: p(z | y), whose samples the decoder renders as the requested digit far
//! more often than N(0, I) or one shared mixture (`models/mnist-cvae/MODEL.md` has the figures).
//!
//! A draw picks component `k` of the mixture (of the label's group) with an integer draw
//! against the stored cumulative weights, then computes `z = mean_k + L_k ε` with `ε` from
//! [`Rng::gaussian`] and `L_k` the component's lower-triangular Cholesky factor. Every step is
//! integer arithmetic or a correctly rounded f32 operation in a fixed order (no fused
//! multiply-add), so the same seed gives the same z, and the same pixels, on every target.
//!
//! The section holds, packed and little-endian, for `K` components over a latent of size `d`:
//!
//! ```text
//! u32 cumulative[K]        cumulative integer weights per group: strictly increasing inside a
//!                          group, each group ending at exactly 2^24 (one group, or one per label)
//! f32 mean[K][d]
//! f32 cholesky[K][d(d+1)/2]  each factor's lower triangle, row by row (row i has i + 1 values)
//! ```

use crate::error::Error;
use crate::format::{read_f32, read_u32, MAX_PRIOR_COMPONENTS, MAX_PRIOR_LATENT, PRIOR_WEIGHT_TOTAL};
use crate::rng::Rng;

/// A validated Gaussian-mixture prior over z, read in place from a blob: one mixture, or one
/// per label of a conditional decoder. The section's layout and the exact sampling procedure
/// are in the format specification ([`crate::format`], "Prior section").
///
/// ```
/// # let blob = tinyvae::attach::example_decoder_with_prior();
/// let model = tinyvae::Model::parse(&blob)?;
/// let prior = model.prior().expect("this example blob stores a prior");
/// let mut z = [0.0f32; 2];
/// let component = prior.sample(&mut tinyvae::Rng::new(1), &mut z)?;
/// assert!(component < prior.components());
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Prior<'a> {
    bytes: &'a [u8],
    components: usize,
    latent: usize,
}

/// Values in one Cholesky factor's packed lower triangle.
const fn triangle(latent: usize) -> usize {
    latent * (latent + 1) / 2
}

impl<'a> Prior<'a> {
    /// Bytes of the section for `components` and `latent`; `None` outside the format's limits
    /// (1..=[`MAX_PRIOR_COMPONENTS`] components, latent 1..=[`MAX_PRIOR_LATENT`]).
    pub const fn section_len(components: usize, latent: usize) -> Option<usize> {
        if components == 0 || components > MAX_PRIOR_COMPONENTS || latent == 0 || latent > MAX_PRIOR_LATENT {
            return None;
        }
        Some(components * 4 * (1 + latent + triangle(latent)))
    }

    /// Checks a prior section (as [`crate::Model::parse`] does for a blob's): its length, the
    /// cumulative weights, every value finite. (A factor's sign pattern does not matter to
    /// sampling, so it is not checked.)
    pub fn parse(bytes: &'a [u8], components: usize, latent: usize) -> Result<Self, Error> {
        let bad = |field| Err(Error::BadPrior { field });
        match Self::section_len(components, latent) {
            Some(len) if len == bytes.len() => {}
            Some(_) => return bad("length"),
            None if latent > MAX_PRIOR_LATENT => return bad("latent (more than 64 values)"),
            None => return bad("components"),
        }
        let prior = Prior { bytes, components, latent };
        // Groups: runs of strictly increasing weights, each ending at exactly the total.
        let mut previous = 0u32;
        for k in 0..components {
            let c = prior.cumulative(k);
            if c <= previous || c > PRIOR_WEIGHT_TOTAL {
                return bad("cumulative weights");
            }
            previous = if c == PRIOR_WEIGHT_TOTAL { 0 } else { c };
        }
        if previous != 0 {
            return bad("cumulative weights");
        }
        if prior.floats(0, components * (latent + triangle(latent))).any(|v| !v.is_finite()) {
            return bad("values (not finite)");
        }
        Ok(prior)
    }

    /// Number of mixture components.
    pub fn components(&self) -> usize {
        self.components
    }

    /// Size of z.
    pub fn latent_dim(&self) -> usize {
        self.latent
    }

    fn cumulative(&self, k: usize) -> u32 {
        read_u32(self.bytes, 4 * k).unwrap_or(0)
    }

    fn float(&self, index: usize) -> f32 {
        read_f32(self.bytes, 4 * (self.components + index)).unwrap_or(0.0)
    }

    /// `len` successive floats from float `index` on (fewer past the end, which validation
    /// rules out).
    fn floats(&self, index: usize, len: usize) -> impl Iterator<Item = f32> + 'a {
        let start = 4 * (self.components + index);
        let bytes: &'a [u8] = self.bytes.get(start..start + 4 * len).unwrap_or(&[]);
        bytes.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
    }

    /// A view of a section [`Self::parse`] already accepted (the parser checked it once).
    pub(crate) fn validated(bytes: &'a [u8], components: usize, latent: usize) -> Self {
        Prior { bytes, components, latent }
    }

    /// Integer weight of component `k` within its group, out of [`PRIOR_WEIGHT_TOTAL`] (0 past
    /// the last).
    pub fn weight(&self, k: usize) -> u32 {
        match k {
            k if k >= self.components => 0,
            0 => self.cumulative(0),
            k => match self.cumulative(k - 1) {
                PRIOR_WEIGHT_TOTAL => self.cumulative(k),
                before => self.cumulative(k) - before,
            },
        }
    }

    /// Number of mixtures: 1, or (conditional decoders) one per label.
    pub fn groups(&self) -> usize {
        (0..self.components).filter(|&k| self.cumulative(k) == PRIOR_WEIGHT_TOTAL).count()
    }

    /// The components of group `g`.
    fn group(&self, g: usize) -> Option<core::ops::Range<usize>> {
        let mut start = 0;
        let mut seen = 0;
        for k in 0..self.components {
            if self.cumulative(k) == PRIOR_WEIGHT_TOTAL {
                if seen == g {
                    return Some(start..k + 1);
                }
                seen += 1;
                start = k + 1;
            }
        }
        None
    }

    /// Element `i` of component `k`'s mean.
    pub fn mean(&self, k: usize, i: usize) -> f32 {
        self.float(k * self.latent + i)
    }

    /// Element `(i, j)`, `j <= i`, of component `k`'s lower-triangular Cholesky factor.
    pub fn cholesky(&self, k: usize, i: usize, j: usize) -> f32 {
        self.float(self.components * self.latent + k * triangle(self.latent) + triangle(i) + j)
    }

    /// Draws one z into `z` (`latent_dim` values) and returns the component it came from. A
    /// prior with one mixture per label needs the label: [`Self::sample_for_label`].
    pub fn sample(&self, rng: &mut Rng, z: &mut [f32]) -> Result<usize, Error> {
        match self.groups() {
            1 => self.sample_in(0..self.components, rng, z),
            groups => Err(Error::MissingLabel { classes: groups as u32 }),
        }
    }

    /// Draws one z for a conditional decoder's `label`: from that label's mixture when the
    /// prior has one per label, else from the one mixture.
    pub fn sample_for_label(&self, label: u32, rng: &mut Rng, z: &mut [f32]) -> Result<usize, Error> {
        let groups = self.groups();
        let g = if groups == 1 { 0 } else { label as usize };
        let range = self.group(g).ok_or(Error::BadLabel { label, classes: groups as u32 })?;
        self.sample_in(range, rng, z)
    }

    fn sample_in(&self, range: core::ops::Range<usize>, rng: &mut Rng, z: &mut [f32]) -> Result<usize, Error> {
        if z.len() != self.latent {
            return Err(Error::BufferLength { what: "z", expected: self.latent, got: z.len() });
        }
        let r = rng.below(PRIOR_WEIGHT_TOTAL);
        let last = range.end - 1;
        let k = range.into_iter().find(|&k| r < self.cumulative(k)).unwrap_or(last);
        self.sample_component(k, rng, z)?;
        Ok(k)
    }

    /// Draws one z from component `k` alone.
    pub fn sample_component(&self, k: usize, rng: &mut Rng, z: &mut [f32]) -> Result<(), Error> {
        if z.len() != self.latent {
            return Err(Error::BufferLength { what: "z", expected: self.latent, got: z.len() });
        }
        if k >= self.components {
            return Err(Error::BadLabel { label: k as u32, classes: self.components as u32 });
        }
        rng.fill_gaussian(z);
        // z = mean + L ε in place: row i of L reads ε_0..=ε_i, so going from the last row up
        // overwrites each ε only after every row that needs it has read it.
        let factor = self.components * self.latent + k * triangle(self.latent);
        for i in (0..self.latent).rev() {
            let mut acc = 0.0f32;
            for (l, e) in self.floats(factor + triangle(i), i + 1).zip(z.iter()) {
                acc += l * e;
            }
            z[i] = self.mean(k, i) + acc;
        }
        Ok(())
    }
}
