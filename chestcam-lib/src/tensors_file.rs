//! Safetensors files with a metadata header, read and written with errors a
//! person understands ("F is not a safetensors file", "disk full while
//! writing F"), never the format crate's debug text.
//!
//! Writes go to a temp file beside the target, are synced, then renamed:
//! a reader sees the old file or the new one, never half of one.
use crate::{Error, Result};
use safetensors::tensor::{Dtype, SafeTensors, View};
use safetensors::SafeTensorError;
use std::collections::HashMap;
use std::path::Path;
use tch::{Device, Kind, Tensor};

/// The tensors of a file, in the file's order, and its `__metadata__`.
pub struct TensorsFile {
    pub tensors: Vec<(String, Tensor)>,
    pub metadata: HashMap<String, String>,
}

impl TensorsFile {
    /// The tensor named `name`, if present.
    pub fn get(&self, name: &str) -> Option<&Tensor> {
        self.tensors.iter().find(|(n, _)| n == name).map(|(_, t)| t)
    }

    /// Copies tensor `name` of this file (read from `path`) into `dst`,
    /// outside autograd; refuses a missing name or another shape. `whose`
    /// says in words what the file should hold ("the weights of a small
    /// ResNet-18 at this size").
    pub fn copy_to(&self, path: &Path, name: &str, dst: &mut Tensor, whose: &str) -> Result<()> {
        let src = self
            .get(name)
            .ok_or_else(|| Error::bad_file(path, format!("holds no tensor {name}: not {whose}")))?;
        if src.size() != dst.size() {
            return Err(Error::bad_file(
                path,
                format!(
                    "{name} has shape {:?}, but {whose} needs {:?}",
                    src.size(),
                    dst.size()
                ),
            ));
        }
        tch::no_grad(|| dst.f_copy_(src))?;
        Ok(())
    }
}

fn dtype_of(kind: Kind) -> Option<Dtype> {
    Some(match kind {
        Kind::Bool => Dtype::BOOL,
        Kind::Uint8 => Dtype::U8,
        Kind::Int8 => Dtype::I8,
        Kind::Int16 => Dtype::I16,
        Kind::Int => Dtype::I32,
        Kind::Int64 => Dtype::I64,
        Kind::BFloat16 => Dtype::BF16,
        Kind::Half => Dtype::F16,
        Kind::Float => Dtype::F32,
        Kind::Double => Dtype::F64,
        _ => return None,
    })
}

fn kind_of(dtype: Dtype) -> Option<Kind> {
    Some(match dtype {
        Dtype::BOOL => Kind::Bool,
        Dtype::U8 => Kind::Uint8,
        Dtype::I8 => Kind::Int8,
        Dtype::I16 => Kind::Int16,
        Dtype::I32 => Kind::Int,
        Dtype::I64 => Kind::Int64,
        Dtype::BF16 => Kind::BFloat16,
        Dtype::F16 => Kind::Half,
        Dtype::F32 => Kind::Float,
        Dtype::F64 => Kind::Double,
        _ => return None,
    })
}

/// A tensor's bytes, copied to the host.
struct Bytes {
    dtype: Dtype,
    shape: Vec<usize>,
    data: Vec<u8>,
}

impl View for &Bytes {
    fn dtype(&self) -> Dtype {
        self.dtype
    }
    fn shape(&self) -> &[usize] {
        &self.shape
    }
    fn data(&self) -> std::borrow::Cow<'_, [u8]> {
        std::borrow::Cow::Borrowed(&self.data)
    }
    fn data_len(&self) -> usize {
        self.data.len()
    }
}

fn to_bytes(name: &str, t: &Tensor) -> Result<Bytes> {
    let dtype = dtype_of(t.kind()).ok_or_else(|| {
        Error::invalid(
            "tensor",
            format!(
                "{name} has kind {:?}, which safetensors cannot hold",
                t.kind()
            ),
        )
    })?;
    let t = t.f_to_device(Device::Cpu)?.f_contiguous()?;
    let numel = t.numel();
    let mut data = vec![0u8; numel * t.kind().elt_size_in_bytes()];
    t.f_copy_data_u8(&mut data, numel)?;
    Ok(Bytes {
        dtype,
        shape: t.size().iter().map(|&d| d as usize).collect(),
        data,
    })
}

/// What a format error means, in words.
pub(crate) fn describe(e: &SafeTensorError) -> String {
    match e {
        SafeTensorError::HeaderTooSmall | SafeTensorError::InvalidHeaderLength => {
            "not a safetensors file (too short, or its header length is impossible)".into()
        }
        SafeTensorError::HeaderTooLarge => {
            "not a safetensors file (its first 8 bytes announce a header over 100 MB)".into()
        }
        SafeTensorError::InvalidHeader
        | SafeTensorError::InvalidHeaderStart
        | SafeTensorError::InvalidHeaderDeserialization
        | SafeTensorError::JsonError(_) => {
            "not a safetensors file (its header is not the JSON safetensors writes)".into()
        }
        SafeTensorError::MetadataIncompleteBuffer
        | SafeTensorError::InvalidOffset(_)
        | SafeTensorError::TensorInvalidInfo
        | SafeTensorError::InvalidTensorView(..)
        | SafeTensorError::ValidationOverflow => {
            "a truncated or corrupt safetensors file (its header and its size disagree)".into()
        }
        SafeTensorError::TensorNotFound(n) => format!("holds no tensor {n}"),
        SafeTensorError::IoError(e) => crate::error::io_words(e),
    }
}

