//! Arithmetic between values: Add, which the IR has only as the bias of a linear layer.

use ndarray::Array1;

use super::OpDef;
use crate::ir::Op;
use crate::onnx::import::{Importer, NodeResult, Val};
use crate::onnx::proto as pb;

pub(super) const OPS: &[OpDef] = &[OpDef::new("Add", Importer::add).scope("a constant bias after Gemm/MatMul")];

impl Importer {
    /// Only a constant bias after a Gemm/MatMul: folded into that Dense.
    fn add(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (a, b) = (self.need(n, 0)?, self.need(n, 1)?);
        let (k_act, c) = match (a, b) {
            (Val::Act { .. }, Val::Const(c)) => (0, c.clone()),
            (Val::Const(c), Val::Act { .. }) => (1, c.clone()),
            (Val::Act { .. }, Val::Act { .. }) => {
                return Err("adding two computed values (e.g. a residual connection) is not supported".into())
            }
            (Val::Const(_), Val::Const(_)) => return Err("adding two constants is not supported".into()),
        };
        let (ir, _) = self.vec_act(n, k_act)?;
        let onnx_in = n.input[k_act].clone();
        let Some((idx, weight, bias)) = self.dense_of(&ir).map(|(i, w, b)| (i, w.clone(), b.clone())) else {
            return Err(format!(
                "tinyvae only supports Add as the bias of the Gemm/MatMul that computes its other input, and `{onnx_in}` is not computed by one"
            ));
        };
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
