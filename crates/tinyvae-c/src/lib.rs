//! The C API of the tinyvae runtime.
//!
//! A C program embeds a blob (`tinyvae deploy --lang c` writes it as a `const` array), parses it
//! once into a caller-owned `tinyvae_model`, and decodes, samples or encodes in an arena it
//! owns too. Nothing here allocates; every pointer and length is checked before use; every
//! failure is an integer code (`TINYVAE_OK` is 0, failures are negative) whose text
//! `tinyvae_error_message` returns. The header, `include/tinyvae.h`, is generated from this
//! file by cbindgen (`scripts/gen-c-header.sh`); CI regenerates it and fails on a difference.
//!
//! The library is `no_std` and built with `panic = "abort"`, so no unwinding can cross into C.
//! The runtime validates a blob completely at parse time and its kernels do not panic on what
//! parses; were a panic reached anyway, the handler calls the C library's `abort()`.
//!
//! Unsafe code is confined to turning C pointers into slices (after the null, length and
//! overflow checks of `slice_in` and `slice_out`) and to the parsed model's storage inside
//! `tinyvae_model`.
#![no_std]
#![allow(non_camel_case_types)]

use core::mem::{align_of, size_of, MaybeUninit};
use tinyvae::{Autoencoder, Classifier, Decoder, Encoder, Error, Model, ModelKind, Rng};

/// Success.
pub const TINYVAE_OK: i32 = 0;
/// A required pointer was NULL.
pub const TINYVAE_ERR_NULL: i32 = -1;
/// The model handle was never filled by `tinyvae_model_parse` (or was overwritten).
pub const TINYVAE_ERR_NOT_PARSED: i32 = -2;
/// A buffer's length is not what the model needs, or too large to address.
pub const TINYVAE_ERR_LENGTH: i32 = -3;
/// The arena is smaller than `tinyvae_arena_size`.
pub const TINYVAE_ERR_ARENA: i32 = -4;
/// The model is not of the kind the call needs (a decoder given to an encoder call...).
pub const TINYVAE_ERR_KIND: i32 = -5;
/// A label is out of range, given to an unconditional model, or missing for a conditional one.
pub const TINYVAE_ERR_LABEL: i32 = -6;
/// Not a tinyvae blob: bad magic, too short, or a format version this library does not read.
pub const TINYVAE_ERR_NOT_A_BLOB: i32 = -7;
/// The blob is truncated, padded or corrupted (length or checksum mismatch).
pub const TINYVAE_ERR_CORRUPT: i32 = -8;
/// The blob is invalid: a header field, section, tensor, node, graph or prior is wrong.
pub const TINYVAE_ERR_INVALID: i32 = -9;
/// The blob needs a feature this library was built without (f16/f32 precision, conv ops).
pub const TINYVAE_ERR_NOT_BUILT: i32 = -10;

/// Means "no label" where a label is optional (unconditional models).
pub const TINYVAE_NO_LABEL: i32 = -1;

/// Model kind of `tinyvae_model_kind`: any graph.
pub const TINYVAE_KIND_GENERIC: i32 = 0;
/// A decoder: z (and a label) to pixels.
pub const TINYVAE_KIND_DECODER: i32 = 1;
/// An encoder: pixels (and a label) to mu and log-variance.
pub const TINYVAE_KIND_ENCODER: i32 = 2;
/// An autoencoder: a feature vector to its reconstruction, scored as an anomaly detector.
pub const TINYVAE_KIND_AUTOENCODER: i32 = 3;
/// A classifier: an image (or feature vector) to one logit per class.
pub const TINYVAE_KIND_CLASSIFIER: i32 = 4;

/// Words of storage in a `tinyvae_model`; enough for the parsed model on 32- and 64-bit
/// targets (checked at compile time).
pub const TINYVAE_MODEL_WORDS: usize = 32;

/// Marks a `tinyvae_model` that `tinyvae_model_parse` filled ("tvaeMODL").
const PARSED: u64 = 0x7476_6165_4d4f_444c;

