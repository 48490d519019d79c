//! Why quantizing a graph failed: one error type for every pass, naming the node or value at
//! fault.

use crate::ir::{Chw, GraphError};

/// Why a graph could not be quantized; names the node or value at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuantizeError {
    /// The float graph is inconsistent.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// An encoder whose outputs are neither (mu, logvar) nor z.
    #[error("an encoder has outputs mu and logvar; this graph has {outputs}")]
    EncoderOutputs {
        /// Graph outputs.
        outputs: usize,
    },
    /// The encoder's two heads could not be joined into one Dense.
    #[error("cannot fuse the heads `{mu}` and `{logvar}`")]
    FuseHeads {
        /// Node computing mu.
        mu: String,
        /// Node computing the log-variance.
        logvar: String,
        /// ndarray's error.
        #[source]
        source: ndarray::ShapeError,
    },
    /// A Concat of other than two values.
    #[error("node `{node}` (Concat) has {inputs} inputs; the runtime concatenates exactly two (z and a condition)")]
    ConcatArity {
        /// Node name.
        node: String,
        /// Its inputs.
        inputs: usize,
    },
    /// An int8 Concat joining a value whose quantization is fixed by its op or its other
    /// readers, so that it cannot take the Concat's.
    #[error(
        "node `{node}` (Concat) joins `{value}`, whose int8 parameters are fixed elsewhere; int8 Concat joins graph \
         inputs and outputs of Dense, Conv or Add nodes read only by it"
    )]
    ConcatOfComputed {
        /// Node name.
        node: String,
        /// The computed value.
        value: String,
    },
    /// int8 asked for without calibration ranges.
    #[error("int8 quantization needs calibration ranges")]
    NeedsCalibration,
    /// A value the calibration has no range for.
    #[error("no calibration range for value `{value}`")]
    NoRange {
        /// Value name.
        value: String,
    },
    /// A value whose calibration range is not finite (the graph overflows f32 on the
    /// calibration inputs, e.g. from huge weights): no int8 scale covers it.
    #[error("value `{value}` ranges over [{lo}, {hi}] on the calibration inputs; int8 needs a finite range")]
    NonFiniteRange {
        /// Value name.
        value: String,
        /// Smallest value seen.
        lo: f32,
        /// Largest value seen.
        hi: f32,
    },
    /// A value read or listed as an output that no node computes.
    #[error("value `{value}` is never computed")]
    Uncomputed {
        /// Value name.
        value: String,
    },
    /// A graph with no node left to run (an ONNX model of only reshapes, say): a blob holds at
    /// least one.
    #[error("the graph computes nothing: its outputs are its inputs, and a blob needs at least one node")]
    NoNodes,
    /// More tensors, nodes, inputs, outputs or arena bytes than a blob can hold.
    #[error("the model needs {value} {what}; the runtime's limit is {limit}")]
    ExceedsLimit {
        /// What is counted ("tensors", "nodes", "graph inputs", ...).
        what: &'static str,
        /// How many the model needs.
        value: usize,
        /// The runtime's limit.
        limit: usize,
    },
    /// A node lowered as an activation whose op is none.
    #[error("node `{node}`: {op} is not an activation")]
    NotAnActivation {
        /// Node name.
        node: String,
        /// Its op.
        op: &'static str,
    },
    /// A NaN or infinite weight or bias.
    #[error("node `{node}`: output channel {channel} has a non-finite weight or bias")]
    NonFinite {
        /// Node name.
        node: String,
        /// Output channel (weight row).
        channel: usize,
    },
    /// A bias too large for int32 at the input's scale.
    #[error("node `{node}`: bias of output channel {channel} overflows int32 at this input scale")]
    BiasOverflow {
        /// Node name.
        node: String,
        /// Output channel.
        channel: usize,
    },
    /// A requantization multiplier the fixed-point scheme cannot represent.
    #[error("node `{node}`: requantization scale of channel {channel} is out of range")]
    RequantScale {
        /// Node name.
        node: String,
        /// Output channel.
        channel: usize,
    },
    /// A size the blob's 16-bit metadata fields cannot hold.
    #[error("{what} {value} is too large")]
    TooLarge {
        /// "latent size" or "class count".
        what: &'static str,
        /// The size.
        value: usize,
    },
    /// A convolution whose tensors' shapes or arrays do not fit its geometry (the importer's
    /// shape checks make this unreachable for imported graphs).
    #[error("node `{node}`: its {what} do not fit its convolution geometry")]
    ConvShape {
        /// Node name.
        node: String,
        /// "input/output shapes" or "weights".
        what: &'static str,
    },
    /// A convolution parameter the blob's one-byte fields cannot hold.
    #[error("node `{node}`: {what} {value} is larger than the runtime supports (255)")]
    Geometry {
        /// Node name.
        node: String,
        /// Which parameter.
        what: &'static str,
        /// Its value.
        value: usize,
    },
    /// A value that two spatial ops read as different images.
    #[error("node `{node}` reads `{value}` as {b:?}, but it is also {a:?}; one tensor has one shape")]
    ShapeConflict {
        /// Node name.
        node: String,
        /// The value.
        value: String,
        /// The shape seen first.
        a: Chw,
        /// The shape this node needs.
        b: Chw,
    },
    /// The blob written does not parse: a bug in the quantizer.
    #[error("internal error: the blob written does not parse")]
    BlobRejected(#[source] tinyvae::Error),
}
