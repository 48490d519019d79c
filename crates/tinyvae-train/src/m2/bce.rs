//! The Bernoulli reconstruction term of M2 as one fused candle operation.
//!
//! M2's unlabelled loss decodes every image once per class, so the `(batch * classes) x
//! pixels` cross-entropy is the largest elementwise computation of a step. Written with
//! tensor operations ([`crate::model::bce_with_logits`]) it is a dozen passes forward and
//! twice that backward, which measured at 55 ms of a 175 ms step; fused here it is one pass
//! each way, and the target rows are read in place instead of being repeated per class.
//! The value is the same formula, `max(l, 0) - l x + ln(1 + e^-|l|)` summed per row, and the
//! gradient is `sigmoid(l) - x`; the tests check both against `bce_with_logits`.

use std::sync::Arc;

use candle_core::{CpuStorage, CustomOp1, CustomOp2, Layout, Shape, Tensor};

use crate::error::TrainError;

/// Per-row `-log p(x|logits)` for Bernoulli pixels: `logits` is `rows x pixels`, row `r` is
/// compared with target row `r / repeat` of `targets` (`rows / repeat x pixels`, values in
/// [0, 1], no gradient). Returns `rows` values; differentiable with respect to `logits`.
pub fn bernoulli_nll_rows(logits: &Tensor, targets: &Tensor, repeat: usize) -> Result<Tensor, TrainError> {
    let (rows, pixels) = logits.dims2()?;
    let (t_rows, t_pixels) = targets.dims2()?;
    if repeat == 0 || t_pixels != pixels || t_rows * repeat != rows {
        return Err(TrainError::Config(format!(
            "bernoulli_nll_rows: {rows} x {pixels} logits against {t_rows} x {t_pixels} targets repeated {repeat} times"
        )));
    }
    let targets: Vec<f32> = targets.flatten_all()?.to_vec1()?;
    let op = FusedBce { targets: Arc::new(targets), pixels, repeat };
    Ok(logits.contiguous()?.apply_op1(op)?)
}

struct FusedBce {
    targets: Arc<Vec<f32>>,
    pixels: usize,
    repeat: usize,
}

fn contiguous_f32<'a>(storage: &'a CpuStorage, layout: &Layout, what: &str) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(v) = storage else {
        candle_core::bail!("{what} must be f32");
    };
    match layout.contiguous_offsets() {
        Some((start, end)) => Ok(&v[start..end]),
        None => candle_core::bail!("{what} must be contiguous"),
    }
}

impl CustomOp1 for FusedBce {
    fn name(&self) -> &'static str {
        "fused-bernoulli-nll"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = contiguous_f32(storage, layout, "logits")?;
        let rows = logits.len() / self.pixels;
        let out: Vec<f32> = logits
            .chunks_exact(self.pixels)
            .enumerate()
            .map(|(r, row)| {
                let target = &self.targets[(r / self.repeat) * self.pixels..][..self.pixels];
                let mut sum = 0f64;
                for (&l, &x) in row.iter().zip(target) {
                    sum += (l.max(0.0) - l * x + (-l.abs()).exp().ln_1p()) as f64;
                }
                sum as f32
            })
            .collect();
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    fn bwd(&self, arg: &Tensor, _res: &Tensor, grad_res: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = FusedBceGrad { targets: self.targets.clone(), pixels: self.pixels, repeat: self.repeat };
        Ok(Some(arg.apply_op2_no_bwd(&grad_res.contiguous()?, &grad)?))
    }
}

/// `(sigmoid(l) - x) * g[row]`: the gradient of [`FusedBce`] for upstream gradients `g`.
struct FusedBceGrad {
    targets: Arc<Vec<f32>>,
    pixels: usize,
    repeat: usize,
}

impl CustomOp2 for FusedBceGrad {
    fn name(&self) -> &'static str {
        "fused-bernoulli-nll-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        logits_layout: &Layout,
        grad: &CpuStorage,
        grad_layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let logits = contiguous_f32(logits, logits_layout, "logits")?;
        let grad = contiguous_f32(grad, grad_layout, "the upstream gradient")?;
        let rows = logits.len() / self.pixels;
        let mut out = vec![0f32; logits.len()];
        for (r, (dst, row)) in out.chunks_exact_mut(self.pixels).zip(logits.chunks_exact(self.pixels)).enumerate() {
            let target = &self.targets[(r / self.repeat) * self.pixels..][..self.pixels];
            let g = grad[r];
            for ((d, &l), &x) in dst.iter_mut().zip(row).zip(target) {
                *d = (1.0 / (1.0 + (-l).exp()) - x) * g;
            }
        }
        Ok((CpuStorage::F32(out), Shape::from((rows, self.pixels))))
    }
}