/// A parsed model, in memory the caller owns (a local, a static). It borrows the blob: the
/// blob must stay in place, unchanged, while the model is used. Fill it with
/// `tinyvae_model_parse`; its contents are private.
#[repr(C)]
pub struct tinyvae_model {
    magic: u64,
    storage: [u64; TINYVAE_MODEL_WORDS],
}

const _: () = assert!(size_of::<Model<'static>>() <= TINYVAE_MODEL_WORDS * 8);
const _: () = assert!(align_of::<Model<'static>>() <= 8);

/// The runtime's random generator, in memory the caller owns: the same seed gives the same
/// samples as `tinyvae sample --seed` on a host. Fill it with `tinyvae_rng_init`.
#[repr(C)]
pub struct tinyvae_rng {
    /// SplitMix64 state.
    pub state: u64,
    /// The polar method's spare Gaussian, valid when `has_spare` is 1.
    pub spare: f32,
    /// 1 when `spare` holds a value, else 0.
    pub has_spare: u32,
}

impl tinyvae_rng {
    fn get(&self) -> Rng {
        Rng::from_state(self.state, (self.has_spare != 0).then_some(self.spare))
    }

    fn set(&mut self, rng: &Rng) {
        let (state, spare) = rng.state();
        self.state = state;
        self.spare = spare.unwrap_or(0.0);
        self.has_spare = spare.is_some() as u32;
    }
}

fn code(e: Error) -> i32 {
    match e {
        Error::TooShort { .. } | Error::BadMagic | Error::UnsupportedVersion { .. } => TINYVAE_ERR_NOT_A_BLOB,
        Error::LengthMismatch { .. } | Error::ChecksumMismatch { .. } => TINYVAE_ERR_CORRUPT,
        Error::ArenaTooSmall { .. } => TINYVAE_ERR_ARENA,
        Error::BufferLength { .. } | Error::BadBatch { .. } => TINYVAE_ERR_LENGTH,
        Error::WrongKind { .. } => TINYVAE_ERR_KIND,
        Error::BadLabel { .. } | Error::MissingLabel { .. } => TINYVAE_ERR_LABEL,
        Error::PrecisionNotBuilt { .. } | Error::OpNotBuilt { .. } => TINYVAE_ERR_NOT_BUILT,
        _ => TINYVAE_ERR_INVALID,
    }
}

fn status(r: Result<(), Error>) -> i32 {
    r.map_or_else(code, |()| TINYVAE_OK)
}

/// The code of a call written with `?` over error codes.
fn outcome(call: impl FnOnce() -> Result<(), i32>) -> i32 {
    call().err().unwrap_or(TINYVAE_OK)
}

/// Whether `(p, len)` can be a Rust slice: not NULL, and a byte length the address space holds.
fn is_array<T>(p: *const T, len: usize) -> bool {
    !p.is_null() && len.checked_mul(size_of::<T>()).is_some_and(|b| b <= isize::MAX as usize)
}

/// The C array `(p, len)` as a slice, or `None` when `p` is NULL or the byte length overflows.
///
/// # Safety
/// When `p` is not NULL it must point to `len` readable, initialized values that stay valid and
/// unchanged for `'a`.
unsafe fn slice_in<'a, T>(p: *const T, len: usize) -> Option<&'a [T]> {
    if !is_array::<T>(p, len) {
        return None;
    }
    // SAFETY: non-null, a size the address space can hold, and the caller's promise.
    Some(unsafe { core::slice::from_raw_parts(p, len) })
}

/// `slice_in` for a buffer the call writes.
///
/// # Safety
/// When `p` is not NULL it must point to `len` writable values that nothing else reads or
/// writes during the call.
unsafe fn slice_out<'a, T>(p: *mut T, len: usize) -> Option<&'a mut [T]> {
    if !is_array::<T>(p, len) {
        return None;
    }
    // SAFETY: as for `slice_in`, and the caller gives this call the only access.
    Some(unsafe { core::slice::from_raw_parts_mut(p, len) })
}

/// The parsed model in `m`, or the error code.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
unsafe fn model<'a>(m: *const tinyvae_model) -> Result<&'a Model<'static>, i32> {
    // SAFETY: the caller's promise; a NULL pointer is refused by `as_ref`.
    let m = unsafe { m.as_ref() }.ok_or(TINYVAE_ERR_NULL)?;
    if m.magic != PARSED {
        return Err(TINYVAE_ERR_NOT_PARSED);
    }
    // SAFETY: the magic says `tinyvae_model_parse` wrote a `Model` at the start of `storage`
    // (size and alignment checked at compile time above), and the caller keeps the blob alive.
    Ok(unsafe { &*(m.storage.as_ptr() as *const Model<'static>) })
}

/// Parses and validates a blob (magic, version, checksum, every section, record and the arena
/// plan) into `out`. The blob must stay in place and unchanged while `out` is used; put it at a
/// 16-byte aligned address for the fastest kernels.
///
/// # Safety
/// `blob` points to `len` readable bytes (or is NULL); `out` points to a `tinyvae_model` (or is
/// NULL).
#[no_mangle]
pub unsafe extern "C" fn tinyvae_model_parse(blob: *const u8, len: usize, out: *mut tinyvae_model) -> i32 {
    // SAFETY: the caller's promise about `blob`.
    let Some(bytes) = (unsafe { slice_in::<u8>(blob, len) }) else { return TINYVAE_ERR_NULL };
    // SAFETY: the caller's promise about `out`.
    let Some(out) = (unsafe { out.as_mut() }) else { return TINYVAE_ERR_NULL };
    out.magic = 0;
    match Model::parse(bytes) {
        Ok(model) => {
            let slot = out.storage.as_mut_ptr() as *mut MaybeUninit<Model<'static>>;
            // SAFETY: `storage` is large and aligned enough (compile-time checks above); the
            // blob outlives the model by the caller's promise, which is what 'static stands for.
            unsafe { (*slot).write(core::mem::transmute::<Model<'_>, Model<'static>>(model)) };
            out.magic = PARSED;
            TINYVAE_OK
        }
        Err(e) => code(e),
    }
}

/// Arena bytes for one sample (the blob's own figure plus alignment slack); 0 on a NULL or
/// unparsed model. `tinyvae deploy --lang c` writes the same number as a `#define`.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_arena_size(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.map_or(0, |m| m.arena_size())
}

/// The model's kind: `TINYVAE_KIND_DECODER`, `TINYVAE_KIND_ENCODER`,
/// `TINYVAE_KIND_AUTOENCODER`, `TINYVAE_KIND_CLASSIFIER` or `TINYVAE_KIND_GENERIC`; a negative error code on a NULL or
/// unparsed model.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_model_kind(m: *const tinyvae_model) -> i32 {
    // SAFETY: the caller's promise.
    match unsafe { model(m) } {
        Ok(m) => match m.kind() {
            ModelKind::Decoder => TINYVAE_KIND_DECODER,
            ModelKind::Encoder => TINYVAE_KIND_ENCODER,
            ModelKind::Autoencoder => TINYVAE_KIND_AUTOENCODER,
            ModelKind::Classifier => TINYVAE_KIND_CLASSIFIER,
            ModelKind::Generic => TINYVAE_KIND_GENERIC,
        },
        Err(e) => e,
    }
}

/// Size of z (0 on a NULL or unparsed model).
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_latent_size(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.map_or(0, |m| m.meta().latent)
}

/// Label classes of a conditional model (0: unconditional, or a NULL or unparsed model).
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_classes(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.map_or(0, |m| m.meta().classes)
}

/// Values of the model's first input (z for a decoder, pixels for an encoder); 0 on a NULL or
/// unparsed model.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_input_size(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.ok().and_then(|m| m.input(0)).map_or(0, |t| t.len)
}

/// Values of the model's first output (pixels for a decoder); 0 on a NULL or unparsed model.
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_output_size(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.ok().and_then(|m| m.output(0)).map_or(0, |t| t.len)
}

/// Multiply-accumulates per sample (0 on a NULL or unparsed model).
///
/// # Safety
/// `m` is NULL or points to a `tinyvae_model`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_macs(m: *const tinyvae_model) -> usize {
    // SAFETY: the caller's promise.
    unsafe { model(m) }.map_or(0, |m| m.macs())
}

