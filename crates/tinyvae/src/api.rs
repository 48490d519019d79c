//! The high-level API: a decoder maps z (and a label) to pixels, an encoder maps pixels to mu
//! and log-variance. Both run in the caller's arena and allocate nothing.

use crate::error::Error;
use crate::format::{EncoderHead, ModelKind, MAX_PRIOR_LATENT};
use crate::kernels::{self, Kernels};
use crate::model::Model;
use crate::prior::Prior;
use crate::rng::Rng;

pub(crate) fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
    if expected == got {
        Ok(())
    } else {
        Err(Error::BufferLength { what, expected, got })
    }
}

/// Checks `labels` against a model's class count (`Some` exactly for conditional models) and
/// writes them one-hot into graph input 1.
fn stage_labels(
    model: &Model<'_>,
    kernels: &Kernels,
    work: &mut [u8],
    labels: Option<&[u32]>,
    batch: usize,
) -> Result<(), Error> {
    let classes = model.meta().classes;
    match (labels, classes) {
        (None, 0) => Ok(()),
        (Some(labels), 0) => Err(Error::BadLabel { label: labels.first().copied().unwrap_or(0), classes: 0 }),
        (None, c) => Err(Error::MissingLabel { classes: c as u32 }),
        (Some(labels), _) => {
            check_len("labels", batch, labels.len())?;
            if let Some(&bad) = labels.iter().find(|&&l| l as usize >= classes) {
                return Err(Error::BadLabel { label: bad, classes: classes as u32 });
            }
            let one_hot = labels.iter().flat_map(|&l| (0..classes).map(move |c| (l as usize == c) as u32 as f32));
            model.stage_input(kernels, work, 1, batch, one_hot)
        }
    }
}

/// Runs a decoder blob: `z` (and a label for conditional models) to an image.
///
/// Firmware keeps the blob in flash, where the runtime reads it in place. The blob aligns its
/// arrays to 16 bytes from its start, so placing the blob itself on a 16-byte boundary keeps
/// the weights aligned for the kernels' word loads (`include_bytes!` alone only promises bytes).
/// The arena's size comes from the blob at compile time, and nothing allocates:
///
/// ```
/// use tinyvae::{arena_size_of, Decoder, Model, Rng};
///
/// /// The blob on a 16-byte boundary.
/// #[repr(C, align(16))]
/// struct Aligned<B: ?Sized>(B);
///
/// static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../../models/mnist-vae-z20/decoder.int8.tvae"
/// )));
///
/// /// Arena bytes for one sample (1,200 for this decoder).
/// const ARENA: usize = match arena_size_of(&BLOB.0) {
///     Some(n) => n,
///     None => panic!("not a tinyvae blob"),
/// };
///
/// fn draw(seed: u64, pixels: &mut [u8; 784]) -> Result<(), tinyvae::Error> {
///     let mut arena = [0u8; ARENA]; // on the stack, or a `static mut`
///     let model = Model::parse(&BLOB.0)?; // every offset, length and checksum checked; no copy
///     let decoder = Decoder::new(&model)?;
///     decoder.sample(&mut Rng::new(seed), &mut arena, pixels) // z ~ N(0, I), then decode
/// }
///
/// let (mut first, mut again) = ([0u8; 784], [0u8; 784]);
/// draw(1, &mut first)?;
/// draw(1, &mut again)?;
/// assert_eq!(first, again); // the same seed draws the same digit, on every target
/// # Ok::<(), tinyvae::Error>(())
/// ```
///
/// `tinyvae deploy` writes these declarations for a blob, as a module with `BLOB` and
/// `ARENA_SIZE`. On a host, `AlignedBlob` (feature `alloc`) does the aligning for a blob read
/// from a file.
#[derive(Debug, Clone, Copy)]
pub struct Decoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
    /// Sample from N(0, I) even when the blob stores a prior.
    standard_prior: bool,
}

