//! Data: the ChestMNIST registry and downloader, the npz layout, datasets as
//! tch tensors, synthetic phantoms and the choice of source.
//!
//! Two entry points per data set: [`Dataset::chestmnist`] downloads (or
//! reuses the cache), [`Dataset::from_npz`] reads any MedMNIST-format file.

pub mod batches;
pub mod download;
pub mod fingerprint;
pub mod npz;
pub mod phantom;
pub mod registry;
pub mod source;
pub mod summary;
pub mod xray;

use crate::{Error, Result};
use registry::NUM_LABELS;
use std::path::{Path, PathBuf};

pub use batches::{Augment, Batches};
pub use fingerprint::{DataFingerprint, SplitFingerprint};

/// Which split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitName {
    Train,
    Val,
    Test,
}

impl SplitName {
    pub const ALL: [SplitName; 3] = [SplitName::Train, SplitName::Val, SplitName::Test];

    pub fn as_str(self) -> &'static str {
        match self {
            SplitName::Train => "train",
            SplitName::Val => "val",
            SplitName::Test => "test",
        }
    }
}

impl std::fmt::Display for SplitName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

crate::choices!(SplitName, "split" {
    Train => "train",
    Val => "val" | "valid" | "validation",
    Test => "test",
});

/// MedMNIST's normalisation of uint8 pixels: `(x / 255 - 0.5) / 0.5`,
/// as float in [-1, 1], on `x`'s device.
pub fn normalise(x: &tch::Tensor) -> Result<tch::Tensor> {
    Ok(x.f_to_kind(tch::Kind::Float)?
        .f_div_scalar(127.5)?
        .f_sub_scalar(1.0)?)
}

/// One split: grey uint8 images `[n, size, size]` and 0/1 labels `[n, 14]`,
/// row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    pub name: SplitName,
    pub size: usize,
    /// `n * size * size` bytes.
    pub images: Vec<u8>,
    /// `n * 14` bytes, each 0 or 1.
    pub labels: Vec<u8>,
}

impl Split {
    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len() / NUM_LABELS
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The pixels of image `i` (`size * size` bytes).
    pub fn image(&self, i: usize) -> &[u8] {
        let s = self.size * self.size;
        &self.images[i * s..(i + 1) * s]
    }

    /// The 14 labels of image `i`.
    pub fn label_row(&self, i: usize) -> &[u8] {
        &self.labels[i * NUM_LABELS..(i + 1) * NUM_LABELS]
    }

    /// Positives per label.
    pub fn positives(&self) -> [usize; NUM_LABELS] {
        let mut c = [0; NUM_LABELS];
        for row in self.labels.chunks_exact(NUM_LABELS) {
            for (k, &v) in row.iter().enumerate() {
                c[k] += v as usize;
            }
        }
        c
    }

    /// Fraction of images positive for each label (0 for an empty split).
    pub fn prevalence(&self) -> [f64; NUM_LABELS] {
        let n = self.len().max(1) as f64;
        self.positives().map(|c| c as f64 / n)
    }

    /// Images as a float tensor `[n, 1, size, size]` normalised as MedMNIST
    /// does (`(x / 255 - 0.5) / 0.5`, so in [-1, 1]), on `device`. This is
    /// four times the split's bytes: training and evaluation go a batch at
    /// a time instead ([`Split::images_u8`], [`normalise`]).
    pub fn images_tensor(&self, device: tch::Device) -> Result<tch::Tensor> {
        normalise(&self.images_u8(0, self.len())?.f_to_device(device)?)
    }

    /// Image `i` alone as a normalised float batch of one, `[1, 1, size,
    /// size]`, on `device` (the input a model takes; nothing else of the
    /// split is copied).
    pub fn image_tensor(&self, i: usize, device: tch::Device) -> Result<tch::Tensor> {
        normalise(&self.images_u8(i, 1)?.f_to_device(device)?)
    }

    /// Images `start..start + len` as uint8 `[len, 1, size, size]` on the
    /// CPU (a copy of just those bytes).
    pub fn images_u8(&self, start: usize, len: usize) -> Result<tch::Tensor> {
        let (s, n) = (self.size, self.len());
        if start + len > n {
            return Err(Error::invalid(
                "images",
                format!("{start}..{} of a split of {n}", start + len),
            ));
        }
        let bytes = &self.images[start * s * s..(start + len) * s * s];
        Ok(tch::Tensor::f_from_slice(bytes)?.f_view([len as i64, 1, s as i64, s as i64])?)
    }

