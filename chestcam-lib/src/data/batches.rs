//! Mini-batches over a split: shuffled by seed, optionally augmented.
use super::registry::NUM_LABELS;
use super::Split;
use crate::util::Rng;
use crate::{Error, Result};
use tch::{Device, Tensor};

/// Training-time augmentation. No horizontal flip by default: chests are
/// not left-right symmetric (the heart is on the left).
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Augment {
    /// Largest random shift in pixels, each axis (0 = none).
    pub max_shift: usize,
    /// Random brightness offset in normalised units, +/- this.
    pub brightness: f64,
    /// Random contrast factor in [1 - c, 1 + c].
    pub contrast: f64,
    /// Flip left-right with probability 0.5 (off by default).
    pub hflip: bool,
}

impl Default for Augment {
    fn default() -> Self {
        Augment {
            max_shift: 2,
            brightness: 0.1,
            contrast: 0.1,
            hflip: false,
        }
    }
}

/// Where a batch's rows come from.
enum Source<'a> {
    /// Whole-split tensors on a device (images uint8 or already float).
    Tensors { images: Tensor, labels: Tensor },
    /// The split's own bytes on the host: each batch's rows are gathered
    /// and sent to `device` alone, so nothing split-sized is allocated.
    Host { split: &'a Split, device: Device },
}

/// An iterator of `(images [b, 1, s, s], labels [b, 14])` batches: float
/// images normalised as MedMNIST does, float 0/1 labels.
pub struct Batches<'a> {
    source: Source<'a>,
    order: Vec<i64>,
    /// Row `i`'s labels are row `label_rows[i]`'s (data randomisation).
    label_rows: Option<Vec<i64>>,
    pos: usize,
    batch_size: usize,
    augment: Option<Augment>,
    rng: Rng,
}

/// A host batch on `device`. To a GPU it goes through pinned memory and a
/// non-blocking copy, so that the host gathers the next batch while the
/// device still works on this one (a blocking copy synchronises with the
/// device's stream, which empties its queue); where memory cannot be
/// pinned, a blocking copy. Training's streamed batches and every
/// evaluation batch go this way.
pub(crate) fn to_device(t: Tensor, device: Device) -> Result<Tensor> {
    if !device.is_cuda() {
        return Ok(t.f_to_device(device)?);
    }
    match crate::shim::pin_memory(&t) {
        Ok(pinned) => Ok(pinned.f_to_device_(device, pinned.kind(), true, false)?),
        Err(_) => Ok(t.f_to_device(device)?),
    }
}

