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
    println!("{}: tinyvae blob v{}, checksum ok", a.blob.display(), m.version());
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
    if m.kind() == tinyvae::ModelKind::Decoder {
        match m.prior() {
            Some(p) => println!(
                "  prior       stored Gaussian mixture: {} components, full covariance, {} bytes",
                p.components(),
                tinyvae::Prior::section_len(p.components(), p.latent_dim()).unwrap_or(0)
            ),
            None => println!("  prior       N(0, I) (none stored)"),
        }
    }
    println!("  blob        {} bytes, of which {} weights/biases/tables", bytes.len(), m.weight_bytes());
    println!(
        "  arena       {} bytes per sample (batch B: {} * B + {})",
        m.arena_size(),
        m.arena_size() - tinyvae::format::ALIGN,
        tinyvae::format::ALIGN
    );
    let transposed = (0..m.node_count()).any(|i| m.node(i).is_some_and(|n| n.op == Op::ConvTranspose));
    let note = if transposed { " (as executed: a transposed convolution's real taps only)" } else { "" };
    println!("  MACs        {} per sample{note}", m.macs());
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
        let shape = match info.shape() {
            Some(_) => format!("{}x{}x{}", info.channels(), info.height, info.width),
            None => info.len.to_string(),
        };
        println!("    t{t:<3} {:>4} x {shape:<9} @ arena {:>6}{quant}{role}", info.dtype, info.arena_offset);
    }
    println!("  nodes:                                                   MACs   weight bytes");
    for i in 0..m.node_count() {
        let Some(n) = m.node(i) else { continue };
        let act = match (n.act, n.weight_dtype) {
            (tinyvae::format::ActKind::Relu, DType::I8) => " +relu (clamp)",
            (tinyvae::format::ActKind::Relu, _) => " +relu",
            _ => "",
        };
        let g = n.geometry;
        let what = match n.op {
            Op::Dense => format!("dense {}x{} {} weights ({}){act}", n.rows, n.cols, n.weight_dtype, n.layout),
            Op::Conv | Op::ConvTranspose => {
                let name = if n.op == Op::Conv { "conv" } else { "convT" };
                let mut s = format!("{name} {}x{} s{}", g.kh, g.kw, g.stride_h);
                if g.stride_w != g.stride_h {
                    s += &format!("x{}", g.stride_w);
                }
                if g.pad_top > 0 || g.pad_left > 0 {
                    s += &format!(" p{},{}", g.pad_top, g.pad_left);
                }
                if g.dilation_h > 1 || g.dilation_w > 1 {
                    s += &format!(" d{}x{}", g.dilation_h, g.dilation_w);
                }
                if g.groups > 1 {
                    s += &format!(" g{}", g.groups);
                }
                format!("{s} {} ({}){act}", n.weight_dtype, n.layout)
            }
            Op::Upsample => format!("upsample x{}x{}", g.stride_h, g.stride_w),
            Op::Add => "add".to_string(),
            Op::Lut => "lut (256-entry table)".to_string(),
            Op::Activation => format!("{}", n.act),
            Op::Concat => "concat".to_string(),
        };
        let ins = match n.input2 {
            Some(b) => format!("t{}, t{b}", n.input),
            None => format!("t{}", n.input),
        };
        let macs = m.node_macs(i).unwrap_or(0);
        let bytes = n.weights.len() + n.bias.len() + n.aux.len();
        let flow = format!("{ins} -> t{}", n.output);
        println!("    n{i:<3} {what:<34} {flow:<16} {macs:>9} {bytes:>10}");
    }
    Ok(ExitCode::SUCCESS)
}
