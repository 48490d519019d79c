//! Constants during import: initializers and Constant nodes decoded into f32 weights or the
//! small integer tensors of shape arithmetic, where the batch size stays a symbol.
//!
//! Initializers may also be ONNX external data: raw bytes in a sidecar file next to the model
//! (`decoder.onnx.data`, what `torch.onnx.export` writes since torch 2.9). A model file is
//! untrusted input, so a location is only followed inside the model's folder, and every offset
//! and length is checked against the file and the tensor before anything is allocated.

use std::collections::hash_map::{Entry, HashMap};
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Component, Path, PathBuf};

use super::ImportError;
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

/// The element count of `dims`, saturating: the dimensions come from the model file, and a
/// count past `usize::MAX` is no real length, so it matches none of the lengths it is compared
/// with (a plain product panicked on overflow, or wrapped to a small number that could).
pub(super) fn product(dims: &[usize]) -> usize {
    dims.iter().fold(1, |n, &d| n.saturating_mul(d))
}

pub(super) fn type_name(dt: i32) -> String {
    DataType::try_from(dt).map_or_else(|_| format!("type {dt}"), |t| t.as_str_name().to_string())
}

/// Bytes per value of the data types [`const_from_proto`] reads: a sidecar's length is checked
/// against it before the bytes are read.
fn value_size(dt: i32) -> Option<usize> {
    match DataType::try_from(dt) {
        Ok(DataType::Float | DataType::Int32) => Some(4),
        Ok(DataType::Double | DataType::Int64) => Some(8),
        Ok(DataType::Float16 | DataType::Bfloat16) => Some(2),
        _ => None,
    }
}

fn unsupported_type(dt: i32) -> String {
    format!(
        "data type {} is not supported; tinyvae reads FLOAT, FLOAT16, BFLOAT16 and DOUBLE weights and INT64/INT32 shapes",
        type_name(dt)
    )
}

/// Dims and element count.
fn shape(t: &pb::TensorProto) -> Result<(Vec<usize>, usize), String> {
    let dims = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dimension {d}")))
        .collect::<Result<Vec<usize>, String>>()?;
    let count = dims.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).ok_or("too many elements")?;
    Ok((dims, count))
}

/// The value of an `external_data` entry; the last one wins, as in ONNX's own reader.
fn entry<'t>(t: &'t pb::TensorProto, key: &str) -> Option<&'t str> {
    t.external_data.iter().rev().find(|e| e.key == key).map(|e| e.value.as_str())
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
    let (dims, count) = shape(t)?;
    if t.data_location == DataLocation::External as i32 {
        // Initializers come here with their data read in (`ExternalData::inline`); what is left
        // is a Constant node's tensor, or a type the loader had no size for.
        if value_size(t.data_type).is_none() {
            return Err(unsupported_type(t.data_type));
        }
        return Err(format!(
            "its data is stored outside the model file (external data `{}`); tinyvae reads external \
             data for initializers only",
            entry(t, "location").unwrap_or("?")
        ));
    }
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
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
        _ => return Err(unsupported_type(t.data_type)),
    };
    Ok(Const { dims, data })
}

/// Reads initializers stored as external data, relative to the model's folder. Each sidecar is
/// opened once per import, however many tensors point into it, and only their ranges are read.
pub(super) struct ExternalData<'a> {
    /// The model's folder; `None` for a model given as bytes, which has none.
    folder: Option<&'a Path>,
    /// `folder` canonicalized, the boundary no location may leave.
    root: Option<PathBuf>,
    /// Open sidecars by canonical path, with their sizes.
    files: HashMap<PathBuf, (File, u64)>,
}

/// What is wrong with a tensor's external data, before it is attributed to the tensor.
enum Problem {
    NoFolder,
    Location(&'static str),
    Read(std::io::Error),
    Layout(String),
}

impl From<std::io::Error> for Problem {
    fn from(e: std::io::Error) -> Self {
        Problem::Read(e)
    }
}

impl Problem {
    fn at(self, t: &pb::TensorProto, location: &str) -> ImportError {
        let (tensor, location) = (t.name.clone(), location.to_string());
        match self {
            Problem::NoFolder => ImportError::ExternalDataWithoutFolder { tensor, location },
            Problem::Location(problem) => ImportError::ExternalDataLocation { tensor, location, problem },
            Problem::Read(source) => ImportError::ExternalDataRead { tensor, location, source },
            Problem::Layout(problem) => ImportError::ExternalDataLayout { tensor, location, problem },
        }
    }
}

impl<'a> ExternalData<'a> {
    pub(super) fn new(folder: Option<&'a Path>) -> Self {
        ExternalData { folder, root: None, files: HashMap::new() }
    }