impl<'a> Batches<'a> {
    /// Batches of `split` on `device`, gathered from the split's bytes a
    /// batch at a time. `seed = Some(s)` shuffles with that seed (same
    /// seed, same order); `None` keeps the file order.
    pub fn new(
        split: &'a Split,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
        device: Device,
    ) -> Result<Batches<'a>> {
        Self::from_host(split, split.len(), batch_size, seed, augment, device)
    }

    /// Batches of the first `n` images of `split`, streamed from the host.
    pub fn from_host(
        split: &'a Split,
        n: usize,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
        device: Device,
    ) -> Result<Batches<'a>> {
        let n = n.min(split.len());
        Self::build(
            Source::Host { split, device },
            n as i64,
            batch_size,
            seed,
            augment,
        )
    }

    /// Batches over whole-split tensors already on a device: images
    /// `[n,1,s,s]` as uint8 (normalised a batch at a time) or float, labels
    /// `[n,14]`.
    pub fn from_tensors(
        images: Tensor,
        labels: Tensor,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
    ) -> Result<Batches<'a>> {
        let n = images.size().first().copied().unwrap_or(0);
        let ln = labels.size().first().copied().unwrap_or(-1);
        if n != ln {
            return Err(Error::invalid(
                "batches",
                format!("{n} images but {ln} label rows"),
            ));
        }
        Self::build(
            Source::Tensors { images, labels },
            n,
            batch_size,
            seed,
            augment,
        )
    }

    fn build(
        source: Source<'a>,
        n: i64,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
    ) -> Result<Batches<'a>> {
        if batch_size == 0 {
            return Err(Error::invalid("batch size", "0 (must be at least 1)"));
        }
        let mut rng = Rng::new(seed.unwrap_or(0));
        let order = match seed {
            Some(_) => rng
                .permutation(n as usize)
                .into_iter()
                .map(|i| i as i64)
                .collect(),
            None => (0..n).collect(),
        };
        Ok(Batches {
            source,
            order,
            label_rows: None,
            pos: 0,
            batch_size,
            augment,
            rng,
        })
    }

    /// Gives row `i` the labels of row `rows[i]` (a permutation of the
    /// rows, for the data-randomisation sanity check: the images keep their
    /// place, their labels are another image's).
    pub fn with_labels_of(mut self, rows: Vec<i64>) -> Result<Self> {
        let n = self.order.len();
        let mut seen = vec![false; n];
        for &r in &rows {
            match seen.get_mut(r as usize) {
                Some(s) if r >= 0 && !*s => *s = true,
                _ => {
                    return Err(Error::invalid(
                        "label permutation",
                        format!("row {r} is not a new row of the {n} rows"),
                    ))
                }
            }
        }
        if rows.len() != n {
            return Err(Error::invalid(
                "label permutation",
                format!("{} rows for {n} images", rows.len()),
            ));
        }
        self.label_rows = Some(rows);
        Ok(self)
    }

    /// The rows `idx` as (normalised images, float labels).
    fn gather(&self, idx: &[i64]) -> Result<(Tensor, Tensor)> {
        let label_idx: Vec<i64> = match &self.label_rows {
            Some(rows) => idx.iter().map(|&i| rows[i as usize]).collect(),
            None => idx.to_vec(),
        };
        let (x, y) = match &self.source {
            Source::Tensors { images, labels } => {
                let i = Tensor::f_from_slice(idx)?.f_to_device(images.device())?;
                let li = Tensor::f_from_slice(&label_idx)?.f_to_device(labels.device())?;
                (
                    images.f_index_select(0, &i)?,
                    labels.f_index_select(0, &li)?,
                )
            }
            Source::Host { split, device, .. } => {
                let px = split.size * split.size;
                let mut xb = Vec::with_capacity(idx.len() * px);
                let mut yb = Vec::with_capacity(idx.len() * NUM_LABELS);
                for (&i, &li) in idx.iter().zip(&label_idx) {
                    xb.extend_from_slice(split.image(i as usize));
                    yb.extend_from_slice(split.label_row(li as usize));
                }
                let (b, s) = (idx.len() as i64, split.size as i64);
                (
                    to_device(Tensor::f_from_slice(&xb)?.f_view([b, 1, s, s])?, *device)?,
                    to_device(
                        Tensor::f_from_slice(&yb)?.f_view([b, NUM_LABELS as i64])?,
                        *device,
                    )?,
                )
            }
        };
        let x = match x.kind() {
            tch::Kind::Uint8 => super::normalise(&x)?,
            _ => x,
        };
        let y = match y.kind() {
            tch::Kind::Float => y,
            _ => y.f_to_kind(tch::Kind::Float)?,
        };
        Ok((x, y))
    }

    /// Number of batches.
    pub fn len(&self) -> usize {
        self.order.len().div_ceil(self.batch_size)
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }

    fn augment_batch(&mut self, x: Tensor, a: Augment) -> Result<Tensor> {
        let b = x.size()[0];
        let mut out = Vec::with_capacity(b as usize);
        for i in 0..b {
            let mut img = x.f_get(i)?; // [1, s, s]
            if a.max_shift > 0 {
                let m = a.max_shift as i64;
                let dy = self.rng.below(2 * a.max_shift + 1) as i64 - m;
                let dx = self.rng.below(2 * a.max_shift + 1) as i64 - m;
                img = shift(&img, dy, dx)?;
            }
            if a.hflip && self.rng.chance(0.5) {
                img = img.f_flip([2])?;
            }
            let c = 1.0 + self.rng.range(-a.contrast, a.contrast);
            let br = self.rng.range(-a.brightness, a.brightness);
            img = img.f_mul_scalar(c)?.f_add_scalar(br)?.f_clamp(-1.0, 1.0)?;
            out.push(img);
        }
        Ok(Tensor::f_stack(&out, 0)?)
    }
}

/// Shifts `[1, s, s]` by (dy, dx) pixels, filling with black (-1).
fn shift(img: &Tensor, dy: i64, dx: i64) -> Result<Tensor> {
    if dy == 0 && dx == 0 {
        return Ok(img.shallow_clone());
    }
    let s = img.size();
    let (h, w) = (s[1], s[2]);
    let m = dy.abs().max(dx.abs());
    let padded = img.f_pad([m, m, m, m], "constant", Some(-1.0))?;
    Ok(padded.f_narrow(1, m - dy, h)?.f_narrow(2, m - dx, w)?)
}

impl Iterator for Batches<'_> {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let idx = self.order[self.pos..end].to_vec();
        self.pos = end;
        let res = (|| {
            let (x, y) = self.gather(&idx)?;
            let x = match self.augment {
                Some(a) => self.augment_batch(x, a)?,
                None => x,
            };
            Ok((x, y))
        })();
        Some(res)
    }
}
