//! ONNX interchange for the float IR: import what tinyvae's trainer and `torch.onnx.export`
//! write for MLP autoencoders, and export the IR back to a plain opset-13 model that tract and
//! onnxruntime both load.
//!
//! Import is deliberately lenient about how an exporter spells a linear layer (Gemm, or
//! MatMul then Add, with weights from initializers or Constant nodes, behind Flatten/Reshape/
//! Identity/Dropout) and strict about everything else: any op the IR cannot represent is an
//! error naming the op and the node, so the user knows what to change in their model.

mod export;
mod import;
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto;

pub use export::{export, export_file, to_model_proto, ExportError};
pub use import::{
    import_bytes, import_bytes_in, import_file, import_proto, import_proto_in, ImportError, SupportedOps,
};

/// Metadata key holding the role: "decoder", "encoder" or "generic".
pub const META_ROLE: &str = "tinyvae.role";
/// Metadata key holding the latent size.
pub const META_LATENT: &str = "tinyvae.latent";
/// Metadata key holding the number of label classes (0: unconditional).
pub const META_CLASSES: &str = "tinyvae.classes";
/// Metadata key holding the decoder likelihood: "bernoulli" or "gaussian".
pub const META_OUTPUT: &str = "tinyvae.output";
