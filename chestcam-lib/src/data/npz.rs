//! Reading and writing the MedMNIST npz layout: a zip of `.npy` entries,
//! stored or deflated. A small, strict `.npy` parser for uint8 arrays: every
//! failure names the file and the entry, and a header that claims a huge
//! shape never causes a huge allocation (memory grows only with bytes that
//! are really there).
use crate::{Error, Result};
use std::fs::File;
use std::io::{BufReader, Read, Seek, Write};
use std::path::{Path, PathBuf};

/// A uint8 array read from an `.npy` entry, in C order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct U8Array {
    pub shape: Vec<usize>,
    pub data: Vec<u8>,
}

/// An open npz file. Entries are read on demand.
pub struct NpzReader<R: Read + Seek = BufReader<File>> {
    path: PathBuf,
    zip: zip::ZipArchive<R>,
}

impl NpzReader<BufReader<File>> {
    /// Opens `path` as an npz (zip) archive.
    pub fn open(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        if path.is_dir() {
            return Err(Error::bad_file(path, "is a folder, not an .npz file"));
        }
        let file = File::open(path).map_err(|e| Error::io(path, e))?;
        Self::from_reader(path, BufReader::new(file))
    }
}

impl<R: Read + Seek> NpzReader<R> {
    /// Reads an npz from any seekable reader; `path` is used in messages.
    pub fn from_reader(path: impl Into<PathBuf>, reader: R) -> Result<Self> {
        let path = path.into();
        let zip = zip::ZipArchive::new(reader).map_err(|e| {
            Error::bad_file(
                &path,
                format!("not a readable npz/zip archive (truncated or corrupt?): {e}"),
            )
        })?;
        Ok(NpzReader { path, zip })
    }

    /// The array names (entry names without `.npy`).
    pub fn keys(&self) -> Vec<String> {
        self.zip
            .file_names()
            .map(|n| n.strip_suffix(".npy").unwrap_or(n).to_string())
            .collect()
    }

    /// Whether array `key` is present.
    pub fn has(&self, key: &str) -> bool {
        self.zip.index_for_name(&format!("{key}.npy")).is_some()
    }

    /// Reads array `key` (entry `key.npy`), which must be uint8 (or bool).
    pub fn read_u8(&mut self, key: &str) -> Result<U8Array> {
        let entry_name = format!("{key}.npy");
        let path = self.path.clone();
        let ctx = |reason: String| Error::bad_file(&path, format!("entry {entry_name}: {reason}"));
        if !self.has(key) {
            let mut keys = self.keys();
            keys.sort();
            return Err(Error::bad_file(
                &self.path,
                format!("missing key {key:?} (the file has: {})", keys.join(", ")),
            ));
        }
        let mut entry = self
            .zip
            .by_name(&entry_name)
            .map_err(|e| ctx(format!("cannot open: {e}")))?;
        let declared = entry.size();
        let header = read_npy_header(&mut entry).map_err(&ctx)?;
        let count = header
            .shape
            .iter()
            .try_fold(1usize, |acc, &d| acc.checked_mul(d))
            .ok_or_else(|| ctx(format!("shape {:?} overflows", header.shape)))?;
        let available = declared.saturating_sub(header.header_bytes as u64);
        if (count as u64) > available {
            return Err(ctx(format!(
                "header claims shape {:?} ({count} bytes) but the entry holds only {available} bytes of data (truncated or forged header)",
                header.shape
            )));
        }
        // Grow with the data actually decompressed, never with the claim.
        // Reading to the entry's end lets the zip layer check its CRC.
        let mut data = Vec::with_capacity(count.min(64 << 20));
        (&mut entry)
            .take(available + 1)
            .read_to_end(&mut data)
            .map_err(|e| ctx(format!("corrupt or truncated data: {e}")))?;
        if data.len() as u64 > available {
            return Err(ctx(format!(
                "corrupt data: decompresses to more than the {available} bytes the entry declares"
            )));
        }
        if data.len() != count {
            return Err(ctx(format!(
                "shape {:?} needs {count} bytes of data, the entry has {}",
                header.shape,
                data.len()
            )));
        }
        if header.fortran_order && header.shape.len() > 1 {
            data = fortran_to_c(&data, &header.shape);
        }
        Ok(U8Array {
            shape: header.shape,
            data,
        })
    }
}

struct NpyHeader {
    shape: Vec<usize>,
    fortran_order: bool,
    header_bytes: usize,
}

