//! The high-level API: a decoder maps z (and a label) to pixels, an encoder maps pixels to mu
//! and log-variance. Both run in the caller's arena and allocate nothing.

use crate::error::Error;
use crate::format::{EncoderHead, ModelKind};
use crate::kernels::{self, Kernels};
use crate::model::Model;
use crate::rng::Rng;

fn check_len(what: &'static str, expected: usize, got: usize) -> Result<(), Error> {
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
        (Some(_), 0) => Err(Error::BadLabel { label: 0, classes: 0 }),
        (None, c) => Err(Error::BadLabel { label: u32::MAX, classes: c as u32 }),
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
#[derive(Debug, Clone, Copy)]
pub struct Decoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
}

impl<'m, 'a> Decoder<'m, 'a> {
    /// Wraps a parsed model; fails unless it is a decoder.
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Decoder {
            return Err(Error::WrongKind { expected: ModelKind::Decoder, found: model.kind() });
        }
        Ok(Decoder { model, kernels: kernels::best() })
    }

    /// Uses a specific kernel table (e.g. `&kernels::REFERENCE`) instead of the fastest one.
    pub fn with_kernels(mut self, kernels: &'static Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    /// The underlying model.
    pub fn model(&self) -> &Model<'a> {
        self.model
    }

    /// Size of z.
    pub fn latent_dim(&self) -> usize {
        self.model.meta().latent
    }

    /// Number of label classes (0 for unconditional decoders).
    pub fn classes(&self) -> usize {
        self.model.meta().classes
    }

    /// Values per decoded sample (784 for MNIST).
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

    /// [`Self::run`] on one z drawn from N(0, I) with `rng`.
    fn run_prior(&self, rng: &mut Rng, labels: Option<&[u32]>, arena: &mut [u8]) -> Result<(), Error> {
        let z = core::iter::repeat_with(|| rng.gaussian());
        self.run(|work| self.model.stage_input(self.kernels, work, 0, 1, z), labels, 1, arena)
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
    pub fn decode(&self, z: &[f32], arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        self.decode_batch(z, None, 1, arena, pixels)
    }

    /// Decodes one z with a label (conditional decoders).
    pub fn decode_conditional(&self, z: &[f32], label: u32, arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        self.decode_batch(z, Some(&[label]), 1, arena, pixels)
    }

    /// Decodes `batch` latent vectors to real-valued outputs (probabilities or means).
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
    pub fn decode_f32(&self, z: &[f32], arena: &mut [u8], out: &mut [f32]) -> Result<(), Error> {
        self.decode_batch_f32(z, None, 1, arena, out)
    }

    /// Draws z ~ N(0, I) from `rng` and decodes it; successive calls continue the stream, so a
    /// grid of samples from seed S is the same on every target.
    pub fn sample(&self, rng: &mut Rng, arena: &mut [u8], pixels: &mut [u8]) -> Result<(), Error> {
        check_len("pixels", self.output_len(), pixels.len())?;
        self.run_prior(rng, None, arena)?;
        self.finish_pixels(arena, 1, pixels)
    }

    /// Draws z ~ N(0, I) and decodes it with a label (conditional decoders).
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
#[derive(Debug, Clone, Copy)]
pub struct Encoder<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
}

impl<'m, 'a> Encoder<'m, 'a> {
    /// Wraps a parsed model; fails unless it is an encoder.
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Encoder {
            return Err(Error::WrongKind { expected: ModelKind::Encoder, found: model.kind() });
        }
        Ok(Encoder { model, kernels: kernels::best() })
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

    /// Size of z.
    pub fn latent_dim(&self) -> usize {
        self.model.meta().latent
    }

    /// Values per input image (784 for MNIST).
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
            _ => {
                // One output of [mu | logvar] per sample.
                for (s, (m, lv)) in mu.chunks_exact_mut(latent).zip(logvar.chunks_exact_mut(latent)).enumerate() {
                    self.model.read_output_part(work, 0, batch, 2 * latent * s, m)?;
                    self.model.read_output_part(work, 0, batch, 2 * latent * s + latent, lv)?;
                }
                Ok(())
            }
        }
    }

    /// Number of label classes (0 for unconditional encoders such as the VAE's).
    pub fn classes(&self) -> usize {
        self.model.meta().classes
    }

    /// Encodes `batch` images given as [0, 1] values (`x.len() == batch * input_len`), with one
    /// label each for conditional encoders (`labels` is `Some` exactly for those).
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
    pub fn encode(&self, x: &[f32], arena: &mut [u8], mu: &mut [f32], logvar: &mut [f32]) -> Result<(), Error> {
        self.encode_batch(x, None, 1, arena, mu, logvar)
    }

    /// Encodes `batch` images given as 0..=255 pixels (no float work on int8 inputs), with
    /// labels for conditional encoders.
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
    pub fn encode_pixels(&self, px: &[u8], arena: &mut [u8], mu: &mut [f32], logvar: &mut [f32]) -> Result<(), Error> {
        self.encode_pixels_batch(px, None, 1, arena, mu, logvar)
    }

    /// Encodes one image of 0..=255 pixels with its label (conditional encoders, e.g. a CVAE's
    /// q(z | x, y)).
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
    pub fn reparametrize(mu: &[f32], logvar: &[f32], rng: &mut Rng, z: &mut [f32]) -> Result<(), Error> {
        check_len("logvar", mu.len(), logvar.len())?;
        check_len("z", mu.len(), z.len())?;
        crate::rng::reparametrize(mu, logvar, rng, z);
        Ok(())
    }
}