impl<'m, 'a> Decoder<'m, 'a> {
    /// Wraps a parsed model; fails unless it is a decoder.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// let decoder = Decoder::new(&model)?;
    /// assert_eq!((decoder.latent_dim(), decoder.output_len()), (20, 784));
    /// // An encoder blob is not a decoder.
    /// # let encoder_blob = tinyvae::AlignedBlob::new(include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// let encoder = Model::parse(&encoder_blob)?;
    /// assert!(matches!(Decoder::new(&encoder), Err(tinyvae::Error::WrongKind { .. })));
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Decoder {
            return Err(Error::WrongKind { expected: ModelKind::Decoder, found: model.kind() });
        }
        Ok(Decoder { model, kernels: kernels::best(), standard_prior: false })
    }

    /// Uses a specific kernel table (e.g. `&kernels::REFERENCE`) instead of the fastest one.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// // The scalar reference defines every int8 result: the fastest table gives the same bytes.
    /// let reference = decoder.with_kernels(&tinyvae::kernels::REFERENCE);
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut fast, mut scalar) = ([0u8; 784], [0u8; 784]);
    /// decoder.sample(&mut Rng::new(3), &mut arena, &mut fast)?;
    /// reference.sample(&mut Rng::new(3), &mut arena, &mut scalar)?;
    /// assert_eq!(fast, scalar);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn with_kernels(mut self, kernels: &'static Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// Samples z from N(0, I) even when the blob stores a learned prior (the choice `tinyvae
    /// sample --prior standard` makes).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # let blob = tinyvae::attach::example_decoder_with_prior();
    /// let model = Model::parse(&blob)?;
    /// let decoder = Decoder::new(&model)?;
    /// assert!(decoder.prior().is_some()); // this blob stores a mixture over z
    /// let standard = decoder.with_standard_prior();
    /// assert!(standard.prior().is_none());
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut a, mut b) = ([0u8; 16], [0u8; 16]);
    /// decoder.sample(&mut Rng::new(3), &mut arena, &mut a)?; // z from the stored mixture
    /// standard.sample(&mut Rng::new(3), &mut arena, &mut b)?; // z from N(0, I)
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn with_standard_prior(mut self) -> Self {
        self.standard_prior = true;
        self
    }

    /// The prior [`Self::sample`] draws z from: the blob's stored mixture ([`Model::prior`]),
    /// or `None` for N(0, I) (no stored prior, or [`Self::with_standard_prior`]).
    pub fn prior(&self) -> Option<Prior<'a>> {
        if self.standard_prior {
            None
        } else {
            self.model.prior()
        }
    }

    /// Fills `z` (`latent_dim` values) with one draw from [`Self::prior`] (for `label`, where
    /// the prior has one mixture per label), or from N(0, I) without one: what
    /// [`Self::sample`] and [`Self::sample_conditional`] decode.
    pub fn draw_latent(&self, label: Option<u32>, rng: &mut Rng, z: &mut [f32]) -> Result<(), Error> {
        check_len("z", self.latent_dim(), z.len())?;
        match (self.prior(), label) {
            (Some(prior), Some(label)) => prior.sample_for_label(label, rng, z).map(|_| ()),
            (Some(prior), None) => prior.sample(rng, z).map(|_| ()),
            (None, _) => {
                rng.fill_gaussian(z);
                Ok(())
            }
        }
    }

    /// The underlying model.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let model = decoder.model();
    /// println!("{} bytes of weights, {} MACs per sample", model.weight_bytes(), model.macs());
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn model(&self) -> &Model<'a> {
        self.model
    }

    /// Size of z.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let z = vec![0.0f32; decoder.latent_dim()]; // the prior's mean
    /// # let mut arena = vec![0u8; model.arena_size()];
    /// # let mut pixels = [0u8; 784];
    /// decoder.decode(&z, &mut arena, &mut pixels)?;
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn latent_dim(&self) -> usize {
        self.model.meta().latent
    }

    /// Number of label classes (0 for unconditional decoders).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-cvae/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// assert_eq!(decoder.classes(), 10); // a conditional VAE: a label picks the digit
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn classes(&self) -> usize {
        self.model.meta().classes
    }

    /// Values per decoded sample (784 for MNIST).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut pixels = vec![0u8; decoder.output_len()]; // 28 x 28
    /// # let mut arena = vec![0u8; model.arena_size()];
    /// decoder.sample(&mut Rng::new(1), &mut arena, &mut pixels)?;
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn output_len(&self) -> usize {
        self.model.output(0).map(|t| t.len).unwrap_or(0)
    }

    /// Stages the labels, then z with `stage_z` (given the working arena), and runs the graph.
    fn run(
        &self,
        stage_z: impl FnOnce(&mut [u8]) -> Result<(), Error>,
        labels: Option<&[u32]>,
        batch: usize,
        arena: &mut [u8],
    ) -> Result<(), Error> {
        let work = self.model.working_arena(arena, batch)?;
        stage_labels(self.model, self.kernels, work, labels, batch)?;
        stage_z(work)?;
        self.model.execute(self.kernels, work, batch)
    }

    /// [`Self::run`] on one z drawn from [`Self::prior`] with `rng`.
    fn run_prior(&self, rng: &mut Rng, labels: Option<&[u32]>, arena: &mut [u8]) -> Result<(), Error> {
        self.run(|work| self.stage_prior(rng, labels, work), labels, 1, arena)
    }

    /// Draws one z and stages it into `work`. Out of line, so that the drawn vector's stack
    /// (`MAX_PRIOR_LATENT` floats) is given back before the layers run: on a microcontroller
    /// the decode's stack is what counts.
    #[inline(never)]
    fn stage_prior(&self, rng: &mut Rng, labels: Option<&[u32]>, work: &mut [u8]) -> Result<(), Error> {
        // Both draws reach `stage_input` as one `dyn Iterator` type, so that firmware links one
        // copy of the staging code (it measured 1.2 KB of flash as two).
        let mut drawn = [0f32; MAX_PRIOR_LATENT];
        let mut from_prior;
        let mut from_normal;
        let z: &mut dyn Iterator<Item = f32> = match self.prior() {
            Some(prior) => {
                // The format caps a prior's latent at MAX_PRIOR_LATENT, so z fits on the stack.
                let latent = prior.latent_dim();
                let z = drawn.get_mut(..latent).ok_or(Error::BadPrior { field: "latent" })?;
                match labels {
                    Some(&[label]) => prior.sample_for_label(label, rng, z)?,
                    _ => prior.sample(rng, z)?,
                };
                from_prior = z.iter().copied();
                &mut from_prior
            }
            None => {
                from_normal = core::iter::repeat_with(|| rng.gaussian());
                &mut from_normal
            }
        };
        self.model.stage_input(self.kernels, work, 0, 1, z)
    }

    /// [`Self::run`] on latent vectors in a slice.
    fn run_slice(&self, z: &[f32], labels: Option<&[u32]>, batch: usize, arena: &mut [u8]) -> Result<(), Error> {
        self.run(|work| self.model.stage_input_slice(self.kernels, work, 0, batch, z), labels, batch, arena)
    }

    fn finish_pixels(&self, arena: &mut [u8], batch: usize, pixels: &mut [u8]) -> Result<(), Error> {
        let work = self.model.working_arena(arena, batch)?;
        self.model.read_pixels(self.kernels, work, 0, batch, pixels)
    }

    /// Decodes `batch` latent vectors (`z.len() == batch * latent_dim`) into
    /// `batch * output_len` pixels. `labels` is `Some` (one per sample) exactly for
    /// conditional decoders.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// // A batch runs in an arena sized for it, each layer's weights read once for all samples.
    /// let batch = 4;
    /// let mut z = vec![0.0f32; batch * decoder.latent_dim()];
    /// Rng::new(5).fill_gaussian(&mut z);
    /// let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
    /// let mut pixels = vec![0u8; batch * decoder.output_len()];
    /// decoder.decode_batch(&z, None, batch, &mut arena, &mut pixels)?;
    /// // The same pixels as one sample at a time.
    /// let mut second = [0u8; 784];
    /// decoder.decode(&z[20..40], &mut arena, &mut second)?;
    /// assert_eq!(&pixels[784..2 * 784], &second[..]);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn decode_batch(
        &self,
        z: &[f32],
        labels: Option<&[u32]>,
        batch: usize,
        arena: &mut [u8],
        pixels: &mut [u8],
    ) -> Result<(), Error> {
        check_len("z", batch * self.latent_dim(), z.len())?;
        check_len("pixels", batch * self.output_len(), pixels.len())?;
        self.run_slice(z, labels, batch, arena)?;
        self.finish_pixels(arena, batch, pixels)
    }

    /// Decodes one z into pixels (`round(255 * p)`; exact int8 codes for int8 blobs).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let mut pixels = [0u8; 784];
    /// let mut z = [0.0f32; 20];
    /// z[0] = 1.5; // a step along the first latent axis
    /// decoder.decode(&z, &mut arena, &mut pixels)?;
    /// // Buffers of the wrong size are errors, not panics.
    /// assert!(decoder.decode(&z[..19], &mut arena, &mut pixels).is_err());
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn decode(&self, z: &[f32], arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        self.decode_batch(z, None, 1, arena, pixels)
    }

    /// Decodes one z with a label (conditional decoders).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-cvae/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let z = [0.0f32; 8];
    /// let mut seven = [0u8; 784];
    /// decoder.decode_conditional(&z, 7, &mut arena, &mut seven)?;
    /// assert!(decoder.decode_conditional(&z, 10, &mut arena, &mut seven).is_err()); // classes 0..=9
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn decode_conditional(&self, z: &[f32], label: u32, arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        self.decode_batch(z, Some(&[label]), 1, arena, pixels)
    }

    /// Decodes `batch` latent vectors to real-valued outputs (probabilities or means).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let batch = 2;
    /// let z = vec![0.0f32; batch * decoder.latent_dim()];
    /// let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
    /// let mut probabilities = vec![0.0f32; batch * decoder.output_len()];
    /// decoder.decode_batch_f32(&z, None, batch, &mut arena, &mut probabilities)?;
    /// assert!(probabilities.iter().all(|p| (0.0..=1.0).contains(p)));
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn decode_batch_f32(
        &self,
        z: &[f32],
        labels: Option<&[u32]>,
        batch: usize,
        arena: &mut [u8],
        out: &mut [f32],
    ) -> Result<(), Error> {
        check_len("z", batch * self.latent_dim(), z.len())?;
        check_len("out", batch * self.output_len(), out.len())?;
        self.run_slice(z, labels, batch, arena)?;
        let work = self.model.working_arena(arena, batch)?;
        self.model.read_output(work, 0, batch, out)
    }

    /// Decodes one z to real-valued outputs.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut probabilities, mut pixels) = ([0.0f32; 784], [0u8; 784]);
    /// let z = [0.5f32; 20];
    /// decoder.decode_f32(&z, &mut arena, &mut probabilities)?;
    /// decoder.decode(&z, &mut arena, &mut pixels)?;
    /// assert_eq!(tinyvae::to_pixel(probabilities[400]), pixels[400]);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn decode_f32(&self, z: &[f32], arena: &mut [u8], out: &mut [f32]) -> Result<(), Error> {
        self.decode_batch_f32(z, None, 1, arena, out)
    }

    /// Draws z from [`Self::prior`] (the blob's stored mixture, or N(0, I)) with `rng` and
    /// decodes it; successive calls continue the stream, so a grid of samples from seed S is
    /// the same on every target.
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let mut grid = [[0u8; 784]; 4];
    /// let mut rng = Rng::new(1);
    /// for digit in &mut grid {
    ///     decoder.sample(&mut rng, &mut arena, digit)?;
    /// }
    /// assert_ne!(grid[0], grid[1]);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn sample(&self, rng: &mut Rng, arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        check_len("pixels", self.output_len(), pixels.len())?;
        self.run_prior(rng, None, arena)?;
        self.finish_pixels(arena, 1, pixels)
    }

    /// Draws z from [`Self::prior`] and decodes it with a label (conditional decoders).
    ///
    /// ```
    /// # use tinyvae::{Decoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-cvae/decoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let decoder = Decoder::new(&model)?;
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let mut digits = [[0u8; 784]; 10];
    /// let mut rng = Rng::new(2);
    /// for (label, digit) in (0..10).zip(&mut digits) {
    ///     decoder.sample_conditional(&mut rng, label, &mut arena, digit)?; // a 0, a 1, ..., a 9
    /// }
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn sample_conditional(
        &self,
        rng: &mut Rng,
        label: u32,
        arena: &mut [u8],
        pixels: &mut [u8],
    ) -> Result<(), Error> {
        check_len("pixels", self.output_len(), pixels.len())?;
        self.run_prior(rng, Some(&[label]), arena)?;
        self.finish_pixels(arena, 1, pixels)
    }
}