/// Parses the `.npy` preamble: magic, version, header dict.
fn read_npy_header(r: &mut impl Read) -> std::result::Result<NpyHeader, String> {
    let mut pre = [0u8; 8];
    r.read_exact(&mut pre)
        .map_err(|e| format!("not an .npy entry (cannot read its preamble: {e})"))?;
    if &pre[..6] != b"\x93NUMPY" {
        return Err("not an .npy entry (bad magic bytes)".into());
    }
    let (len, pre_len) = match pre[6] {
        1 => {
            let mut b = [0u8; 2];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            (u16::from_le_bytes(b) as usize, 10)
        }
        2 | 3 => {
            let mut b = [0u8; 4];
            r.read_exact(&mut b)
                .map_err(|e| format!("truncated .npy header: {e}"))?;
            (u32::from_le_bytes(b) as usize, 12)
        }
        v => return Err(format!("unsupported .npy version {v}")),
    };
    if len > 1 << 16 {
        return Err(format!("implausible .npy header length {len}"));
    }
    let mut h = vec![0u8; len];
    r.read_exact(&mut h)
        .map_err(|e| format!("truncated .npy header: {e}"))?;
    let h = String::from_utf8_lossy(&h);
    let descr = dict_value(&h, "descr").ok_or("header has no 'descr'")?;
    let descr = descr.trim().trim_matches(|c| c == '\'' || c == '"');
    if !matches!(descr, "|u1" | "<u1" | ">u1" | "u1" | "|b1") {
        return Err(format!(
            "wrong dtype {descr:?}, expected uint8 ('|u1') as in MedMNIST"
        ));
    }
    let fortran = dict_value(&h, "fortran_order").ok_or("header has no 'fortran_order'")?;
    let fortran_order = match fortran.trim() {
        "True" => true,
        "False" => false,
        other => return Err(format!("bad fortran_order {other:?}")),
    };
    let shape_s = dict_value(&h, "shape").ok_or("header has no 'shape'")?;
    let inner = shape_s
        .trim()
        .strip_prefix('(')
        .and_then(|s| s.strip_suffix(')'))
        .ok_or_else(|| format!("bad shape {shape_s:?}"))?;
    let shape = inner
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| s.trim_end_matches('L').parse::<usize>())
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|_| format!("bad shape {shape_s:?}"))?;
    Ok(NpyHeader {
        shape,
        fortran_order,
        header_bytes: pre_len + len,
    })
}

/// The text of `key`'s value in a Python dict literal (no nesting beyond
/// one tuple level, which is all `.npy` headers use).
fn dict_value<'a>(h: &'a str, key: &str) -> Option<&'a str> {
    let pat1 = format!("'{key}'");
    let pat2 = format!("\"{key}\"");
    let start = h
        .find(&pat1)
        .map(|i| i + pat1.len())
        .or_else(|| h.find(&pat2).map(|i| i + pat2.len()))?;
    let rest = h[start..].trim_start().strip_prefix(':')?;
    let mut depth = 0i32;
    for (i, c) in rest.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' | '}' if depth == 0 => return Some(&rest[..i]),
            _ => {}
        }
        if depth < 0 {
            return None;
        }
    }
    None
}

fn fortran_to_c(data: &[u8], shape: &[usize]) -> Vec<u8> {
    use ndarray::ShapeBuilder;
    let arr = ndarray::ArrayViewD::from_shape(ndarray::IxDyn(shape).f(), data);
    match arr {
        Ok(a) => a.as_standard_layout().iter().copied().collect(),
        Err(_) => data.to_vec(),
    }
}

/// How entries are stored in a written npz.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Compression {
    Stored,
    Deflated,
}

/// Writes uint8 arrays into an npz; the file appears at its final name only
/// when [`NpzWriter::finish`] succeeds (temp file, then rename).
pub struct NpzWriter {
    final_path: PathBuf,
    tmp_path: PathBuf,
    zip: Option<zip::ZipWriter<File>>,
    compression: Compression,
}

