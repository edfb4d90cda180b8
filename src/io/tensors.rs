//! Named tensors in safetensors files: the format of fixtures, checkpoints and embeddings, readable
//! from PyTorch, JAX or numpy with the `safetensors` package alone.
//!
//! Metadata is stored under one key, `"darlc"`, as a JSON object with sorted keys: the safetensors
//! crate serialises its metadata map in hash order, so a single key is what keeps files
//! byte-identical from run to run.

use crate::error::{DarlcError, Result};
use crate::float::Float;
use ndarray::{ArrayD, IxDyn};
use safetensors::tensor::{Dtype, SafeTensors, View};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// One tensor of a file, in the dtype it is stored in.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(ArrayD<f32>),
    F64(ArrayD<f64>),
    I64(ArrayD<i64>),
    U8(ArrayD<u8>),
}

impl TensorData {
    /// Shape of the tensor.
    pub fn shape(&self) -> &[usize] {
        match self {
            TensorData::F32(a) => a.shape(),
            TensorData::F64(a) => a.shape(),
            TensorData::I64(a) => a.shape(),
            TensorData::U8(a) => a.shape(),
        }
    }
    /// The dtype name as safetensors writes it.
    pub fn dtype_name(&self) -> &'static str {
        match self {
            TensorData::F32(_) => "F32",
            TensorData::F64(_) => "F64",
            TensorData::I64(_) => "I64",
            TensorData::U8(_) => "U8",
        }
    }
    /// Values widened to f64 (integers converted exactly up to 2^53).
    pub fn to_f64(&self) -> ArrayD<f64> {
        match self {
            TensorData::F32(a) => a.mapv(|x| x as f64),
            TensorData::F64(a) => a.clone(),
            TensorData::I64(a) => a.mapv(|x| x as f64),
            TensorData::U8(a) => a.mapv(|x| x as f64),
        }
    }
    /// Values converted to the float type `T`.
    pub fn to_float<T: Float>(&self) -> ArrayD<T> {
        self.to_f64().mapv(T::of)
    }
    /// A float tensor of type `T` wrapped in the matching variant.
    pub fn from_float<T: Float>(a: ArrayD<T>) -> TensorData {
        if T::BYTES == 4 {
            TensorData::F32(a.mapv(|x| x.f64() as f32))
        } else {
            TensorData::F64(a.mapv(|x| x.f64()))
        }
    }
    fn bytes(&self) -> Vec<u8> {
        fn std<T: Copy>(a: &ArrayD<T>) -> Vec<T> {
            a.as_standard_layout().iter().copied().collect()
        }
        match self {
            TensorData::F32(a) => f32::to_le_bytes_vec(&std(a)),
            TensorData::F64(a) => f64::to_le_bytes_vec(&std(a)),
            TensorData::I64(a) => std(a).iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U8(a) => std(a),
        }
    }
}

struct Raw {
    dtype: Dtype,
    shape: Vec<usize>,
    bytes: Vec<u8>,
}

impl View for &Raw {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> Cow<'_, [u8]> {
        Cow::Borrowed(&self.bytes)
    }
    fn data_len(&self) -> usize {
        self.bytes.len()
    }
}

/// A safetensors file in memory: tensors by name (sorted) and string metadata (sorted).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TensorFile {
    pub tensors: BTreeMap<String, TensorData>,
    pub metadata: BTreeMap<String, String>,
}

impl TensorFile {
    /// An empty file.
    pub fn new() -> Self {
        Self::default()
    }
    /// Add or replace a tensor.
    pub fn insert(&mut self, name: impl Into<String>, t: TensorData) {
        self.tensors.insert(name.into(), t);
    }
    /// Add a float tensor of any precision, stored in that precision.
    pub fn insert_float<T: Float>(&mut self, name: impl Into<String>, a: ArrayD<T>) {
        self.insert(name, TensorData::from_float(a));
    }
    /// Add a tensor of integers (realised random draws, index lists, labels).
    pub fn insert_i64(&mut self, name: impl Into<String>, a: ArrayD<i64>) {
        self.insert(name, TensorData::I64(a));
    }
    /// A tensor by name, or an error that names the file and the missing tensor.
    pub fn get(&self, name: &str, path: &Path) -> Result<&TensorData> {
        self.tensors.get(name).ok_or_else(|| {
            DarlcError::format(
                path,
                None,
                format!(
                    "no tensor named `{}` (the file has: {})",
                    name,
                    self.tensors.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            )
        })
    }

    /// Serialise to safetensors bytes. Deterministic: same content, same bytes.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let raws: Vec<(String, Raw)> = self
            .tensors
            .iter()
            .map(|(k, t)| {
                let dtype = match t {
                    TensorData::F32(_) => Dtype::F32,
                    TensorData::F64(_) => Dtype::F64,
                    TensorData::I64(_) => Dtype::I64,
                    TensorData::U8(_) => Dtype::U8,
                };
                (
                    k.clone(),
                    Raw {
                        dtype,
                        shape: t.shape().to_vec(),
                        bytes: t.bytes(),
                    },
                )
            })
            .collect();
        let meta = if self.metadata.is_empty() {
            None
        } else {
            let json = serde_json::to_string(&self.metadata).expect("string map serialises");
            let mut m = HashMap::new();
            m.insert("darlc".to_string(), json);
            Some(m)
        };
        safetensors::serialize(raws.iter().map(|(k, r)| (k.as_str(), r)), meta)
            .map_err(|e| DarlcError::Data(format!("safetensors serialisation failed: {e}")))
    }

