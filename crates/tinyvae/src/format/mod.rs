//! The blob format: constants, record layouts and the little-endian field readers shared by
//! the parser ([`Model::parse`](crate::Model::parse)) and the writer (`format::write`, behind
//! the `alloc` feature).
//!
//! The specification follows. It is `docs/FORMAT.md` beside this crate's sources, included
//! here; the constants of this module are its numbers, and the round-trip tests keep the
//! parser and the writer in step with it.
//!
#![doc = include_str!("../../docs/FORMAT.md")]

mod crc32;
#[cfg(feature = "alloc")]
pub mod write;

pub use crc32::crc32;

use core::fmt;

/// First four bytes of every blob.
pub const MAGIC: [u8; 4] = *b"TVAE";
/// The newest format version, which this runtime reads and writes: version 2 adds shaped
/// tensors, convolutions, upsampling, residual additions and two activations; version 3 the
/// tap-major convolution weights ([`WeightLayout::TapMajor`]) that optimized kernels run from
/// flash; version 4 a decoder's learned latent prior (a Gaussian mixture, [`crate::Prior`]);
/// version 5 the autoencoder kind ([`ModelKind::Autoencoder`], x to its reconstruction);
/// version 6 the classifier kind ([`ModelKind::Classifier`], an image to class logits).
/// The writer writes the oldest version a blob's contents allow (`write::version_for`), so
/// that older firmware reads what it can.
pub const VERSION: u16 = 6;
/// Format version 5 (the autoencoder kind), still read and written.
pub const VERSION_5: u16 = 5;
/// Format version 4 (a decoder's learned latent prior), still read and written.
pub const VERSION_4: u16 = 4;
/// Format version 3 (tap-major convolution weights), still read and written.
pub const VERSION_3: u16 = 3;
/// Format version 2 (shaped tensors and convolutions with row-major weights), still read and
/// written.
pub const VERSION_2: u16 = 2;
/// The first format version (dense models only), still read and written.
pub const VERSION_1: u16 = 1;
/// Size of the fixed header.
pub const HEADER_LEN: usize = 64;
/// Byte offset where the checksummed body starts (everything after magic, version, length, CRC).
pub const CHECKSUM_START: usize = 16;
/// Alignment of sections, data arrays and arena offsets.
pub const ALIGN: usize = 16;
/// Size of one tensor record.
pub const TENSOR_RECORD_LEN: usize = 24;
/// Size of one node record.
pub const NODE_RECORD_LEN: usize = 64;
/// Size of the meta record.
pub const META_RECORD_LEN: usize = 32;
/// Marks an unused tensor slot in a node record.
pub const NO_TENSOR: u16 = u16::MAX;
/// Limits that keep every size computation far from overflow, even on 32-bit targets.
pub const MAX_TENSORS: usize = 4096;
/// See [`MAX_TENSORS`].
pub const MAX_NODES: usize = 4096;
/// Largest tensor, in elements per sample.
pub const MAX_TENSOR_LEN: usize = 1 << 22;
/// Most components of a stored latent prior (format version 4).
pub const MAX_PRIOR_COMPONENTS: usize = 256;
/// Largest latent size a stored prior may have: sampling keeps one z on the stack.
pub const MAX_PRIOR_LATENT: usize = 64;
/// The sum of a stored prior's integer component weights (format version 4).
pub const PRIOR_WEIGHT_TOTAL: u32 = 1 << 24;
/// Most graph inputs or outputs.
pub const MAX_IO: usize = 4;
/// An int8 autoencoder's input scale over its output scale must be below this (format
/// version 5): beyond it the output's range is less than 1/128 of the input's, which no
/// reconstruction of the input can be, and the score's 15-bit rescale would lose it.
pub const AUTOENCODER_MAX_SCALE_RATIO: f64 = 128.0;
/// Largest working arena, in bytes per sample.
pub const MAX_ARENA_BYTES: usize = 1 << 30;

/// Header field offsets.
pub(crate) mod hdr {
    pub const VERSION: usize = 4;
    pub const HEADER_LEN: usize = 6;
    pub const FILE_LEN: usize = 8;
    pub const CRC: usize = 12;
    pub const KIND: usize = 16;
    pub const PRECISION: usize = 17;
    pub const FLAGS: usize = 18;
    pub const ARENA_BYTES: usize = 20;
    pub const N_TENSORS: usize = 24;
    pub const N_NODES: usize = 26;
    pub const N_INPUTS: usize = 28;
    pub const N_OUTPUTS: usize = 30;
    pub const TENSORS_OFF: usize = 32;
    pub const NODES_OFF: usize = 36;
    pub const IO_OFF: usize = 40;
    pub const DATA_OFF: usize = 44;
    pub const DATA_LEN: usize = 48;
    pub const META_OFF: usize = 52;
}