/// Seeds `rng`: the same seed draws the same samples as `tinyvae sample --seed SEED`.
///
/// # Safety
/// `rng` is NULL or points to a `tinyvae_rng`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_rng_init(rng: *mut tinyvae_rng, seed: u64) -> i32 {
    // SAFETY: the caller's promise.
    let Some(rng) = (unsafe { rng.as_mut() }) else { return TINYVAE_ERR_NULL };
    rng.set(&Rng::new(seed));
    TINYVAE_OK
}

/// A decoder for `m` with the arena and output checked, then `run` on it.
///
/// # Safety
/// As for `tinyvae_decode`.
unsafe fn with_decoder(
    m: *const tinyvae_model,
    arena: *mut u8,
    arena_len: usize,
    pixels: *mut u8,
    pixels_len: usize,
    run: impl FnOnce(&Decoder<'_, 'static>, &mut [u8], &mut [u8]) -> Result<(), Error>,
) -> i32 {
    outcome(|| {
        // SAFETY: the caller's promise about `m`.
        let decoder = Decoder::new(unsafe { model(m) }?).map_err(code)?;
        // SAFETY: the caller's promises about `arena` and `pixels`.
        let bufs = unsafe { (slice_out(arena, arena_len), slice_out(pixels, pixels_len)) };
        let (Some(arena), Some(pixels)) = bufs else { return Err(TINYVAE_ERR_NULL) };
        run(&decoder, arena, pixels).map_err(code)
    })
}