/// Runs an encoder blob: an image to the mean and log-variance of q(z|x).
///
/// As for a [`Decoder`], firmware keeps the blob aligned in flash and sizes the arena from it
/// at compile time:
///
/// ```
/// use tinyvae::{arena_size_of, Encoder, Model, Rng};
///
/// /// The blob on a 16-byte boundary.
/// #[repr(C, align(16))]
/// struct Aligned<B: ?Sized>(B);
///
/// static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
///     env!("CARGO_MANIFEST_DIR"),
///     "/../../models/mnist-vae-z20/encoder.int8.tvae"
/// )));
///
/// const ARENA: usize = match arena_size_of(&BLOB.0) {
///     Some(n) => n,
///     None => panic!("not a tinyvae blob"),
/// };
///
/// /// The latent code of a 28 x 28 image: a draw from q(z | x).
/// fn encode(image: &[u8; 784], seed: u64, z: &mut [f32; 20]) -> Result<(), tinyvae::Error> {
///     let mut arena = [0u8; ARENA];
///     let model = Model::parse(&BLOB.0)?;
///     let encoder = Encoder::new(&model)?;
///     let (mut mu, mut logvar) = ([0.0f32; 20], [0.0f32; 20]);
///     encoder.encode_pixels(image, &mut arena, &mut mu, &mut logvar)?;
///     Encoder::reparametrize(&mu, &logvar, &mut Rng::new(seed), z)
/// }
///
/// let mut one = [0u8; 784];
/// (4..24).for_each(|y| one[28 * y + 14] = 255); // a vertical stroke
/// let mut z = [0.0f32; 20];
/// encode(&one, 1, &mut z)?;
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Encoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
}