/// Tensor record field offsets.
pub(crate) mod trec {
    pub const DTYPE: usize = 0;
    pub const LEN: usize = 4;
    pub const ARENA_OFF: usize = 8;
    pub const SCALE: usize = 12;
    pub const ZERO_POINT: usize = 16;
    pub const HEIGHT: usize = 20;
    pub const WIDTH: usize = 22;
}

/// Node record field offsets.
pub(crate) mod nrec {
    pub const OP: usize = 0;
    pub const ACT: usize = 1;
    pub const WDTYPE: usize = 2;
    pub const LAYOUT: usize = 3;
    pub const IN0: usize = 4;
    pub const IN1: usize = 6;
    pub const OUT: usize = 8;
    pub const GROUPS: usize = 10;
    pub const ROWS: usize = 12;
    pub const COLS: usize = 16;
    pub const W_OFF: usize = 20;
    pub const W_LEN: usize = 24;
    pub const B_OFF: usize = 28;
    pub const B_LEN: usize = 32;
    pub const Q_OFF: usize = 36;
    pub const Q_LEN: usize = 40;
    pub const ALPHA: usize = 44;
    pub const ACT_MIN: usize = 48;
    pub const ACT_MAX: usize = 52;
    /// The eight geometry bytes: kh, kw, stride_h, stride_w, dilation_h, dilation_w, pad_top,
    /// pad_left.
    pub const GEOMETRY: usize = 56;
}

/// Meta record field offsets.
pub(crate) mod mrec {
    pub const LATENT: usize = 0;
    pub const CLASSES: usize = 2;
    pub const WIDTH: usize = 4;
    pub const HEIGHT: usize = 6;
    pub const OUTPUT_KIND: usize = 8;
    pub const HEAD: usize = 9;
    /// Version 4: components of the stored prior (0: none), its section's offset and length.
    pub const PRIOR_COMPONENTS: usize = 10;
    pub const PRIOR_OFF: usize = 12;
    pub const PRIOR_LEN: usize = 16;
}