impl NpzWriter {
    pub fn create(path: impl AsRef<Path>, compression: Compression) -> Result<Self> {
        let final_path = path.as_ref().to_path_buf();
        if let Some(dir) = final_path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        }
        let tmp_path = crate::util::tmp_sibling(&final_path);
        let file = File::create(&tmp_path).map_err(|e| Error::io(&tmp_path, e))?;
        Ok(NpzWriter {
            final_path,
            tmp_path,
            zip: Some(zip::ZipWriter::new(file)),
            compression,
        })
    }

    /// Adds `key.npy` holding `data` with `shape` (C order, uint8).
    pub fn add_u8(&mut self, key: &str, shape: &[usize], data: &[u8]) -> Result<()> {
        self.add(key, "|u1", shape, data.len(), data)
    }

    /// Adds `key.npy` holding `data` with `shape` (C order, little-endian
    /// float32).
    pub fn add_f32(&mut self, key: &str, shape: &[usize], data: &[f32]) -> Result<()> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(key, "<f4", shape, data.len(), &bytes)
    }

    /// Adds `key.npy` holding `data` with `shape` (C order, little-endian
    /// int64).
    pub fn add_i64(&mut self, key: &str, shape: &[usize], data: &[i64]) -> Result<()> {
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.add(key, "<i8", shape, data.len(), &bytes)
    }

    fn add(
        &mut self,
        key: &str,
        descr: &str,
        shape: &[usize],
        n: usize,
        data: &[u8],
    ) -> Result<()> {
        let count: usize = shape.iter().product();
        if count != n {
            return Err(Error::invalid(
                format!("array {key}"),
                format!("shape {shape:?} holds {count} values but {n} were given"),
            ));
        }
        let method = match self.compression {
            Compression::Stored => zip::CompressionMethod::Stored,
            Compression::Deflated => zip::CompressionMethod::Deflated,
        };
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(method)
            .large_file(data.len() > (1 << 31));
        let tmp = self.tmp_path.clone();
        let zip = self
            .zip
            .as_mut()
            .ok_or_else(|| Error::invalid("npz writer", "already finished"))?;
        zip.start_file(format!("{key}.npy"), opts)
            .map_err(|e| Error::bad_file(&tmp, format!("cannot add {key}: {e}")))?;
        zip.write_all(&npy_header_typed(descr, shape))
            .map_err(|e| Error::io(&tmp, e))?;
        zip.write_all(data).map_err(|e| Error::io(&tmp, e))?;
        Ok(())
    }

    /// Finishes the archive and renames it into place.
    pub fn finish(mut self) -> Result<PathBuf> {
        let zip = self
            .zip
            .take()
            .ok_or_else(|| Error::invalid("npz writer", "already finished"))?;
        let file = zip
            .finish()
            .map_err(|e| Error::bad_file(&self.tmp_path, format!("cannot finish zip: {e}")))?;
        file.sync_all().map_err(|e| Error::io(&self.tmp_path, e))?;
        std::fs::rename(&self.tmp_path, &self.final_path)
            .map_err(|e| Error::io(&self.final_path, e))?;
        Ok(self.final_path.clone())
    }
}

impl Drop for NpzWriter {
    fn drop(&mut self) {
        if self.zip.is_some() {
            let _ = std::fs::remove_file(&self.tmp_path);
        }
    }
}

/// A version-1 `.npy` header for a C-order uint8 array, padded to 64 bytes
/// as numpy does.
pub fn npy_header(shape: &[usize]) -> Vec<u8> {
    npy_header_typed("|u1", shape)
}

/// [`npy_header`] for the numpy type `descr` (`|u1`, `<f4`, `<i8`).
pub fn npy_header_typed(descr: &str, shape: &[usize]) -> Vec<u8> {
    let dims = match shape.len() {
        1 => format!("{},", shape[0]),
        _ => shape
            .iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", "),
    };
    let mut dict = format!("{{'descr': '{descr}', 'fortran_order': False, 'shape': ({dims}), }}");
    let unpadded = 10 + dict.len() + 1;
    dict.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    dict.push('\n');
    let mut out = b"\x93NUMPY\x01\x00".to_vec();
    out.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    out.extend_from_slice(dict.as_bytes());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_is_numpy_compatible() {
        let h = npy_header(&[2, 3]);
        assert_eq!(h.len() % 64, 0);
        let s = String::from_utf8_lossy(&h[10..]);
        assert!(s.starts_with("{'descr': '|u1', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(s.ends_with('\n'));
        let h1 = npy_header(&[5]);
        assert!(String::from_utf8_lossy(&h1).contains("'shape': (5,)"));
    }

    #[test]
    fn roundtrip_and_fortran() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.npz");
        let mut w = NpzWriter::create(&p, Compression::Deflated).unwrap();
        w.add_u8("x", &[2, 3], &[1, 2, 3, 4, 5, 6]).unwrap();
        w.finish().unwrap();
        let mut r = NpzReader::open(&p).unwrap();
        assert_eq!(r.keys(), vec!["x".to_string()]);
        let a = r.read_u8("x").unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1, 2, 3, 4, 5, 6]);
        // Fortran order [[1,2,3],[4,5,6]] is stored column-major: 1 4 2 5 3 6.
        assert_eq!(
            fortran_to_c(&[1, 4, 2, 5, 3, 6], &[2, 3]),
            vec![1, 2, 3, 4, 5, 6]
        );
    }

    #[test]
    fn dropped_writer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.npz");
        {
            let mut w = NpzWriter::create(&p, Compression::Stored).unwrap();
            w.add_u8("x", &[1], &[1]).unwrap();
        }
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }
}