    /// Write atomically to `path`.
    pub fn save(&self, path: &Path) -> Result<()> {
        super::atomic_write(path, &self.to_bytes()?)
    }

    /// Parse safetensors bytes; `path` is only used in error messages.
    pub fn from_bytes(bytes: &[u8], path: &Path) -> Result<Self> {
        let bad = |m: String| DarlcError::format(path, None, m);
        let st = SafeTensors::deserialize(bytes)
            .map_err(|e| bad(format!("not a valid safetensors file: {e}")))?;
        let (_, md) = SafeTensors::read_metadata(bytes)
            .map_err(|e| bad(format!("not a valid safetensors header: {e}")))?;
        let mut out = TensorFile::new();
        if let Some(m) = md.metadata() {
            for (k, v) in m {
                if k == "darlc"
                    && let Ok(inner) = serde_json::from_str::<BTreeMap<String, String>>(v)
                {
                    out.metadata.extend(inner);
                    continue;
                }
                out.metadata.insert(k.clone(), v.clone());
            }
        }
        for (name, view) in st.tensors() {
            let shape = view.shape().to_vec();
            let data = view.data();
            // A shape whose element count overflows (a zero dimension beside huge ones passes
            // the safetensors check, 0 bytes) is an error, not a panic (issue 24).
            let shape_err = |e: ndarray::ShapeError| {
                bad(format!(
                    "tensor `{name}` has shape {shape:?}, which darlc cannot hold: {e}"
                ))
            };
            let dyn_shape = || {
                let mut n: usize = 1;
                for &d in &shape {
                    n = n
                        .checked_mul(d)
                        .filter(|&n| n <= isize::MAX as usize)
                        .ok_or_else(|| {
                            bad(format!(
                                "tensor `{name}` has shape {shape:?}: too many elements"
                            ))
                        })?;
                }
                Ok::<_, DarlcError>(IxDyn(&shape))
            };
            let t = match view.dtype() {
                Dtype::F32 => TensorData::F32(
                    ArrayD::from_shape_vec(dyn_shape()?, f32::from_le_bytes_vec(data))
                        .map_err(shape_err)?,
                ),
                Dtype::F64 => TensorData::F64(
                    ArrayD::from_shape_vec(dyn_shape()?, f64::from_le_bytes_vec(data))
                        .map_err(shape_err)?,
                ),
                Dtype::I64 => TensorData::I64(
                    ArrayD::from_shape_vec(
                        dyn_shape()?,
                        data.chunks_exact(8)
                            .map(|c| {
                                i64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]])
                            })
                            .collect(),
                    )
                    .map_err(shape_err)?,
                ),
                Dtype::I32 => TensorData::I64(
                    ArrayD::from_shape_vec(
                        dyn_shape()?,
                        data.chunks_exact(4)
                            .map(|c| i32::from_le_bytes([c[0], c[1], c[2], c[3]]) as i64)
                            .collect(),
                    )
                    .map_err(shape_err)?,
                ),
                Dtype::U8 | Dtype::BOOL => TensorData::U8(
                    ArrayD::from_shape_vec(dyn_shape()?, data.to_vec()).map_err(shape_err)?,
                ),
                other => {
                    return Err(bad(format!(
                        "tensor `{name}` has dtype {other:?}; darlc reads F32, F64, I64, I32, U8 and BOOL"
                    )));
                }
            };
            out.tensors.insert(name, t);
        }
        Ok(out)
    }

    /// Read a safetensors file.
    pub fn load(path: &Path) -> Result<Self> {
        let bytes = std::fs::read(path).map_err(|e| DarlcError::io(path, e))?;
        Self::from_bytes(&bytes, path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn roundtrip_is_exact_and_deterministic() {
        let mut f = TensorFile::new();
        f.insert_float("b.x", array![[1.5f64, -2.0], [3.0, 1e-300]].into_dyn());
        f.insert_float("a.y", array![0.1f32, 0.2].into_dyn());
        f.insert_i64("idx", array![[3i64, 1], [0, 2]].into_dyn());
        f.metadata.insert("z".into(), "1".into());
        f.metadata.insert("a".into(), "2".into());
        let b1 = f.to_bytes().unwrap();
        let b2 = f.clone().to_bytes().unwrap();
        assert_eq!(b1, b2);
        let g = TensorFile::from_bytes(&b1, Path::new("mem")).unwrap();
        assert_eq!(f, g);
    }

    #[test]
    fn corrupt_bytes_are_an_error_naming_the_file() {
        let e = TensorFile::from_bytes(b"\x05\x00\x00\x00\x00\x00\x00\x00{bad}", Path::new("x.st"))
            .unwrap_err();
        assert!(e.to_string().contains("x.st"));
    }
}