/// Writes `tensors` (any device) with `metadata` to `path`, atomically.
pub fn write(
    path: &Path,
    tensors: &[(&str, &Tensor)],
    metadata: HashMap<String, String>,
) -> Result<()> {
    let bytes: Vec<(String, Bytes)> = tensors
        .iter()
        .map(|(n, t)| Ok((n.to_string(), to_bytes(n, t)?)))
        .collect::<Result<_>>()?;
    let meta = (!metadata.is_empty()).then_some(metadata);
    let buf = safetensors::tensor::serialize(bytes.iter().map(|(n, b)| (n.as_str(), b)), &meta)
        .map_err(|e| Error::bad_file(path, describe(&e)))?;
    crate::util::write_atomic(path, &buf)
}

/// Reads a file: every tensor (on the CPU) and the metadata.
pub fn read(path: &Path) -> Result<TensorsFile> {
    let buf = read_bytes(path)?;
    let st = SafeTensors::deserialize(&buf).map_err(|e| Error::bad_file(path, describe(&e)))?;
    let (_, header) =
        SafeTensors::read_metadata(&buf).map_err(|e| Error::bad_file(path, describe(&e)))?;
    let mut names: Vec<(usize, String)> = header
        .tensors()
        .iter()
        .map(|(n, info)| (info.data_offsets.0, n.clone()))
        .collect();
    names.sort();
    let mut tensors = Vec::with_capacity(names.len());
    for (_, name) in names {
        let view = st
            .tensor(&name)
            .map_err(|e| Error::bad_file(path, describe(&e)))?;
        let kind = kind_of(view.dtype()).ok_or_else(|| {
            Error::bad_file(
                path,
                format!(
                    "tensor {name} has dtype {:?}, which chestcam cannot read",
                    view.dtype()
                ),
            )
        })?;
        let shape: Vec<i64> = view.shape().iter().map(|&d| d as i64).collect();
        tensors.push((name, Tensor::f_from_data_size(view.data(), &shape, kind)?));
    }
    Ok(TensorsFile {
        tensors,
        metadata: header.metadata().clone().unwrap_or_default(),
    })
}

/// Reads only the header's metadata (cheap: the tensors are not read).
pub fn read_metadata(path: &Path) -> Result<HashMap<String, String>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    let mut len = [0u8; 8];
    f.read_exact(&mut len)
        .map_err(|_| Error::bad_file(path, describe(&SafeTensorError::HeaderTooSmall)))?;
    let n = u64::from_le_bytes(len);
    if n > 100_000_000 {
        return Err(Error::bad_file(
            path,
            describe(&SafeTensorError::HeaderTooLarge),
        ));
    }
    let mut header = vec![0u8; n as usize];
    f.read_exact(&mut header)
        .map_err(|_| Error::bad_file(path, describe(&SafeTensorError::InvalidHeaderLength)))?;
    let v: serde_json::Value = serde_json::from_slice(&header)
        .map_err(|_| Error::bad_file(path, describe(&SafeTensorError::InvalidHeader)))?;
    let total = f.metadata().map_err(|e| Error::io(path, e))?.len();
    let end = v
        .as_object()
        .map(|o| {
            o.iter()
                .filter(|(k, _)| *k != "__metadata__")
                .filter_map(|(_, t)| t["data_offsets"][1].as_u64())
                .max()
                .unwrap_or(0)
        })
        .unwrap_or(0);
    if total != 8 + n + end {
        return Err(Error::bad_file(
            path,
            describe(&SafeTensorError::MetadataIncompleteBuffer),
        ));
    }
    Ok(v["__metadata__"]
        .as_object()
        .map(|o| {
            o.iter()
                .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string())))
                .collect()
        })
        .unwrap_or_default())
}

fn read_bytes(path: &Path) -> Result<Vec<u8>> {
    if path.is_dir() {
        return Err(Error::bad_file(path, "is a folder, not a safetensors file"));
    }
    std::fs::read(path).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_with_metadata_and_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.safetensors");
        let w = Tensor::from_slice(&[1.5f32, -2.0, 3.25, 0.0]).reshape([2, 2]);
        let s = Tensor::from_slice(&[7i64]);
        let meta = HashMap::from([("k".to_string(), "v".to_string())]);
        write(&p, &[("w", &w), ("s", &s)], meta.clone()).unwrap();
        let f = read(&p).unwrap();
        assert_eq!(f.metadata, meta);
        assert_eq!(read_metadata(&p).unwrap(), meta);
        let mut names: Vec<&str> = f.tensors.iter().map(|(n, _)| n.as_str()).collect();
        names.sort();
        assert_eq!(names, ["s", "w"]);
        assert!(f.get("w").unwrap().equal(&w));
        assert!(f.get("s").unwrap().equal(&s));
        // Cut short: named, in words.
        let bytes = std::fs::read(&p).unwrap();
        std::fs::write(&p, &bytes[..bytes.len() - 3]).unwrap();
        for e in [read(&p).err().unwrap(), read_metadata(&p).err().unwrap()] {
            let e = e.to_string();
            assert!(
                e.contains("a.safetensors") && e.contains("truncated"),
                "{e}"
            );
        }
        // Not a safetensors file at all.
        std::fs::write(&p, b"hello, world, this is text").unwrap();
        for e in [read(&p).err().unwrap(), read_metadata(&p).err().unwrap()] {
            let e = e.to_string();
            assert!(
                e.contains("not a safetensors file") && !e.contains("HeaderTooLarge"),
                "{e}"
            );
        }
        let e = read(dir.path()).err().unwrap().to_string();
        assert!(e.contains("is a folder"), "{e}");
    }
}