/// `TINYVAE_NO_LABEL` as `None`, another negative label as an error.
fn label_of(label: i32) -> Result<Option<u32>, Error> {
    match label {
        TINYVAE_NO_LABEL => Ok(None),
        l if l < 0 => Err(Error::BadLabel { label: l as u32, classes: 0 }),
        l => Ok(Some(l as u32)),
    }
}

/// Decodes `z` (`z_len` = latent size) into `pixels` (`pixels_len` = output size, bytes
/// 0..=255), with `label` for a conditional decoder or `TINYVAE_NO_LABEL`.
///
/// # Safety
/// `m` is NULL or a `tinyvae_model`; `z`, `arena` and `pixels` are NULL or point to `z_len`
/// floats, `arena_len` bytes and `pixels_len` bytes; `arena` and `pixels` do not overlap
/// anything else the call reads.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_decode(
    m: *const tinyvae_model,
    z: *const f32,
    z_len: usize,
    label: i32,
    arena: *mut u8,
    arena_len: usize,
    pixels: *mut u8,
    pixels_len: usize,
) -> i32 {
    // SAFETY: the caller's promise about `z`.
    let Some(z) = (unsafe { slice_in(z, z_len) }) else { return TINYVAE_ERR_NULL };
    // SAFETY: the caller's promises, passed on.
    unsafe {
        with_decoder(m, arena, arena_len, pixels, pixels_len, |d, arena, px| match label_of(label)? {
            Some(l) => d.decode_conditional(z, l, arena, px),
            None => d.decode(z, arena, px),
        })
    }
}

