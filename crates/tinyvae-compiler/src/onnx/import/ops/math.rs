//! Arithmetic between values: Add (a constant bias folded into the linear layer before it, or
//! the sum of two computed values, as residual connections need) and Mul (as the product of a
//! value and its own sigmoid or hard sigmoid: SiLU and hard swish).

use ndarray::Array1;

use super::OpDef;
use crate::ir::Op;
use crate::onnx::import::{Importer, NodeResult, Val};
use crate::onnx::proto as pb;

pub(super) const OPS: &[OpDef] = &[
    OpDef::new("Add", Importer::add).scope("of two computed values, or a constant bias after Gemm/MatMul"),
    OpDef::new("Mul", Importer::mul).scope("x * Sigmoid(x) or x * HardSigmoid(x)"),
];

impl Importer {
    /// The sum of two computed values of the same shape (no broadcasting).
    fn add_values(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let ((a, da), (b, db)) = (self.act(n, 0)?, self.act(n, 1)?);
        if da != db && (da.iter().product::<usize>() != db.iter().product::<usize>() || da.len() > 1 && db.len() > 1) {
            return Err(format!(
                "adds per-sample shapes {da:?} and {db:?}; tinyvae adds values of the same shape (no broadcasting)"
            ));
        }
        let dims = if da.len() >= db.len() { da } else { db };
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Add, vec![a, b], &out, dims);
        Ok(())
    }

    /// `x * sigmoid(x)` (SiLU, as torch exports `nn.SiLU`) or `x * HardSigmoid(x)` (hard swish).
    fn mul(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let refuse =
            || "tinyvae imports Mul only as x * Sigmoid(x) (SiLU) or x * HardSigmoid(x) (hard swish)".to_string();
        // The gate is looked up before the operands are read: a HardSigmoid gate is no value of
        // its own (reading it anywhere else is an error), only this pattern completes it.
        let gate_of = |imp: &Self, k: usize| -> Option<(String, Op)> {
            let onnx = Self::input_name(n, k)?;
            if let Some(x) = imp.hard_gates.get(onnx) {
                return Some((x.clone(), Op::HardSwish));
            }
            let Some(Val::Act { ir, .. }) = imp.vals.get(onnx) else { return None };
            let &idx = imp.producer.get(ir)?;
            let node = &imp.nodes[idx];
            (node.op == Op::Sigmoid).then(|| (node.inputs[0].clone(), Op::Silu))
        };
        for (g, k) in [(1, 0), (0, 1)] {
            let Some((gated, op)) = gate_of(self, g) else { continue };
            let Ok((x, dims)) = self.act(n, k) else { continue };
            if x == gated {
                let out = Self::out(n, 0)?.to_string();
                self.emit(name, op, vec![x], &out, dims);
                return Ok(());
            }
        }
        // Not the pattern: a problem reading an operand (a HardSigmoid gate of another value, a
        // missing input) says more than the generic refusal.
        self.need(n, 0)?;
        self.need(n, 1)?;
        Err(refuse())
    }

    /// Only a constant bias after a Gemm/MatMul: folded into that Dense.
    fn add(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (a, b) = (self.need(n, 0)?, self.need(n, 1)?);
        let (k_act, c) = match (a, b) {
            (Val::Act { .. }, Val::Const(c)) => (0, c.clone()),
            (Val::Const(c), Val::Act { .. }) => (1, c.clone()),
            (Val::Act { .. }, Val::Act { .. }) => return self.add_values(n, name),
            (Val::Const(_), Val::Const(_)) => return Err("adding two constants is not supported".into()),
        };
        // Whether the other operand comes from a Gemm/MatMul is the question here; its shape
        // only matters once it does (a Flatten-less image would otherwise be blamed first).
        let (ir, _) = self.act(n, k_act)?;
        let onnx_in = n.input[k_act].clone();
        let Some((idx, weight, bias)) = self.dense_of(&ir).map(|(i, w, b)| (i, w.clone(), b.clone())) else {
            return Err(format!(
                "adds the constant `{}`; tinyvae only supports that as the bias of the Gemm/MatMul that computes its \
                 other input, and `{onnx_in}` is not computed by one",
                n.input[1 - k_act]
            ));
        };
        self.vec_act(n, k_act)?;
        let c = c.bias_vector(bias.len()).map_err(|e| format!("the constant operand: {e}"))?;
        let bias = bias + &Array1::from(c);
        let out = Self::out(n, 0)?.to_string();
        let dims = vec![bias.len()];
        if onnx_in == ir && self.uses(&onnx_in) == 1 {
            // The Dense output feeds nothing else, so fold in place and let the Dense take
            // the Add's output name.
            let node = &mut self.nodes[idx];
            node.op = Op::Dense { weight, bias };
            node.output = out.clone();
            self.producer.remove(&ir);
            self.producer.insert(out.clone(), idx);
            self.vals.insert(out.clone(), Val::Act { ir: out, dims });
        } else {
            // Something else also reads the bias-free product: keep it and add a biased copy.
            let input = self.nodes[idx].inputs.clone();
            self.emit(name, Op::Dense { weight, bias }, input, &out, dims);
        }
        Ok(())
    }
}