    /// The first `n` images as uint8 `[n, 1, size, size]` on `device`,
    /// copied in chunks of at most 64 MiB, so the host never holds a second
    /// copy of the split (ChestMNIST-224's training split is 3.9 GB as
    /// uint8, 15.7 GB as float).
    pub fn images_u8_on(&self, n: usize, device: tch::Device) -> Result<tch::Tensor> {
        let (s, n) = (self.size as i64, n.min(self.len()));
        let out = tch::Tensor::f_empty([n as i64, 1, s, s], (tch::Kind::Uint8, device))?;
        let chunk = ((64usize << 20) / (self.size * self.size).max(1)).max(1);
        let mut start = 0;
        while start < n {
            let len = chunk.min(n - start);
            let mut dst = out.f_narrow(0, start as i64, len as i64)?;
            dst.f_copy_(&self.images_u8(start, len)?)?;
            start += len;
        }
        Ok(out)
    }

    /// The first `n` label rows as uint8 `[n, 14]` on `device`.
    pub fn head_labels(&self, n: usize, device: tch::Device) -> Result<tch::Tensor> {
        let n = n.min(self.len());
        Ok(tch::Tensor::f_from_slice(&self.labels[..n * NUM_LABELS])?
            .f_view([n as i64, NUM_LABELS as i64])?
            .f_to_device(device)?)
    }

    /// Labels as a float tensor `[n, 14]` of 0/1, on `device`.
    pub fn labels_tensor(&self, device: tch::Device) -> Result<tch::Tensor> {
        Ok(tch::Tensor::f_from_slice(&self.labels)?
            .f_view([self.len() as i64, NUM_LABELS as i64])?
            .f_to_kind(tch::Kind::Float)?
            .f_to_device(device)?)
    }

    /// The first `n` images (or all when fewer).
    pub fn head(&self, n: usize) -> Split {
        let n = n.min(self.len());
        Split {
            name: self.name,
            size: self.size,
            images: self.images[..n * self.size * self.size].to_vec(),
            labels: self.labels[..n * NUM_LABELS].to_vec(),
        }
    }

    /// The first `n` images, repeated from the start when the split has
    /// fewer, each resized to `size` px by nearest neighbour (pixel `i` of
    /// the new row reads pixel `i * old / size` of the old one, as numpy's
    /// `x[:, idx][:, :, idx]` with `idx = arange(size) * old // size` in
    /// `scripts/make_big_npz.py`). An empty split gives an empty one.
    pub fn tiled_resized(&self, n: usize, size: usize) -> Result<Split> {
        if size == 0 {
            return Err(Error::invalid("image size", "0 px"));
        }
        let (len, old) = (self.len(), self.size);
        let n = if len == 0 { 0 } else { n };
        let idx: Vec<usize> = (0..size).map(|i| i * old / size).collect();
        let mut images = Vec::with_capacity(n * size * size);
        let mut labels = Vec::with_capacity(n * NUM_LABELS);
        for k in 0..n {
            let src = self.image(k % len);
            for &r in &idx {
                images.extend(idx.iter().map(|&c| src[r * old + c]));
            }
            labels.extend_from_slice(self.label_row(k % len));
        }
        Ok(Split {
            name: self.name,
            size,
            images,
            labels,
        })
    }

    /// Validates sizes and values; `path` names the file in messages.
    fn check(&self, path: &Path) -> Result<()> {
        if let Some(pos) = self.labels.iter().position(|&v| v > 1) {
            let (i, k) = (pos / NUM_LABELS, pos % NUM_LABELS);
            return Err(Error::bad_file(
                path,
                format!(
                    "{}_labels: value {} at image {i}, label {k} ({}); labels must be 0 or 1",
                    self.name,
                    self.labels[pos],
                    registry::LABELS[k]
                ),
            ));
        }
        Ok(())
    }
}

