//! `tinyvae inspect BLOB.tvae`: what is in a blob and what it will cost on a device.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Result;
use tinyvae::{DType, Model, Op};

use crate::util;

#[derive(clap::Args, Debug)]
pub struct Args {
    /// Blob to describe.
    pub blob: PathBuf,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let bytes = util::read_blob(&a.blob)?;
    let m = Model::parse(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", a.blob.display()))?;
    let meta = m.meta();
    println!("{}: tinyvae blob v{}, checksum ok", a.blob.display(), tinyvae::format::VERSION);
    println!("  kind        {} ({})", m.kind(), m.precision());
    println!(
        "  latent      {}{}",
        meta.latent,
        if meta.classes > 0 { format!(", {} label classes", meta.classes) } else { String::new() }
    );
    if meta.width * meta.height > 0 {
        println!("  image       {} x {} ({})", meta.width, meta.height, meta.output_kind);
    }
    if m.kind() == tinyvae::ModelKind::Encoder {
        println!("  heads       {}", meta.head);
    }
    println!("  blob        {} bytes, of which {} weights/biases/tables", bytes.len(), m.weight_bytes());
    println!(
        "  arena       {} bytes per sample (batch B: {} * B + {})",
        m.arena_size(),
        m.arena_size() - tinyvae::format::ALIGN,
        tinyvae::format::ALIGN
    );
    println!("  MACs        {} per sample", m.macs());
    println!("  tensors:");
    for t in 0..m.tensor_count() as u16 {
        let Some(info) = m.tensor(t) else { continue };
        let role = if (0..m.input_count()).any(|k| m.input(k) == Some(info)) {
            " input"
        } else if (0..m.output_count()).any(|k| m.output(k) == Some(info)) {
            " output"
        } else {
            ""
        };
        let quant = if info.dtype == DType::I8 {
            format!("  scale {:.6e} zp {:4}", info.scale, info.zero_point)
        } else {
            String::new()
        };
        println!("    t{t:<3} {:>4} x {:<5} @ arena {:>6}{quant}{role}", info.dtype, info.len, info.arena_offset);
    }
    println!("  nodes:");
    for i in 0..m.node_count() {
        let Some(n) = m.node(i) else { continue };
        let what = match n.op {
            Op::Dense => {
                let act = match (n.act, n.weight_dtype) {
                    (tinyvae::format::ActKind::Relu, DType::I8) => " +relu (clamp)",
                    (tinyvae::format::ActKind::Relu, _) => " +relu",
                    _ => "",
                };
                format!("dense {}x{} {} weights ({}){act}", n.rows, n.cols, n.weight_dtype, n.layout)
            }
            Op::Lut => "lut (256-entry table)".to_string(),
            Op::Activation => format!("{}", n.act),
            Op::Concat => "concat".to_string(),
        };
        let ins = match n.input2 {
            Some(b) => format!("t{}, t{b}", n.input),
            None => format!("t{}", n.input),
        };
        println!("    n{i:<3} {what:<44} {ins} -> t{}", n.output);
    }
    Ok(ExitCode::SUCCESS)
}
