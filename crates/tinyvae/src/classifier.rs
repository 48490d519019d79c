//! Classifiers: an image (or any feature vector) in, one logit per class out, and the class of
//! the largest as the answer (format version 6, [`ModelKind::Classifier`]).
//!
//! On an int8 blob the answer is the argmax of the output's int8 codes: dequantization is
//! increasing (the scale is positive), so the codes rank the classes as the logits do, with
//! no float work after the input quantization, and every target gives the same class. Ties go
//! to the lowest class.

use crate::api::check_len;
use crate::cast::f32s;
use crate::error::Error;
use crate::format::{DType, ModelKind};
use crate::kernels::{self, Kernels};
use crate::model::Model;

/// Runs a classifier blob: [`Classifier::classify_pixels`] gives the class of an image.
///
/// ```
/// use tinyvae::{Classifier, Model};
///
/// // A small int8 classifier of 4 x 4 images into 3 classes (format::write::example_classifier);
/// // firmware embeds its blob in flash the same way as a decoder's.
/// let blob = tinyvae::AlignedBlob::new(&tinyvae::format::write::example_classifier());
/// let model = Model::parse(&blob)?;
/// let classifier = Classifier::new(&model)?;
/// let mut arena = vec![0u8; model.arena_size()];
/// let image = [255u8; 16];
/// let class = classifier.classify_pixels(&image, &mut arena)?;
/// assert!(class < 3);
/// // The logits of that run, for a confidence or a softmax.
/// let mut logits = [0.0f32; 3];
/// classifier.logits(&mut arena, 1, &mut logits)?;
/// assert!(logits.iter().all(|&l| l <= logits[class as usize]));
/// # Ok::<(), tinyvae::Error>(())
/// ```
#[derive(Debug, Clone, Copy)]
pub struct Classifier<'m, 'a> {
    model: &'m Model<'a>,
    kernels: &'static Kernels,
}

impl<'m, 'a> Classifier<'m, 'a> {
    /// Wraps a parsed model; fails unless it is a classifier.
    pub fn new(model: &'m Model<'a>) -> Result<Self, Error> {
        if model.kind() != ModelKind::Classifier {
            return Err(Error::WrongKind { expected: ModelKind::Classifier, found: model.kind() });
        }
        Ok(Classifier { model, kernels: kernels::best() })
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

    /// Number of classes (logits per input).
    pub fn classes(&self) -> usize {
        self.model.meta().classes
    }

    /// Values per input (784 for an MNIST image).
    pub fn input_len(&self) -> usize {
        self.model.input(0).map(|t| t.len).unwrap_or(0)
    }

    /// Classifies `batch` images of 0..=255 pixels (`px.len() == batch * input_len`) into
    /// `classes` (one per image).
    pub fn classify_pixels_batch(
        &self,
        px: &[u8],
        batch: usize,
        arena: &mut [u8],
        classes: &mut [u32],
    ) -> Result<(), Error> {
        check_len("pixels", batch * self.input_len(), px.len())?;
        self.run(batch, arena, classes, |work| self.model.stage_pixels(self.kernels, work, 0, batch, px))
    }

    /// The class of one image of 0..=255 pixels.
    pub fn classify_pixels(&self, px: &[u8], arena: &mut [u8]) -> Result<u32, Error> {
        let mut class = [0u32];
        self.classify_pixels_batch(px, 1, arena, &mut class)?;
        Ok(class[0])
    }

    /// Classifies `batch` inputs given as real values (`x.len() == batch * input_len`; images
    /// as [0, 1] values).
    pub fn classify_batch(&self, x: &[f32], batch: usize, arena: &mut [u8], classes: &mut [u32]) -> Result<(), Error> {
        check_len("x", batch * self.input_len(), x.len())?;
        self.run(batch, arena, classes, |work| self.model.stage_input_slice(self.kernels, work, 0, batch, x))
    }

    /// The class of one input given as real values.
    pub fn classify(&self, x: &[f32], arena: &mut [u8]) -> Result<u32, Error> {
        let mut class = [0u32];
        self.classify_batch(x, 1, arena, &mut class)?;
        Ok(class[0])
    }

    /// Stages the input with `stage`, runs the graph and reads the classes.
    fn run(
        &self,
        batch: usize,
        arena: &mut [u8],
        classes: &mut [u32],
        stage: impl FnOnce(&mut [u8]) -> Result<(), Error>,
    ) -> Result<(), Error> {
        check_len("classes", batch, classes.len())?;
        let work = self.model.working_arena(arena, batch)?;
        stage(work)?;
        self.model.execute(self.kernels, work, batch)?;
        self.argmax(work, batch, classes)
    }

    /// The logits of the last run in `arena` (`batch` as it was; `out.len() == batch *
    /// classes`), dequantized on int8 blobs.
    pub fn logits(&self, arena: &mut [u8], batch: usize, out: &mut [f32]) -> Result<(), Error> {
        check_len("logits", batch * self.classes(), out.len())?;
        let work = self.model.working_arena(arena, batch)?;
        self.model.read_output(work, 0, batch, out)
    }

    /// The class of the largest logit of each sample (the lowest on ties; a NaN never wins).
    fn argmax(&self, work: &[u8], batch: usize, classes: &mut [u32]) -> Result<(), Error> {
        let n = self.classes();
        let out = self.model.output(0).ok_or(Error::BadGraph { reason: "missing output" })?;
        let bytes = self.model.output_bytes(work, 0, batch)?;
        let size = out.dtype.size();
        for (s, class) in classes.iter_mut().enumerate() {
            let sample = bytes.get(s * n * size..(s + 1) * n * size).ok_or(Error::BadGraph { reason: "output" })?;
            *class = match out.dtype {
                DType::I8 => first_max(sample.iter().map(|&b| b as i8)),
                _ => first_max(f32s(sample).iter().copied()),
            };
        }
        Ok(())
    }
}

/// The class a classifier answers for its logits (or their int8 codes): the index of the first
/// largest value. `>` only, so a later equal value never replaces it, and a NaN (unordered even
/// with itself) is skipped. 0 when every value is a NaN. Public so that tools measuring a
/// classifier apply the very rule the device does.
pub fn first_max<T: PartialOrd>(values: impl Iterator<Item = T>) -> u32 {
    let mut best: Option<(u32, T)> = None;
    for (i, v) in values.enumerate() {
        if v.partial_cmp(&v).is_none() {
            continue;
        }
        let better = match &best {
            Some((_, b)) => v > *b,
            None => true,
        };
        if better {
            best = Some((i as u32, v));
        }
    }
    best.map_or(0, |(i, _)| i)
}

#[cfg(all(test, feature = "alloc"))]
mod tests {
    use super::*;
    use crate::format::write;
    use crate::AlignedBlob;