/// Where a data set came from: shown wherever results are shown.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Provenance {
    /// A short name: `chestmnist`, `synthetic`, or the file name.
    pub name: String,
    /// The file it was read from, when any.
    pub path: Option<PathBuf>,
    /// The data-source string that loads exactly this data set again
    /// (`chestmnist:64`, `synthetic:28:400,100,100:0`, an absolute path).
    pub source: String,
    /// True for the phantom generator's images.
    pub synthetic: bool,
}

impl std::fmt::Display for Provenance {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.synthetic {
            write!(f, "{} (SYNTHETIC phantoms, not real X-rays)", self.name)
        } else {
            write!(f, "{}", self.name)
        }
    }
}

/// A MedMNIST-layout data set: train, val and test splits at one size.
#[derive(Debug, Clone, PartialEq)]
pub struct Dataset {
    pub provenance: Provenance,
    pub size: usize,
    pub train: Split,
    pub val: Split,
    pub test: Split,
}

impl Dataset {
    /// The split by name.
    pub fn split(&self, name: SplitName) -> &Split {
        match name {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }

    /// What identifies these images ([`fingerprint`]).
    pub fn fingerprint(&self) -> DataFingerprint {
        DataFingerprint::of(self)
    }

    /// Reads any MedMNIST-format npz (ChestMNIST's keys and shapes).
    pub fn from_npz(path: impl AsRef<Path>) -> Result<Dataset> {
        let path = path.as_ref();
        let mut r = npz::NpzReader::open(path)?;
        let mut splits = Vec::with_capacity(3);
        for name in SplitName::ALL {
            splits.push(read_split(&mut r, path, name)?);
        }
        let size = splits[0].size;
        if let Some(s) = splits.iter().find(|s| s.size != size) {
            return Err(Error::bad_file(
                path,
                format!(
                    "{}_images are {1}x{1} pixels but train_images are {size}x{size}",
                    s.name, s.size
                ),
            ));
        }
        let mut it = splits.into_iter();
        let (train, val, test) = match (it.next(), it.next(), it.next()) {
            (Some(a), Some(b), Some(c)) => (a, b, c),
            _ => return Err(Error::bad_file(path, "missing splits")),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        Ok(Dataset {
            provenance: Provenance {
                name,
                source: std::fs::canonicalize(path)
                    .unwrap_or_else(|_| path.to_path_buf())
                    .display()
                    .to_string(),
                path: Some(path.to_path_buf()),
                synthetic: false,
            },
            size,
            train,
            val,
            test,
        })
    }

    /// ChestMNIST at `size` (28, 64, 128 or 224): from the cache, else
    /// downloaded from Zenodo (or `$CHESTCAM_MIRROR`) and verified.
    pub fn chestmnist(
        size: usize,
        progress: &mut dyn crate::progress::Progress,
    ) -> Result<Dataset> {
        let path = fetch_chestmnist(size, &download::Downloader::default(), progress)?;
        let mut d = Dataset::from_npz(&path)?;
        d.provenance.name = format!("chestmnist ({size} px)");
        d.provenance.source = format!("chestmnist:{size}");
        Ok(d)
    }

    /// Writes the data set in the MedMNIST npz layout (deflated).
    pub fn save_npz(&self, path: impl AsRef<Path>) -> Result<PathBuf> {
        let mut w = npz::NpzWriter::create(path, npz::Compression::Deflated)?;
        for s in [&self.train, &self.val, &self.test] {
            w.add_u8(
                &format!("{}_images", s.name),
                &[s.len(), s.size, s.size],
                &s.images,
            )?;
            w.add_u8(
                &format!("{}_labels", s.name),
                &[s.len(), NUM_LABELS],
                &s.labels,
            )?;
        }
        w.finish()
    }
}

/// Downloads (or finds in the cache) ChestMNIST at `size`; returns its path.
/// The base URL is `$CHESTCAM_MIRROR` when set (ending in `/`), else Zenodo.
pub fn fetch_chestmnist(
    size: usize,
    downloader: &download::Downloader,
    progress: &mut dyn crate::progress::Progress,
) -> Result<PathBuf> {
    let file = registry::chestmnist(size)?;
    let mut base =
        std::env::var("CHESTCAM_MIRROR").unwrap_or_else(|_| registry::ZENODO_BASE.to_string());
    // A mirror given without its trailing `/` is a folder all the same.
    if !base.ends_with('/') {
        base.push('/');
    }
    let dest = crate::util::cache_dir().join(file.name);
    downloader.fetch(&file.url_under(&base), &dest, file.md5, progress)
}

/// Reads and checks one split's images and labels.
pub fn read_split<R: std::io::Read + std::io::Seek>(
    r: &mut npz::NpzReader<R>,
    path: &Path,
    name: SplitName,
) -> Result<Split> {
    let ik = format!("{name}_images");
    let lk = format!("{name}_labels");
    let img = r.read_u8(&ik)?;
    let lab = r.read_u8(&lk)?;
    let (n, size, images) = match img.shape.as_slice() {
        [n, h, w] if h == w => (*n, *h, img.data),
        [n, h, w, 3] if h == w => (*n, *h, rgb_to_grey(&img.data)),
        [n, h, w, 1] if h == w => (*n, *h, img.data),
        _ => {
            return Err(Error::bad_file(
                path,
                format!(
                    "{ik} has shape {:?}; expected N x S x S (grey) or N x S x S x 3 (RGB)",
                    img.shape
                ),
            ))
        }
    };
    if size == 0 {
        return Err(Error::bad_file(
            path,
            format!("{ik} has zero-sized images {:?}", img.shape),
        ));
    }
    match lab.shape.as_slice() {
        [m, k] if *k == NUM_LABELS => {
            if *m != n {
                return Err(Error::bad_file(
                    path,
                    format!("{ik} has {n} images but {lk} has {m} rows"),
                ));
            }
        }
        _ => {
            return Err(Error::bad_file(
                path,
                format!(
                    "{lk} has shape {:?}; expected N x {NUM_LABELS} (ChestMNIST's 14 findings)",
                    lab.shape
                ),
            ))
        }
    }
    let s = Split {
        name,
        size,
        images,
        labels: lab.data,
    };
    s.check(path)?;
    Ok(s)
}

/// PIL's `convert("L")`: `(R*19595 + G*38470 + B*7471 + 0x8000) >> 16`.
pub fn rgb_to_grey(rgb: &[u8]) -> Vec<u8> {
    rgb.chunks_exact(3)
        .map(|p| {
            ((p[0] as u32 * 19595 + p[1] as u32 * 38470 + p[2] as u32 * 7471 + 0x8000) >> 16) as u8
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn split(n: usize, size: usize) -> Split {
        Split {
            name: SplitName::Train,
            size,
            images: (0..n * size * size).map(|v| (v % 251) as u8).collect(),
            labels: (0..n * NUM_LABELS).map(|v| (v % 3 == 0) as u8).collect(),
        }
    }

    #[test]
    fn tiled_resized_repeats_images_and_picks_nearest_pixels() {
        let s = split(3, 4);
        // Same size: the images themselves, repeated from the start.
        let t = s.tiled_resized(7, 4).unwrap();
        assert_eq!(t.len(), 7);
        for k in 0..7 {
            assert_eq!(t.image(k), s.image(k % 3));
            assert_eq!(t.label_row(k), s.label_row(k % 3));
        }
        // Twice the size: every pixel becomes a 2x2 block.
        let up = s.tiled_resized(3, 8).unwrap();
        for k in 0..3 {
            for r in 0..8 {
                for c in 0..8 {
                    assert_eq!(up.image(k)[r * 8 + c], s.image(k)[(r / 2) * 4 + c / 2]);
                }
            }
        }
        // Down from 64 to 28, numpy's idx = arange(28) * 64 // 28:
        // 0, 2, 4, 6, 9, 11, 13, 16, ... 59, 61.
        let big = split(2, 64);
        let down = big.tiled_resized(2, 28).unwrap();
        let idx: Vec<usize> = (0..28).map(|i| i * 64 / 28).collect();
        assert_eq!(&idx[..8], &[0, 2, 4, 6, 9, 11, 13, 16]);
        assert_eq!(idx[27], 61);
        for (r, &sr) in idx.iter().enumerate() {
            for (c, &sc) in idx.iter().enumerate() {
                assert_eq!(down.image(1)[r * 28 + c], big.image(1)[sr * 64 + sc]);
            }
        }
        // An empty split stays empty; size 0 is refused.
        assert_eq!(split(0, 4).tiled_resized(5, 8).unwrap().len(), 0);
        assert!(s.tiled_resized(2, 0).is_err());
    }
}