/// Scores the feature vector `x` (`x_len` = input size) with an autoencoder: `*raw` receives
/// its reconstruction error as the integer `tinyvae::Score::raw` (exact integer arithmetic on
/// an int8 blob), which firmware compares with the threshold `tinyvae deploy --threshold-data`
/// writes (`TINYVAE_MODEL_THRESHOLD_RAW`): above it is an alarm.
///
/// # Safety
/// `m` is NULL or a `tinyvae_model`; `x`, `arena` and `raw` are NULL or point to `x_len`
/// floats, `arena_len` bytes and one `uint64_t`, none overlapping another.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_anomaly_score(
    m: *const tinyvae_model,
    x: *const f32,
    x_len: usize,
    arena: *mut u8,
    arena_len: usize,
    raw: *mut u64,
) -> i32 {
    outcome(|| {
        // SAFETY: the caller's promise about `m`.
        let ae = Autoencoder::new(unsafe { model(m) }?).map_err(code)?;
        // SAFETY: the caller's promises about `x`, `arena` and `raw`.
        let bufs = unsafe { (slice_in(x, x_len), slice_out(arena, arena_len), raw.as_mut()) };
        let (Some(x), Some(arena), Some(raw)) = bufs else { return Err(TINYVAE_ERR_NULL) };
        *raw = ae.score(x, arena).map_err(code)?.raw;
        Ok(())
    })
}

/// Classifies the image `pixels` (`pixels_len` = input size, 0..=255 values) with a
/// classifier: `*class` receives the class of the largest logit (the lowest on ties), the
/// same on every target.
///
/// # Safety
/// `m` is NULL or a `tinyvae_model`; `pixels`, `arena` and `class` are NULL or point to
/// `pixels_len` bytes, `arena_len` bytes and one `uint32_t`, none overlapping another.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_classify(
    m: *const tinyvae_model,
    pixels: *const u8,
    pixels_len: usize,
    arena: *mut u8,
    arena_len: usize,
    class: *mut u32,
) -> i32 {
    outcome(|| {
        // SAFETY: the caller's promise about `m`.
        let c = Classifier::new(unsafe { model(m) }?).map_err(code)?;
        // SAFETY: the caller's promises about `pixels`, `arena` and `class`.
        let bufs = unsafe { (slice_in(pixels, pixels_len), slice_out(arena, arena_len), class.as_mut()) };
        let (Some(px), Some(arena), Some(class)) = bufs else { return Err(TINYVAE_ERR_NULL) };
        *class = c.classify_pixels(px, arena).map_err(code)?;
        Ok(())
    })
}

/// Draws z with `rng` (from the blob's learned prior when it stores one, else N(0, I); for
/// `label` where the prior has one mixture per label) and decodes it into `pixels`: the pixels
/// `tinyvae sample --seed S` gives for the same draw. `rng` advances, so successive calls
/// continue one stream.
///
/// # Safety
/// As for `tinyvae_decode`; `rng` is NULL or points to a `tinyvae_rng`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_sample(
    m: *const tinyvae_model,
    rng: *mut tinyvae_rng,
    label: i32,
    arena: *mut u8,
    arena_len: usize,
    pixels: *mut u8,
    pixels_len: usize,
) -> i32 {
    // SAFETY: the caller's promise about `rng`.
    let Some(rng) = (unsafe { rng.as_mut() }) else { return TINYVAE_ERR_NULL };
    // SAFETY: the caller's promises, passed on.
    unsafe {
        with_decoder(m, arena, arena_len, pixels, pixels_len, |d, arena, px| {
            let mut r = rng.get();
            let result = match label_of(label)? {
                Some(l) => d.sample_conditional(&mut r, l, arena, px),
                None => d.sample(&mut r, arena, px),
            };
            rng.set(&r);
            result
        })
    }
}

