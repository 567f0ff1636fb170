//! Mini-batches over a split: shuffled by seed, optionally augmented.
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

/// An iterator of `(images [b, 1, s, s], labels [b, 14])` batches.
pub struct Batches {
    images: Tensor,
    labels: Tensor,
    order: Vec<i64>,
    pos: usize,
    batch_size: usize,
    augment: Option<Augment>,
    rng: Rng,
}

impl Batches {
    /// Batches of `split` on `device`. `seed = Some(s)` shuffles with that
    /// seed (same seed, same order); `None` keeps the file order.
    pub fn new(
        split: &Split,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
        device: Device,
    ) -> Result<Batches> {
        Self::from_tensors(
            split.images_tensor(device)?,
            split.labels_tensor(device)?,
            batch_size,
            seed,
            augment,
        )
    }

    /// Batches over tensors already prepared (`[n,1,s,s]`, `[n,14]`).
    pub fn from_tensors(
        images: Tensor,
        labels: Tensor,
        batch_size: usize,
        seed: Option<u64>,
        augment: Option<Augment>,
    ) -> Result<Batches> {
        if batch_size == 0 {
            return Err(Error::invalid("batch size", "0 (must be at least 1)"));
        }
        let n = images.size().first().copied().unwrap_or(0);
        let ln = labels.size().first().copied().unwrap_or(-1);
        if n != ln {
            return Err(Error::invalid(
                "batches",
                format!("{n} images but {ln} label rows"),
            ));
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
            images,
            labels,
            order,
            pos: 0,
            batch_size,
            augment,
            rng,
        })
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

impl Iterator for Batches {
    type Item = Result<(Tensor, Tensor)>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.pos >= self.order.len() {
            return None;
        }
        let end = (self.pos + self.batch_size).min(self.order.len());
        let idx = self.order[self.pos..end].to_vec();
        self.pos = end;
        let res = (|| {
            let idx = Tensor::f_from_slice(&idx)?.f_to_device(self.images.device())?;
            let x = self.images.f_index_select(0, &idx)?;
            let y = self.labels.f_index_select(0, &idx)?;
            let x = match self.augment {
                Some(a) => self.augment_batch(x, a)?,
                None => x,
            };
            Ok((x, y))
        })();
        Some(res)
    }
}