macro_rules! code_enum {
    ($(#[$m:meta])* $name:ident { $($(#[$vm:meta])* $var:ident = $val:expr => $text:expr),+ $(,)? }) => {
        $(#[$m])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u8)]
        pub enum $name { $($(#[$vm])* $var = $val),+ }
        impl $name {
            /// Decodes the on-disk byte, or `None` for an unknown code.
            pub const fn from_code(code: u8) -> Option<Self> {
                match code { $($val => Some($name::$var),)+ _ => None }
            }
            /// The on-disk byte.
            pub const fn code(self) -> u8 { self as u8 }
            /// Lower-case name, as printed by `tinyvae inspect`.
            pub const fn name(self) -> &'static str {
                match self { $($name::$var => $text),+ }
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.name()) }
        }
    };
}

code_enum!(
    /// What the graph computes, which decides the high-level API that accepts it.
    ModelKind {
        /// Any graph; run it through [`crate::Model`] directly.
        Generic = 0 => "generic model",
        /// Takes z (and optionally a label), gives pixels.
        Decoder = 1 => "decoder",
        /// Takes pixels, gives mu and log-variance.
        Encoder = 2 => "encoder",
        /// Takes a feature vector, gives its reconstruction (same length): an anomaly detector
        /// scores the difference (format version 5).
        Autoencoder = 3 => "autoencoder",
        /// Takes an image (or any feature vector), gives one logit per class (format version
        /// 6): [`crate::Classifier`] returns the class of the largest.
        Classifier = 4 => "classifier",
    }
);

code_enum!(
    /// Numeric precision of a blob's weights and activations.
    Precision {
        /// f32 weights and activations: the reference.
        F32 = 0 => "f32",
        /// f16 weights, f32 activations and accumulation.
        F16 = 1 => "f16",
        /// int8 weights (symmetric, per output channel), int8 activations (asymmetric, per
        /// tensor), int32 bias, fixed-point requantization.
        Int8 = 2 => "int8",
    }
);

code_enum!(
    /// Element type of a tensor or weight array.
    DType {
        /// 32-bit float.
        F32 = 0 => "f32",
        /// 16-bit float (weights only).
        F16 = 1 => "f16",
        /// Signed 8-bit integer with a scale and zero point.
        I8 = 2 => "i8",
    }
);

impl DType {
    /// Bytes per element.
    pub const fn size(self) -> usize {
        match self {
            DType::F32 => 4,
            DType::F16 => 2,
            DType::I8 => 1,
        }
    }
}

code_enum!(
    /// Operation of a node.
    OpCode {
        /// Fully connected layer, `y = W x + b` (ONNX Gemm with transB).
        Dense = 1 => "dense",
        /// int8 elementwise function through a 256-entry table.
        Lut = 2 => "lut",
        /// f32 elementwise activation.
        Activation = 3 => "activation",
        /// Concatenation of two vectors (z and a condition).
        Concat = 4 => "concat",
        /// 2-D convolution (grouped and depthwise too), NCHW (format version 2).
        Conv = 5 => "conv",
        /// 2-D transposed convolution (format version 2).
        ConvTranspose = 6 => "conv_transpose",
        /// Nearest-neighbour upsampling by integer factors (format version 2).
        Upsample = 7 => "upsample",
        /// Elementwise sum of two tensors: residual connections (format version 2).
        Add = 8 => "add",
    }
);

code_enum!(
    /// Elementwise activation. On int8 graphs ReLU folds into the Dense clamp and the others
    /// become lookup tables; on float graphs they run as written.
    ActKind {
        /// Identity.
        None = 0 => "none",
        /// max(x, 0).
        Relu = 1 => "relu",
        /// x if x >= 0 else alpha * x.
        LeakyRelu = 2 => "leaky_relu",
        /// 1 / (1 + e^-x).
        Sigmoid = 3 => "sigmoid",
        /// tanh(x).
        Tanh = 4 => "tanh",
        /// x * sigmoid(x), also called swish (format version 2).
        Silu = 5 => "silu",
        /// x * clamp(x + 3, 0, 6) / 6 (format version 2).
        HardSwish = 6 => "hardswish",
    }
);

code_enum!(
    /// How a node's weights are laid out in the blob (see [`crate::kernels::conv_layout`]).
    WeightLayout {
        /// `rows x cols`, row-major: output channel by output channel; a convolution's row is
        /// `[C_in / groups][kh][kw]`.
        RowMajor = 0 => "row-major",
        /// Convolutions only (format version 3): a convolution's row is `[kh][kw][C_in /
        /// groups]`, a transposed convolution's weights are phase blocks of rows
        /// `[ty][tx][C_in]`, with int8 biases and weight sums per phase.
        TapMajor = 1 => "tap-major",
    }
);

code_enum!(
    /// What a decoder's output means.
    OutputKind {
        /// Unspecified values.
        Raw = 0 => "raw",
        /// Bernoulli means in [0, 1]: pixel intensities.
        Bernoulli = 1 => "bernoulli",
        /// Gaussian means (pixel intensities, may leave [0, 1]).
        Gaussian = 2 => "gaussian",
    }
);

code_enum!(
    /// How an encoder's outputs carry mu and log-variance.
    EncoderHead {
        /// Not an encoder.
        None = 0 => "none",
        /// One output of `2 * latent` values: mu then log-variance (heads fused into one Dense).
        Fused = 1 => "fused",
        /// Two outputs: mu, then log-variance.
        Separate = 2 => "separate",
        /// One output of `latent` values: z itself (autoencoders; a Gaussian of zero variance).
        Deterministic = 3 => "deterministic",
    }
);

/// Reads a little-endian `u16` at `off`; `None` past the end. `const` so firmware can read the
/// arena size at compile time.
pub const fn read_u16(b: &[u8], off: usize) -> Option<u16> {
    // Checked slicing (no index panics: the C API links no panic path through the readers).
    match b.split_at_checked(off) {
        Some((_, rest)) => match rest.first_chunk::<2>() {
            Some(bytes) => Some(u16::from_le_bytes(*bytes)),
            None => None,
        },
        None => None,
    }
}

/// Reads a little-endian `u32` at `off`; `None` past the end.
pub const fn read_u32(b: &[u8], off: usize) -> Option<u32> {
    match b.split_at_checked(off) {
        Some((_, rest)) => match rest.first_chunk::<4>() {
            Some(bytes) => Some(u32::from_le_bytes(*bytes)),
            None => None,
        },
        None => None,
    }
}

/// Reads a little-endian `i32` at `off`; `None` past the end.
pub const fn read_i32(b: &[u8], off: usize) -> Option<i32> {
    match read_u32(b, off) {
        Some(v) => Some(v as i32),
        None => None,
    }
}

/// Reads a little-endian `f32` at `off`; `None` past the end.
pub fn read_f32(b: &[u8], off: usize) -> Option<f32> {
    read_u32(b, off).map(f32::from_bits)
}

/// Arena bytes needed for one sample, read from a blob's header in a `const` context.
///
/// Checks the magic and version only; [`crate::Model::parse`] still validates the whole blob
/// at run time. The figure includes [`ALIGN`] bytes of slack so that any buffer address works.
pub const fn arena_size_of(blob: &[u8]) -> Option<usize> {
    if blob.len() < HEADER_LEN
        || blob[0] != MAGIC[0]
        || blob[1] != MAGIC[1]
        || blob[2] != MAGIC[2]
        || blob[3] != MAGIC[3]
    {
        return None;
    }
    match (read_u16(blob, hdr::VERSION), read_u32(blob, hdr::ARENA_BYTES)) {
        // Checked: on a 32-bit target a hostile `u32::MAX` would wrap to a tiny arena.
        (Some(VERSION_1 | VERSION_2 | VERSION_3 | VERSION_4 | VERSION_5 | VERSION), Some(bytes)) => {
            (bytes as usize).checked_add(ALIGN)
        }
        _ => None,
    }
}

/// The geometry of a convolution node (format version 2): kernel size, strides, dilations,
/// the top and left padding, and the number of groups. Bytes 56..64 and 10..12 of a node
/// record; see the format specification above for what each op makes of them.
///
/// The bottom and right padding are not stored: the output tensor's height and width decide
/// them (and, for a transposed convolution, ONNX's `output_padding`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct ConvGeometry {
    /// Kernel height.
    pub kh: u8,
    /// Kernel width.
    pub kw: u8,
    /// Vertical stride (Upsample: the vertical factor).
    pub stride_h: u8,
    /// Horizontal stride (Upsample: the horizontal factor).
    pub stride_w: u8,
    /// Vertical dilation (1 for an ordinary convolution).
    pub dilation_h: u8,
    /// Horizontal dilation.
    pub dilation_w: u8,
    /// Rows of implicit padding above the input (Conv), or cropped from the top of the full
    /// output (ConvTranspose).
    pub pad_top: u8,
    /// Columns of padding left of the input (Conv), or cropped from the left (ConvTranspose).
    pub pad_left: u8,
    /// Groups: input and output channels split into this many independent convolutions
    /// (1 ordinary, channels for depthwise). Conv only; ConvTranspose takes 1.
    pub groups: u16,
}

impl ConvGeometry {
    /// An ordinary convolution: square `kernel`, `stride`, square `pad`, no dilation, one group.
    pub const fn square(kernel: u8, stride: u8, pad: u8) -> Self {
        ConvGeometry {
            kh: kernel,
            kw: kernel,
            stride_h: stride,
            stride_w: stride,
            dilation_h: 1,
            dilation_w: 1,
            pad_top: pad,
            pad_left: pad,
            groups: 1,
        }
    }

    /// The geometry bytes as stored at node offset 56 (the groups are at offset 10).
    pub const fn to_bytes(self) -> [u8; 8] {
        [self.kh, self.kw, self.stride_h, self.stride_w, self.dilation_h, self.dilation_w, self.pad_top, self.pad_left]
    }

    /// From the eight geometry bytes and the groups field.
    pub const fn from_bytes(b: [u8; 8], groups: u16) -> Self {
        ConvGeometry {
            kh: b[0],
            kw: b[1],
            stride_h: b[2],
            stride_w: b[3],
            dilation_h: b[4],
            dilation_w: b[5],
            pad_top: b[6],
            pad_left: b[7],
            groups,
        }
    }

    /// All fields zero: what every node but a convolution or an upsampling stores.
    pub const fn is_zero(&self) -> bool {
        u64::from_le_bytes(self.to_bytes()) == 0 && self.groups == 0
    }
}

/// Rounds `n` up to a multiple of [`ALIGN`].
pub const fn align_up(n: usize) -> usize {
    (n + ALIGN - 1) & !(ALIGN - 1)
}