/// Encodes an image (`pixels_len` = input size, bytes 0..=255) into the mean and log-variance
/// of q(z|x) (`latent` values each; a deterministic encoder's log-variance is all zeros), with
/// `label` for a conditional encoder or `TINYVAE_NO_LABEL`.
///
/// # Safety
/// `m` is NULL or a `tinyvae_model`; `pixels`, `arena`, `mu` and `logvar` are NULL or point to
/// `pixels_len` bytes, `arena_len` bytes and `latent` floats each, the written ones not
/// overlapping anything else the call uses.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_encode(
    m: *const tinyvae_model,
    pixels: *const u8,
    pixels_len: usize,
    label: i32,
    arena: *mut u8,
    arena_len: usize,
    mu: *mut f32,
    logvar: *mut f32,
    latent: usize,
) -> i32 {
    outcome(|| {
        // SAFETY: the caller's promise about `m`.
        let encoder = Encoder::new(unsafe { model(m) }?).map_err(code)?;
        // SAFETY: the caller's promises about the four buffers.
        let bufs = unsafe {
            (
                slice_in(pixels, pixels_len),
                slice_out(arena, arena_len),
                slice_out(mu, latent),
                slice_out(logvar, latent),
            )
        };
        let (Some(px), Some(arena), Some(mu), Some(logvar)) = bufs else { return Err(TINYVAE_ERR_NULL) };
        match label_of(label).map_err(code)? {
            Some(l) => encoder.encode_pixels_conditional(px, l, arena, mu, logvar),
            None => encoder.encode_pixels(px, arena, mu, logvar),
        }
        .map_err(code)
    })
}

/// `z = mu + exp(logvar / 2) * eps` with `eps ~ N(0, I)` from `rng`, for `n` values: a draw
/// from q(z|x) after `tinyvae_encode`.
///
/// # Safety
/// `mu`, `logvar` are NULL or point to `n` floats, `z` to `n` writable floats; `rng` is NULL or
/// a `tinyvae_rng`.
#[no_mangle]
pub unsafe extern "C" fn tinyvae_reparametrize(
    mu: *const f32,
    logvar: *const f32,
    n: usize,
    rng: *mut tinyvae_rng,
    z: *mut f32,
) -> i32 {
    // SAFETY: the caller's promises.
    let bufs = unsafe { (slice_in(mu, n), slice_in(logvar, n), slice_out(z, n), rng.as_mut()) };
    let (Some(mu), Some(logvar), Some(z), Some(rng)) = bufs else { return TINYVAE_ERR_NULL };
    let mut r = rng.get();
    let result = Encoder::reparametrize(mu, logvar, &mut r, z);
    rng.set(&r);
    status(result)
}

/// A static, NUL-terminated English message for an error code (and for `TINYVAE_OK`).
#[no_mangle]
pub extern "C" fn tinyvae_error_message(code: i32) -> *const core::ffi::c_char {
    let text: &'static core::ffi::CStr = match code {
        TINYVAE_OK => c"ok",
        TINYVAE_ERR_NULL => c"a required pointer is NULL",
        TINYVAE_ERR_NOT_PARSED => c"the model was not filled by tinyvae_model_parse",
        TINYVAE_ERR_LENGTH => c"a buffer's length is not what the model needs",
        TINYVAE_ERR_ARENA => c"the arena is smaller than tinyvae_arena_size",
        TINYVAE_ERR_KIND => {
            c"the model is not of the kind this call needs (decoder, encoder, autoencoder or classifier)"
        }
        TINYVAE_ERR_LABEL => c"the label is out of range, given to an unconditional model, or missing",
        TINYVAE_ERR_NOT_A_BLOB => c"not a tinyvae blob (magic, length or format version)",
        TINYVAE_ERR_CORRUPT => c"the blob is truncated, padded or corrupted (length or checksum)",
        TINYVAE_ERR_INVALID => c"the blob is invalid (a header field, section, record, graph or prior)",
        TINYVAE_ERR_NOT_BUILT => c"the blob needs a feature this library was built without (f16, f32, conv)",
        _ => c"unknown tinyvae error code",
    };
    text.as_ptr()
}

#[panic_handler]
fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
    extern "C" {
        fn abort() -> !;
    }
    // SAFETY: the C library's abort takes no arguments and does not return; every C program
    // this library links into has one (newlib on bare metal, glibc on Linux).
    unsafe { abort() }
}
