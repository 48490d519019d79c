//! Neural-network ops: the linear layers (Gemm, MatMul) that become Dense nodes, and the
//! elementwise activations.

use ndarray::{Array1, Array2};

use super::{attr_f, attr_i, OpDef};
use crate::ir::Op;
use crate::onnx::import::{Importer, NodeResult};
use crate::onnx::proto as pb;

pub(super) const OPS: &[OpDef] = &[
    OpDef::new("Gemm", Importer::gemm),
    OpDef::new("MatMul", Importer::matmul),
    OpDef::new("Relu", Importer::relu),
    OpDef::new("LeakyRelu", Importer::leaky_relu),
    OpDef::new("Sigmoid", Importer::sigmoid),
    OpDef::new("Tanh", Importer::tanh),
    OpDef::new("HardSwish", Importer::hard_swish),
    OpDef::new("Swish", Importer::swish).scope("alpha 1, i.e. SiLU"),
    OpDef::new("HardSigmoid", Importer::hard_sigmoid).scope("as the gate of x * HardSigmoid(x), hard swish"),
];

impl Importer {
    fn gemm(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        if attr_i(n, "transA", 0) != 0 {
            return Err("transA=1 is not supported: the activation must be the first, untransposed operand".into());
        }
        let trans_b = attr_i(n, "transB", 0);
        if trans_b != 0 && trans_b != 1 {
            return Err(format!("transB={trans_b} is not 0 or 1"));
        }
        let alpha = attr_f(n, "alpha", 1.0);
        let beta = attr_f(n, "beta", 1.0);
        let (x, features) = self.vec_act(n, 0)?;
        let b = self.need_konst(n, 1, "weight B")?;
        if b.dims.len() != 2 {
            return Err(format!("weight B has shape {:?}; Gemm needs a matrix", b.dims));
        }
        let bv = b.floats().map_err(|e| format!("weight B {e}"))?;
        let (rows, cols) = (b.dims[0], b.dims[1]);
        let (outs, ins) = if trans_b == 1 { (rows, cols) } else { (cols, rows) };
        if ins != features {
            return Err(format!(
                "weight B has shape {:?} (transB={trans_b}), so it takes {ins} features, but input `{}` has {features}",
                b.dims, n.input[0]
            ));
        }
        let weight = if trans_b == 1 {
            Array2::from_shape_fn((outs, ins), |(o, i)| alpha * bv[o * cols + i])
        } else {
            Array2::from_shape_fn((outs, ins), |(o, i)| alpha * bv[i * cols + o])
        };
        let bias = match self.konst(n, 2, "bias C")? {
            Some(c) => c.bias_vector(outs)?.into_iter().map(|v| beta * v).collect(),
            None => vec![0.0; outs],
        };
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Dense { weight, bias: Array1::from(bias) }, vec![x], &out, vec![outs]);
        Ok(())
    }

    fn matmul(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let (x, features) = self.vec_act(n, 0)?;
        let b = self.need_konst(n, 1, "weight B")?;
        if b.dims.len() != 2 {
            return Err(format!("weight B has shape {:?}; tinyvae needs an [in, out] matrix", b.dims));
        }
        let bv = b.floats().map_err(|e| format!("weight B {e}"))?;
        let (ins, outs) = (b.dims[0], b.dims[1]);
        if ins != features {
            return Err(format!(
                "weight B has shape {:?}, so it takes {ins} features, but input `{}` has {features}",
                b.dims, n.input[0]
            ));
        }
        let weight = Array2::from_shape_fn((outs, ins), |(o, i)| bv[i * outs + o]);
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, Op::Dense { weight, bias: Array1::zeros(outs) }, vec![x], &out, vec![outs]);
        Ok(())
    }

    fn relu(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        self.activation(n, name, Op::Relu)
    }

    fn leaky_relu(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        self.activation(n, name, Op::LeakyRelu { alpha: attr_f(n, "alpha", 0.01) })
    }

    fn sigmoid(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        self.activation(n, name, Op::Sigmoid)
    }

    fn tanh(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        self.activation(n, name, Op::Tanh)
    }

    fn hard_swish(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        self.activation(n, name, Op::HardSwish)
    }

    fn swish(&mut self, n: &pb::NodeProto, name: &str) -> NodeResult {
        let alpha = attr_f(n, "alpha", 1.0);
        if alpha != 1.0 {
            return Err(format!("alpha {alpha} is not supported (tinyvae imports x * sigmoid(x), alpha 1)"));
        }
        self.activation(n, name, Op::Silu)
    }

    /// `HardSigmoid(x)` with alpha 1/6 and beta 1/2 is the gate of hard swish; the Mul that
    /// multiplies it by `x` makes the IR node. Read by anything else, it is an error there.
    fn hard_sigmoid(&mut self, n: &pb::NodeProto, _name: &str) -> NodeResult {
        let (alpha, beta) = (attr_f(n, "alpha", 0.2), attr_f(n, "beta", 0.5));
        let (x, _) = self.act(n, 0)?;
        let out = Self::out(n, 0)?.to_string();
        if (alpha - 1.0 / 6.0).abs() > 1e-6 || beta != 0.5 {
            return Err(format!(
                "alpha {alpha}, beta {beta}: tinyvae imports HardSigmoid only as hard swish's gate (alpha 1/6, beta 1/2)"
            ));
        }
        self.bad.insert(
            out.clone(),
            format!("`{out}` is a HardSigmoid, which tinyvae imports only as the gate of x * HardSigmoid(x)"),
        );
        self.hard_gates.insert(out, x);
        Ok(())
    }

    fn activation(&mut self, n: &pb::NodeProto, name: &str, op: Op) -> NodeResult {
        let (x, dims) = self.act(n, 0)?;
        let out = Self::out(n, 0)?.to_string();
        self.emit(name, op, vec![x], &out, dims);
        Ok(())
    }
}