    #[test]
    fn argmax_takes_the_first_largest_and_skips_nans() {
        assert_eq!(first_max([1i8, 5, 5, -3].into_iter()), 1);
        assert_eq!(first_max([f32::NAN, 0.5, 2.0, 2.0].into_iter()), 2);
        assert_eq!(first_max([f32::NAN, f32::NAN].into_iter()), 0);
        assert_eq!(first_max([-1.0f32, f32::NAN, -0.5].into_iter()), 2);
    }

    #[test]
    fn the_class_is_the_largest_logit_on_every_kernel_table() {
        let blob = AlignedBlob::new(&write::example_classifier());
        let model = Model::parse(&blob).unwrap();
        assert_eq!(model.version(), crate::format::VERSION);
        let c = Classifier::new(&model).unwrap();
        assert_eq!((c.classes(), c.input_len()), (3, 16));
        let batch = 64;
        let mut rng = crate::Rng::new(11);
        let px: Vec<u8> = (0..batch * 16).map(|_| rng.below(256) as u8).collect();
        let mut arena = vec![0u8; model.arena_size_for_batch(batch).unwrap()];
        let mut classes = vec![0u32; batch];
        c.classify_pixels_batch(&px, batch, &mut arena, &mut classes).unwrap();
        let mut logits = vec![0.0f32; batch * 3];
        c.logits(&mut arena, batch, &mut logits).unwrap();
        let mut seen = [false; 3];
        for (s, &class) in classes.iter().enumerate() {
            let l = &logits[s * 3..s * 3 + 3];
            assert!(l.iter().all(|&v| v <= l[class as usize]), "sample {s}: {l:?} gave {class}");
            seen[class as usize] = true;
            // One at a time, on the reference kernels, and from [0, 1] values: the same class.
            let one = &px[s * 16..s * 16 + 16];
            let reference = c.with_kernels(&kernels::REFERENCE);
            assert_eq!(reference.classify_pixels(one, &mut arena).unwrap(), class);
            let x: Vec<f32> = one.iter().map(|&p| p as f32 / 255.0).collect();
            assert_eq!(c.classify(&x, &mut arena).unwrap(), class);
        }
        // The example's weights are not degenerate: random images reach more than one class.
        assert!(seen.iter().filter(|&&s| s).count() >= 2, "{seen:?}");
    }

    #[test]
    fn other_kinds_and_wrong_buffers_are_refused() {
        let blob = AlignedBlob::new(&crate::doc_example_blob());
        let model = Model::parse(&blob).unwrap();
        assert!(matches!(Classifier::new(&model), Err(Error::WrongKind { .. })));
        let blob = AlignedBlob::new(&write::example_classifier());
        let model = Model::parse(&blob).unwrap();
        let c = Classifier::new(&model).unwrap();
        let mut arena = vec![0u8; model.arena_size()];
        assert!(matches!(c.classify_pixels(&[0u8; 15], &mut arena), Err(Error::BufferLength { .. })));
        let mut two = [0u32; 2];
        assert!(matches!(
            c.classify_pixels_batch(&[0u8; 16], 1, &mut arena, &mut two),
            Err(Error::BufferLength { .. })
        ));
        assert!(c.classify_pixels(&[0u8; 16], &mut arena[..8]).is_err());
    }
}
