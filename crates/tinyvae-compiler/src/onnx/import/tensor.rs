//! Constants during import: initializers and Constant nodes decoded into f32 weights or the
//! small integer tensors of shape arithmetic, where the batch size stays a symbol.

use crate::onnx::proto as pb;
use crate::onnx::proto::tensor_proto::{DataLocation, DataType};

/// One entry of an integer tensor; the batch size is symbolic because the exported model
/// must work for any batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum IntDim {
    Batch,
    Val(i64),
}

#[derive(Clone, Debug)]
pub(super) enum Data {
    F32(Vec<f32>),
    Int(Vec<IntDim>),
}

/// A constant, folded at import time.
#[derive(Clone, Debug)]
pub(super) struct Const {
    pub(super) dims: Vec<usize>,
    pub(super) data: Data,
}

impl Const {
    pub(super) fn floats(&self) -> Result<&[f32], String> {
        match &self.data {
            Data::F32(v) => Ok(v),
            Data::Int(_) => Err("holds integers where floats are needed".into()),
        }
    }

    pub(super) fn ints(&self) -> Result<&[IntDim], String> {
        match &self.data {
            Data::Int(v) => Ok(v),
            Data::F32(_) => Err("holds floats where integers are needed".into()),
        }
    }

    /// Plain integers, for attributes-as-inputs (axes, split sizes, slice bounds).
    pub(super) fn plain_ints(&self) -> Result<Vec<i64>, String> {
        self.ints()?
            .iter()
            .map(|d| match d {
                IntDim::Val(v) => Ok(*v),
                IntDim::Batch => Err("depends on the batch size".to_string()),
            })
            .collect()
    }

    pub(super) fn len(&self) -> usize {
        match &self.data {
            Data::F32(v) => v.len(),
            Data::Int(v) => v.len(),
        }
    }

    pub(super) fn ints1(v: Vec<IntDim>) -> Const {
        Const { dims: vec![v.len()], data: Data::Int(v) }
    }

    /// Broadcasts a bias constant to `n` values: `[n]`, `[1, n]`, or a single value.
    pub(super) fn bias_vector(&self, n: usize) -> Result<Vec<f32>, String> {
        let v = self.floats()?;
        let trailing_n = self.dims.last() == Some(&n) && product(&self.dims) == n;
        if trailing_n {
            Ok(v.to_vec())
        } else if v.len() == 1 {
            Ok(vec![v[0]; n])
        } else {
            Err(format!("bias has shape {:?}; tinyvae needs [{n}], [1, {n}] or a single value", self.dims))
        }
    }
}

pub(super) fn product(dims: &[usize]) -> usize {
    dims.iter().product()
}

pub(super) fn type_name(dt: i32) -> String {
    DataType::try_from(dt).map_or_else(|_| format!("type {dt}"), |t| t.as_str_name().to_string())
}

fn le_chunks<const N: usize, T>(raw: &[u8], count: usize, f: impl Fn([u8; N]) -> T) -> Result<Vec<T>, String> {
    if count.checked_mul(N) != Some(raw.len()) {
        return Err(format!("raw_data has {} bytes where its shape needs {count} values of {N} bytes", raw.len()));
    }
    Ok(raw
        .chunks_exact(N)
        .map(|c| {
            let mut b = [0u8; N];
            b.copy_from_slice(c);
            f(b)
        })
        .collect())
}

fn check_count<T>(v: Vec<T>, count: usize) -> Result<Vec<T>, String> {
    if v.len() != count {
        return Err(format!("{} values where its shape needs {count}", v.len()));
    }
    Ok(v)
}

/// Decodes an initializer or Constant value. Floating types all become f32 (the IR's type);
/// integer types are kept for shape arithmetic.
pub(super) fn const_from_proto(t: &pb::TensorProto) -> Result<Const, String> {
    if t.data_location == DataLocation::External as i32 || !t.external_data.is_empty() {
        let loc = t.external_data.iter().find(|e| e.key == "location").map_or("?", |e| e.value.as_str());
        return Err(format!(
            "its data is stored outside the model file (external data `{loc}`); tinyvae needs a \
             self-contained model: re-save it with onnx.save_model(model, path, save_as_external_data=False)"
        ));
    }
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("too many elements")?;
    let raw = &t.raw_data;
    let data = match DataType::try_from(t.data_type) {
        Ok(DataType::Float) => Data::F32(if raw.is_empty() {
            check_count(t.float_data.clone(), count)?
        } else {
            le_chunks(raw, count, f32::from_le_bytes)?
        }),
        Ok(DataType::Double) => Data::F32(if raw.is_empty() {
            check_count(t.double_data.iter().map(|&v| v as f32).collect(), count)?
        } else {
            le_chunks(raw, count, |b| f64::from_le_bytes(b) as f32)?
        }),
        Ok(DataType::Float16) => Data::F32(if raw.is_empty() {
            // int32_data holds each half's bit pattern in its low 16 bits.
            check_count(t.int32_data.iter().map(|&v| half::f16::from_bits(v as u16).to_f32()).collect(), count)?
        } else {
            le_chunks(raw, count, |b| half::f16::from_le_bytes(b).to_f32())?
        }),
        Ok(DataType::Bfloat16) => Data::F32(if raw.is_empty() {
            check_count(t.int32_data.iter().map(|&v| half::bf16::from_bits(v as u16).to_f32()).collect(), count)?
        } else {
            le_chunks(raw, count, |b| half::bf16::from_le_bytes(b).to_f32())?
        }),
        Ok(DataType::Int64) => Data::Int(if raw.is_empty() {
            check_count(t.int64_data.iter().map(|&v| IntDim::Val(v)).collect(), count)?
        } else {
            le_chunks(raw, count, |b| IntDim::Val(i64::from_le_bytes(b)))?
        }),
        Ok(DataType::Int32) => Data::Int(if raw.is_empty() {
            check_count(t.int32_data.iter().map(|&v| IntDim::Val(v.into())).collect(), count)?
        } else {
            le_chunks(raw, count, |b| IntDim::Val(i32::from_le_bytes(b).into()))?
        }),
        _ => {
            return Err(format!(
                "data type {} is not supported; tinyvae reads FLOAT, FLOAT16, BFLOAT16 and DOUBLE weights and INT64/INT32 shapes",
                type_name(t.data_type)
            ))
        }
    };
    Ok(Const { dims, data })
}