    /// `t` with its external data read into `raw_data`, or `None` if the model holds the data
    /// itself. A tensor of a shape or type the decoder cannot take is left for
    /// [`const_from_proto`] to reject by name, only if a node reads it.
    ///
    /// The `checksum` entry is not verified: neither ONNX's reader nor onnxruntime verifies it,
    /// and it guards against corruption, not against a hostile file, which the range checks do.
    pub(super) fn inline(&mut self, t: &pb::TensorProto) -> Result<Option<pb::TensorProto>, ImportError> {
        if t.data_location != DataLocation::External as i32 {
            return Ok(None);
        }
        let (Ok((dims, count)), Some(size)) = (shape(t), value_size(t.data_type)) else {
            return Ok(None);
        };
        let location = entry(t, "location").unwrap_or_default();
        let raw_data = self.read(t, location, &dims, count, size).map_err(|p| p.at(t, location))?;
        Ok(Some(pb::TensorProto {
            name: t.name.clone(),
            dims: t.dims.clone(),
            data_type: t.data_type,
            raw_data,
            ..Default::default()
        }))
    }

    fn read(
        &mut self,
        t: &pb::TensorProto,
        location: &str,
        dims: &[usize],
        count: usize,
        size: usize,
    ) -> Result<Vec<u8>, Problem> {
        let (file, len) = self.open(location)?;
        let offset = byte_count(t, "offset")?.unwrap_or(0);
        let Some(available) = len.checked_sub(offset) else {
            return Err(Problem::Layout(format!("has offset {offset}, past the end of the file ({len} bytes)")));
        };
        let given = byte_count(t, "length")?;
        let length = given.unwrap_or(available);
        if length > available {
            return Err(Problem::Layout(format!(
                "has {length} bytes at offset {offset}, past the end of the file ({len} bytes)"
            )));
        }
        let needed = u64::try_from(count).ok().and_then(|c| c.checked_mul(size as u64));
        if needed != Some(length) {
            let from = if given.is_some() { String::new() } else { format!(" (from offset {offset} to the end)") };
            return Err(Problem::Layout(format!(
                "has {length} bytes{from} where the tensor's {} {dims:?} needs {}",
                type_name(t.data_type),
                needed.map_or_else(|| "more than 2^64".to_string(), |n| n.to_string())
            )));
        }
        let n = usize::try_from(length)
            .map_err(|_| Problem::Layout(format!("has {length} bytes, more than memory holds")))?;
        let mut raw_data = vec![0u8; n];
        file.seek(SeekFrom::Start(offset))?;
        file.read_exact(&mut raw_data)?;
        Ok(raw_data)
    }

    /// The sidecar `location` names, and its size.
    fn open(&mut self, location: &str) -> Result<(&mut File, u64), Problem> {
        let relative = relative_location(location).map_err(Problem::Location)?;
        let folder = self.folder.ok_or(Problem::NoFolder)?;
        let root = match self.root.take() {
            Some(root) => root,
            None => folder.canonicalize()?,
        };
        let root = &*self.root.insert(root);
        let path = root.join(relative).canonicalize()?;
        if !path.starts_with(root) {
            return Err(Problem::Location("leads out of the model's folder (through a symbolic link)"));
        }
        let (file, len) = match self.files.entry(path) {
            Entry::Occupied(e) => e.into_mut(),
            Entry::Vacant(e) => {
                // Checked before opening: opening a FIFO for reading would wait for a writer.
                if !std::fs::metadata(e.key())?.is_file() {
                    return Err(Problem::Location("is not a regular file"));
                }
                let file = File::open(e.key())?;
                let len = file.metadata()?.len();
                e.insert((file, len))
            }
        };
        Ok((file, *len))
    }
}

/// `location` as a path that cannot leave the folder it is joined to, short of a symbolic link.
fn relative_location(location: &str) -> Result<&Path, &'static str> {
    if location.is_empty() {
        return Err("is missing (the tensor has no `location` entry)");
    }
    let path = Path::new(location);
    for c in path.components() {
        match c {
            Component::Prefix(_) | Component::RootDir => {
                return Err("is absolute; ONNX locations are relative to the model's folder")
            }
            Component::ParentDir => return Err("goes up a folder (`..`); ONNX locations stay in the model's folder"),
            Component::CurDir | Component::Normal(_) => {}
        }
    }
    Ok(path)
}

/// An `offset` or `length` entry: decimal bytes, absent when the default applies.
fn byte_count(t: &pb::TensorProto, key: &str) -> Result<Option<u64>, Problem> {
    entry(t, key)
        .map(|v| {
            v.trim().parse::<u64>().map_err(|_| Problem::Layout(format!("has {key} `{v}`, which is not a byte count")))
        })
        .transpose()
}