impl<'m, 'a> Encoder<'m, 'a> {
    /// Wraps a parsed model; fails unless it is an encoder.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let encoder = Encoder::new(&model)?;
    /// assert_eq!((encoder.input_len(), encoder.latent_dim()), (784, 20));
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Encoder {
            return Err(Error::WrongKind { expected: ModelKind::Encoder, found: model.kind() });
        }
        Ok(Encoder { model, kernels: kernels::best() })
    }

    /// Uses a specific kernel table instead of the fastest one.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let reference = encoder.with_kernels(&tinyvae::kernels::REFERENCE);
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut mu, mut logvar) = ([0.0f32; 20], [0.0f32; 20]);
    /// let (mut mu_ref, mut logvar_ref) = ([0.0f32; 20], [0.0f32; 20]);
    /// encoder.encode_pixels(&digit, &mut arena, &mut mu, &mut logvar)?;
    /// reference.encode_pixels(&digit, &mut arena, &mut mu_ref, &mut logvar_ref)?;
    /// // An int8 graph gives the same codes on every table, so the same floats.
    /// assert_eq!((mu, logvar), (mu_ref, logvar_ref));
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn with_kernels(mut self, kernels: &'static Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The underlying model.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// assert_eq!(encoder.model().precision(), tinyvae::Precision::Int8);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn model(&self) -> &Model<'a> {
        self.model
    }

    /// Size of z.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let mut mu = vec![0.0f32; encoder.latent_dim()];
    /// let mut logvar = vec![0.0f32; encoder.latent_dim()];
    /// # let mut arena = vec![0u8; model.arena_size()];
    /// encoder.encode_pixels(&digit, &mut arena, &mut mu, &mut logvar)?;
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn latent_dim(&self) -> usize {
        self.model.meta().latent
    }

    /// Values per input image (784 for MNIST).
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// assert_eq!(encoder.input_len(), 28 * 28);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn input_len(&self) -> usize {
        self.model.input(0).map(|t| t.len).unwrap_or(0)
    }

    fn read_heads(&self, arena: &mut [u8], batch: usize, mu: &mut [f32], logvar: &mut [f32]) -> Result<(), Error> {
        let latent = self.latent_dim();
        check_len("mu", batch * latent, mu.len())?;
        check_len("logvar", batch * latent, logvar.len())?;
        let work = self.model.working_arena(arena, batch)?;
        match self.model.meta().head {
            EncoderHead::Separate => {
                self.model.read_output(work, 0, batch, mu)?;
                self.model.read_output(work, 1, batch, logvar)
            }
            EncoderHead::Deterministic => {
                // z with zero variance: `reparametrize` then returns z itself.
                logvar.fill(f32::NEG_INFINITY);
                self.model.read_output(work, 0, batch, mu)
            }
            _ if latent == 0 => Err(Error::BadGraph { reason: "encoder meta.latent is 0" }),
            _ => {
                // One output of [mu | logvar] per sample.
                // Checked slices, not `chunks_exact_mut`: no panic path stays linked.
                let lost = Error::BufferLength { what: "mu", expected: batch * latent, got: mu.len() };
                for s in 0..batch {
                    let m = mu.get_mut(s * latent..(s + 1) * latent).ok_or(lost)?;
                    self.model.read_output_part(work, 0, batch, 2 * latent * s, m)?;
                    let lv = logvar.get_mut(s * latent..(s + 1) * latent).ok_or(lost)?;
                    self.model.read_output_part(work, 0, batch, 2 * latent * s + latent, lv)?;
                }
                Ok(())
            }
        }
    }

    /// Number of label classes (0 for unconditional encoders such as the VAE's).
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// assert_eq!(encoder.classes(), 0);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn classes(&self) -> usize {
        self.model.meta().classes
    }

    /// Encodes `batch` images given as [0, 1] values (`x.len() == batch * input_len`), with one
    /// label each for conditional encoders (`labels` is `Some` exactly for those).
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let batch = 2;
    /// let blank = [0u8; 784];
    /// let images: Vec<f32> = digit.iter().chain(&blank).map(|&p| p as f32 / 255.0).collect();
    /// let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
    /// let mut mu = vec![0.0f32; batch * encoder.latent_dim()];
    /// let mut logvar = vec![0.0f32; batch * encoder.latent_dim()];
    /// encoder.encode_batch(&images, None, batch, &mut arena, &mut mu, &mut logvar)?;
    /// assert_ne!(mu[..20], mu[20..]); // a "1" and a blank image land apart
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn encode_batch(
        &self,
        x: &[f32],
        labels: Option<&[u32]>,
        batch: usize,
        arena: &mut [u8],
        mu: &mut [f32],
        logvar: &mut [f32],
    ) -> Result<(), Error> {
        check_len("x", batch * self.input_len(), x.len())?;
        let work = self.model.working_arena(arena, batch)?;
        stage_labels(self.model, self.kernels, work, labels, batch)?;
        self.model.stage_input_slice(self.kernels, work, 0, batch, x)?;
        self.model.execute(self.kernels, work, batch)?;
        self.read_heads(arena, batch, mu, logvar)
    }

    /// Encodes one image given as [0, 1] values.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let x: Vec<f32> = digit.iter().map(|&p| p as f32 / 255.0).collect();
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut mu, mut logvar) = ([0.0f32; 20], [0.0f32; 20]);
    /// encoder.encode(&x, &mut arena, &mut mu, &mut logvar)?;
    /// // Pixels and their [0, 1] values give the same codes.
    /// let (mut mu_px, mut logvar_px) = ([0.0f32; 20], [0.0f32; 20]);
    /// encoder.encode_pixels(&digit, &mut arena, &mut mu_px, &mut logvar_px)?;
    /// assert_eq!(mu, mu_px);
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn encode(&self, x: &[f32], arena: &mut [u8], mu: &mut [f32], logvar: &mut [f32]) -> Result<(), Error> {
        self.encode_batch(x, None, 1, arena, mu, logvar)
    }

    /// Encodes `batch` images given as 0..=255 pixels (no float work on int8 inputs), with
    /// labels for conditional encoders.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let batch = 3;
    /// let images: Vec<u8> = digit.repeat(batch);
    /// let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
    /// let mut mu = vec![0.0f32; batch * 20];
    /// let mut logvar = vec![0.0f32; batch * 20];
    /// encoder.encode_pixels_batch(&images, None, batch, &mut arena, &mut mu, &mut logvar)?;
    /// assert_eq!(mu[..20], mu[40..]); // the same image, the same code
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn encode_pixels_batch(
        &self,
        px: &[u8],
        labels: Option<&[u32]>,
        batch: usize,
        arena: &mut [u8],
        mu: &mut [f32],
        logvar: &mut [f32],
    ) -> Result<(), Error> {
        check_len("pixels", batch * self.input_len(), px.len())?;
        let work = self.model.working_arena(arena, batch)?;
        stage_labels(self.model, self.kernels, work, labels, batch)?;
        self.model.stage_pixels(self.kernels, work, 0, batch, px)?;
        self.model.execute(self.kernels, work, batch)?;
        self.read_heads(arena, batch, mu, logvar)
    }

    /// Encodes one image given as 0..=255 pixels.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let mut arena = [0u8; 1200]; // model.arena_size(), or tinyvae::arena_size_of(blob) in a const
    /// let (mut mu, mut logvar) = ([0.0f32; 20], [0.0f32; 20]);
    /// encoder.encode_pixels(&digit, &mut arena, &mut mu, &mut logvar)?;
    /// assert!(logvar.iter().all(|v| v.is_finite()));
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn encode_pixels(&self, px: &[u8], arena: &mut [u8], mu: &mut [f32], logvar: &mut [f32]) -> Result<(), Error> {
        self.encode_pixels_batch(px, None, 1, arena, mu, logvar)
    }

    /// Encodes one image of 0..=255 pixels with its label (conditional encoders, e.g. a CVAE's
    /// q(z | x, y)).
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-cvae/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut mu, mut logvar) = ([0.0f32; 8], [0.0f32; 8]);
    /// encoder.encode_pixels_conditional(&digit, 1, &mut arena, &mut mu, &mut logvar)?;
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn encode_pixels_conditional(
        &self,
        px: &[u8],
        label: u32,
        arena: &mut [u8],
        mu: &mut [f32],
        logvar: &mut [f32],
    ) -> Result<(), Error> {
        self.encode_pixels_batch(px, Some(&[label]), 1, arena, mu, logvar)
    }

    /// `z = mu + exp(logvar / 2) * eps`, `eps ~ N(0, I)` from `rng`.
    ///
    /// ```
    /// # use tinyvae::{Encoder, Model, Rng};
    /// # #[repr(C, align(16))]
    /// # struct Aligned<B: ?Sized>(B);
    /// # static BLOB: &Aligned<[u8]> = &Aligned(*include_bytes!(concat!(
    /// #     env!("CARGO_MANIFEST_DIR"),
    /// #     "/../../models/mnist-vae-z20/encoder.int8.tvae"
    /// # )));
    /// # let model = Model::parse(&BLOB.0)?;
    /// # let encoder = Encoder::new(&model)?;
    /// # // A "1": a vertical stroke down the middle of a 28 x 28 image.
    /// # let mut digit = [0u8; 784];
    /// # (4..24).for_each(|y| digit[28 * y + 14] = 255);
    /// let mut arena = vec![0u8; model.arena_size()];
    /// let (mut mu, mut logvar) = ([0.0f32; 20], [0.0f32; 20]);
    /// encoder.encode_pixels(&digit, &mut arena, &mut mu, &mut logvar)?;
    /// // A draw from q(z | x), ready for the decoder.
    /// let mut z = [0.0f32; 20];
    /// Encoder::reparametrize(&mu, &logvar, &mut Rng::new(9), &mut z)?;
    /// # Ok::<(), tinyvae::Error>(())
    /// ```
    pub fn reparametrize(mu: &[f32], logvar: &[f32], rng: &mut Rng, z: &mut [f32]) -> Result<(), Error> {
        check_len("logvar", mu.len(), logvar.len())?;
        check_len("z", mu.len(), z.len())?;
        crate::rng::reparametrize(mu, logvar, rng, z);
        Ok(())
    }
}
