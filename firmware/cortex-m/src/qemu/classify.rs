//! The digits read back on the device: with a classifier blob deployed beside the decoder
//! (`TINYVAE_CLASSIFIER_DIR`, see build.rs), every digit the firmware draws is classified by it,
//! the class goes into the panel's caption ("is a 7") and the frame's report line, and
//! `classes.raw` gets one byte per digit (what `tinyvae classify --predicted` writes for the
//! same pixels). Built only then (`cfg(classifier)`).

use core::fmt::Write as _;

use tinyvae::{Classifier, Model};

use super::{Counter, Failure};
use crate::semihosting::{Console, HostFile};
use crate::PIXELS;

/// The deployed classifier: the module `tinyvae deploy` generated for it.
mod deployed {
    include!(concat!(env!("TINYVAE_CLASSIFIER_DIR"), "/model.rs"));
}

/// The classifier's working memory, sized from its blob at compile time (its own, so that the
/// decoder's arena keeps its values between draws).
static mut ARENA: [u8; deployed::ARENA_SIZE] = [0; deployed::ARENA_SIZE];

/// The classifier blob, parsed and checked.
pub fn model() -> Result<Model<'static>, Failure> {
    Ok(Model::parse(deployed::BLOB)?)
}

/// Its arena, handed out once.
fn take_arena() -> Option<&'static mut [u8]> {
    use core::sync::atomic::{AtomicBool, Ordering};
    static TAKEN: AtomicBool = AtomicBool::new(false);
    if TAKEN.swap(true, Ordering::Relaxed) {
        return None;
    }
    // SAFETY: the flag lets this run once, and ARENA is reached nowhere else.
    Some(unsafe { &mut *core::ptr::addr_of_mut!(ARENA) })
}

/// Classifies the digits one by one and keeps the tally.
pub struct Reader<'m> {
    classifier: Classifier<'m, 'static>,
    arena: &'static mut [u8],
    classes: HostFile,
    /// Digits read, those read as the digit requested of a conditional decoder, and the
    /// fewest and most instructions a classification took.
    read: u32,
    as_requested: u32,
    fewest: u64,
    most: u64,
}

impl<'m> Reader<'m> {
    /// The reader of `model`, which must classify images of the decoder's size.
    pub fn new(model: &'m Model<'static>, console: &mut Console) -> Result<Self, Failure> {
        let classifier = Classifier::new(model)?;
        if classifier.input_len() != PIXELS {
            return Err(Failure::Setup("the classifier does not take images of the decoder's size"));
        }
        let arena = take_arena().ok_or(Failure::Setup("the classifier's arena is already taken"))?;
        let _ = writeln!(
            console,
            "classifier: {} {}, {} classes, blob in flash, arena {} B, {} MACs per digit",
            model.precision(),
            model.kind(),
            classifier.classes(),
            arena.len(),
            model.macs(),
        );
        let classes = HostFile::create(c"classes.raw")?;
        Ok(Reader { classifier, arena, classes, read: 0, as_requested: 0, fewest: u64::MAX, most: 0 })
    }

    /// The class of `digit` and the instructions it took; `requested` is the digit a
    /// conditional decoder was asked for.
    pub fn read(&mut self, counter: &Counter, digit: &[u8], requested: Option<u32>) -> Result<(u32, u64), Failure> {
        let (class, cost) = counter.count(|| self.classifier.classify_pixels(digit, self.arena));
        let class = class?;
        // One byte per digit, as `tinyvae classify --predicted` writes: MNIST-like classifiers
        // have ten classes.
        let byte = u8::try_from(class).map_err(|_| Failure::Setup("a class past 255 does not fit classes.raw"))?;
        self.classes.write_all(&[byte])?;
        self.read += 1;
        self.as_requested += u32::from(requested == Some(class));
        (self.fewest, self.most) = (self.fewest.min(cost), self.most.max(cost));
        Ok((class, cost))
    }

    /// The summary lines.
    pub fn summary(&self, console: &mut Console, conditional: bool) {
        let _ = writeln!(
            console,
            "summary: classified {} digits, {}..{} instructions each; wrote classes.raw ({} x 1 B)",
            self.read, self.fewest, self.most, self.read
        );
        if conditional {
            let _ = writeln!(console, "summary: {} of {} read as the requested digit", self.as_requested, self.read);
        }
    }
}
