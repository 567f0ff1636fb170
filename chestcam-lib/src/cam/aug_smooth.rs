//! Test-time augmentation of the maps (pytorch-grad-cam's `aug_smooth`):
//! each augmented copy of the input gets its maps, which are mapped back to
//! the original frame and averaged (not rescaled, as pytorch-grad-cam).
//!
//! pytorch-grad-cam's set ([`AugSmooth::FlipBrightness`]) is a horizontal
//! flip times brightness factors 0.9, 1, 1.1 (6 passes). A flipped chest
//! X-ray is a different anatomy (the heart on the right, as in situs
//! inversus), one the model never saw, so its maps say little about the
//! image asked about: chestcam offers the flip for parity, but its default
//! ([`AugSmooth::ShiftsBrightness`]) shifts the image instead, by
//! `round(size / 28)` px (at least 1) diagonally both ways, with the edge
//! pixels repeated, times the same brightness factors (9 passes).
use crate::Result;
use tch::Tensor;

/// Which test-time augmentations to average over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AugSmooth {
    #[default]
    Off,
    /// Diagonal shifts of size / 28 px both ways x brightness 0.9, 1, 1.1.
    ShiftsBrightness,
    /// pytorch-grad-cam's: horizontal flip x brightness 0.9, 1, 1.1.
    FlipBrightness,
}

crate::choices!(AugSmooth, "aug smooth" {
    Off => "off" | "none",
    ShiftsBrightness => "shifts" | "shifts-brightness" | "on",
    FlipBrightness => "flip" | "flip-brightness",
});

const BRIGHTNESS: [f64; 3] = [0.9, 1.0, 1.1];

/// One augmentation: a geometric part (undone on the maps) and a factor.
#[derive(Debug, Clone, Copy)]
pub struct Augmentation {
    flip: bool,
    shift: i64,
    factor: f64,
}

impl AugSmooth {
    /// The augmentations, in pytorch-grad-cam's order for the flip set
    /// (ttach's product: flip outermost). Empty when off.
    pub fn augmentations(self, size: i64) -> Vec<Augmentation> {
        let geometric: Vec<(bool, i64)> = match self {
            AugSmooth::Off => return Vec::new(),
            AugSmooth::FlipBrightness => vec![(false, 0), (true, 0)],
            AugSmooth::ShiftsBrightness => {
                let s = ((size as f64 / 28.0).round() as i64).max(1);
                vec![(false, 0), (false, s), (false, -s)]
            }
        };
        geometric
            .into_iter()
            .flat_map(|(flip, shift)| {
                BRIGHTNESS.map(move |factor| Augmentation {
                    flip,
                    shift,
                    factor,
                })
            })
            .collect()
    }
}

/// `x` (`[n, c, H, W]`) moved by `d` px down and right, edges repeated.
fn shifted(x: &Tensor, d: i64) -> Result<Tensor> {
    if d == 0 {
        return Ok(x.shallow_clone());
    }
    let s = x.size();
    let p = d.abs();
    let padded = x.f_pad([p, p, p, p], "replicate", None)?;
    Ok(padded.f_narrow(2, p - d, s[2])?.f_narrow(3, p - d, s[3])?)
}

impl Augmentation {
    pub fn is_identity(&self) -> bool {
        !self.flip && self.shift == 0 && self.factor == 1.0
    }

    /// The augmented input (`[n, 1, H, W]`).
    pub fn apply(&self, x: &Tensor) -> Result<Tensor> {
        let mut y = shifted(x, self.shift)?;
        if self.flip {
            y = y.f_flip([3i64])?;
        }
        if self.factor != 1.0 {
            y = y.f_mul_scalar(self.factor)?;
        }
        Ok(y)
    }

    /// Maps (`[n, L, H, W]`) of the augmented input back in the original frame.
    pub fn undo(&self, maps: &Tensor) -> Result<Tensor> {
        let m = if self.flip {
            maps.f_flip([3i64])?
        } else {
            maps.shallow_clone()
        };
        shifted(&m, -self.shift)
    }
}
