//! The registration table: which function imports each ONNX op type.
//!
//! One module per op family, as tract-onnx registers its ops: `nn` (Gemm, MatMul,
//! activations), `conv` (Conv, ConvTranspose, BatchNormalization, Resize/Upsample), `math`
//! (Add, Mul) and `array` (layout, shape arithmetic, constants). Each exposes
//! `OPS`, a static slice of [`OpDef`]; [`FAMILIES`] chains them. Importing a new op type is one
//! `OpDef` entry in its family's `OPS` plus the `Importer` method it names.
//!
//! The table is also the menu the unsupported-op error quotes ([`SupportedOps`]): a list kept
//! by hand next to it would drift.

mod array;
mod conv;
mod math;
mod nn;

use std::fmt;

use super::{Importer, NodeResult};
use crate::onnx::proto as pb;

/// Imports one node: reads its inputs from the value table and records its outputs there (as
/// IR nodes, aliases or folded constants). `name` is the node's name in the IR; an `Err` is
/// what is wrong, which the walker attributes to the node.
type Handler = fn(&mut Importer, &pb::NodeProto, &str) -> NodeResult;

/// One registered ONNX op type (default domain).
pub(super) struct OpDef {
    /// ONNX op type.
    op_type: &'static str,
    /// Which uses of the op are imported, when not all are; shown after the op type in the
    /// menu. Neighbouring entries with the same scope are listed together (`Split/Slice (...)`).
    scope: Option<&'static str>,
    /// The handler.
    pub(super) import: Handler,
}

impl OpDef {
    const fn new(op_type: &'static str, import: Handler) -> OpDef {
        OpDef { op_type, scope: None, import }
    }

    const fn scope(self, scope: &'static str) -> OpDef {
        OpDef { scope: Some(scope), ..self }
    }
}

/// Every family's table, in the order the menu lists them.
const FAMILIES: [&[OpDef]; 4] = [nn::OPS, conv::OPS, math::OPS, array::OPS];

fn all() -> impl Iterator<Item = &'static OpDef> {
    FAMILIES.into_iter().flatten()
}

/// The entry importing `op_type`, if one does.
pub(super) fn find(op_type: &str) -> Option<&'static OpDef> {
    all().find(|d| d.op_type == op_type)
}

/// The ONNX ops the importer accepts, read off the registration table.
///
/// `Display` writes the menu that the unsupported-op error quotes, each op with the uses of it
/// that are imported when not all are: `Gemm, MatMul, ..., Add (a constant bias after
/// Gemm/MatMul), ...`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SupportedOps;

impl SupportedOps {
    /// The op types, in table order.
    pub fn op_types(self) -> impl Iterator<Item = &'static str> {
        all().map(|d| d.op_type)
    }
}

impl fmt::Display for SupportedOps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut groups: Vec<(Vec<&str>, Option<&str>)> = Vec::new();
        for d in all() {
            match groups.last_mut() {
                Some((names, scope)) if scope.is_some() && *scope == d.scope => names.push(d.op_type),
                _ => groups.push((vec![d.op_type], d.scope)),
            }
        }
        for (k, (names, scope)) in groups.iter().enumerate() {
            let sep = match k {
                0 => "",
                _ if k + 1 == groups.len() => ", and ",
                _ => ", ",
            };
            write!(f, "{sep}{}", names.join("/"))?;
            if let Some(s) = scope {
                write!(f, " ({s})")?;
            }
        }
        Ok(())
    }
}

// ---- node attributes, for the handlers --------------------------------------------------

fn attr<'n>(n: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    n.attribute.iter().find(|a| a.name == name)
}

fn attr_i(n: &pb::NodeProto, name: &str, default: i64) -> i64 {
    attr(n, name).map_or(default, |a| a.i)
}

fn attr_f(n: &pb::NodeProto, name: &str, default: f32) -> f32 {
    attr(n, name).map_or(default, |a| a.f)
}

fn attr_ints(n: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(n, name).map(|a| a.ints.clone())
}

fn attr_s(n: &pb::NodeProto, name: &str, default: &'static str) -> String {
    attr(n, name).map_or(default.to_string(), |a| String::from_utf8_lossy(&a.s).into_owned())
}

/// Normalizes a possibly negative ONNX axis against `rank`.
fn norm_axis(axis: i64, rank: usize) -> Result<usize, String> {
    let r = rank as i64;
    let a = if axis < 0 { axis + r } else { axis };
    if (0..r).contains(&a) {
        Ok(a as usize)
    } else {
        Err(format!("axis {axis} is out of range for rank {rank}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_op_type_is_registered_once() {
        let mut seen = std::collections::HashSet::new();
        for t in SupportedOps.op_types() {
            assert!(seen.insert(t), "`{t}` is registered twice: the second entry would never run");
        }
    }

    #[test]
    fn the_menu_lists_every_registered_op() {
        let menu = SupportedOps.to_string();
        for t in SupportedOps.op_types() {
            assert!(menu.contains(t), "{t} missing from: {menu}");
        }
        assert!(menu.starts_with("Gemm, MatMul, "), "{menu}");
        assert!(menu.contains("Split/Slice (features of a Gemm/MatMul output)"), "{menu}");
        assert!(menu.ends_with(", and Shape/Gather (batch-size arithmetic)"), "{menu}");
    }
}
