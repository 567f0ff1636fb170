//! Synthetic chest "phantoms": deterministic by seed, at any size from 28
//! to 224, in the ChestMNIST layout. Each of the 14 labels is a localised
//! pattern in its typical place, and every image carries a ground-truth mask
//! per label (where that pattern was drawn), so heatmaps can be scored.
//!
//! These are NOT X-rays. Every result computed on them is labelled
//! "synthetic" (see [`super::Provenance`]).
use super::registry::NUM_LABELS;
use super::{Dataset, Provenance, Split, SplitName};
use crate::util::Rng;
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// ChestMNIST's training prevalence per label (fraction positive), in label
/// order, floored at 2% so that every label shows up in small sets.
pub const DEFAULT_PREVALENCE: [f64; NUM_LABELS] = [
    0.103, 0.025, 0.119, 0.177, 0.051, 0.056, 0.02, 0.047, 0.042, 0.021, 0.023, 0.02, 0.03, 0.02,
];

/// The most memory a phantom set (images and masks) may take.
pub const MAX_BYTES: u64 = 8 << 30;

/// What to generate.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct PhantomConfig {
    /// Image side, 28..=224.
    pub size: usize,
    /// Images per split: train, val, test.
    pub counts: [usize; 3],
    pub seed: u64,
    /// Target fraction positive per label before co-occurrence is added.
    pub prevalence: [f64; NUM_LABELS],
}

impl Default for PhantomConfig {
    fn default() -> Self {
        PhantomConfig {
            size: 28,
            counts: [2000, 300, 500],
            seed: 0,
            prevalence: DEFAULT_PREVALENCE,
        }
    }
}

/// Ground-truth masks: `[n, 14, size, size]` of 0/1 per split.
#[derive(Debug, Clone, PartialEq)]
pub struct Masks {
    pub size: usize,
    pub train: Vec<u8>,
    pub val: Vec<u8>,
    pub test: Vec<u8>,
}

impl Masks {
    pub fn split(&self, name: SplitName) -> &[u8] {
        match name {
            SplitName::Train => &self.train,
            SplitName::Val => &self.val,
            SplitName::Test => &self.test,
        }
    }

    /// The mask of image `i`, label `k` (`size * size` bytes).
    pub fn mask(&self, split: SplitName, i: usize, k: usize) -> &[u8] {
        let s = self.size * self.size;
        let off = (i * NUM_LABELS + k) * s;
        &self.split(split)[off..off + s]
    }
}

impl PhantomConfig {
    /// Refuses a size outside 28..=224 and counts whose images would not fit in memory.
    pub(crate) fn check(&self) -> Result<()> {
        if !(28..=224).contains(&self.size) {
            return Err(Error::invalid(
                "phantom size",
                format!("{} (must be 28 to 224)", self.size),
            ));
        }
        // Images and a mask per label: refuse before allocating what the
        // machine cannot hold.
        let per_image = (self.size * self.size * (1 + NUM_LABELS)) as u128;
        let bytes = self.counts.iter().map(|&c| c as u128).sum::<u128>() * per_image;
        if bytes > MAX_BYTES as u128 {
            return Err(Error::invalid(
                "phantom counts",
                format!(
                    "{:?} images of {} px need {:.1} GiB for images and masks (at most {} GiB)",
                    self.counts,
                    self.size,
                    bytes as f64 / (1u64 << 30) as f64,
                    MAX_BYTES >> 30
                ),
            ));
        }
        if let Some((k, p)) = self
            .prevalence
            .iter()
            .enumerate()
            .find(|(_, p)| !(0.0..=1.0).contains(*p))
        {
            return Err(Error::invalid(
                "phantom prevalence",
                format!("label {k}: {p} is not in [0, 1]"),
            ));
        }
        Ok(())
    }

    /// Generates the data set and its masks.
    pub fn generate(&self) -> Result<(Dataset, Masks)> {
        self.check()?;
        let mut splits = Vec::new();
        let mut masks = Vec::new();
        for (si, name) in SplitName::ALL.into_iter().enumerate() {
            let n = self.counts[si];
            let px = self.size * self.size;
            let mut images = Vec::with_capacity(n * px);
            let mut labels = Vec::with_capacity(n * NUM_LABELS);
            let mut m = Vec::with_capacity(n * NUM_LABELS * px);
            for i in 0..n {
                // One stream per image: order-independent and reproducible.
                let mut rng = Rng::new(
                    self.seed.wrapping_mul(0x1000_0000_01B3) ^ ((si as u64) << 40) ^ i as u64,
                );
                let lab = sample_labels(&mut rng, &self.prevalence);
                let (img, mask) = render(&mut rng, self.size, &lab, true);
                images.extend_from_slice(&img);
                labels.extend(lab.iter().map(|&b| b as u8));
                m.extend_from_slice(&mask);
            }
            splits.push(Split {
                name,
                size: self.size,
                images,
                labels,
            });
            masks.push(m);
        }
        let mut it = splits.into_iter();
        let mut mt = masks.into_iter();
        let (Some(train), Some(val), Some(test)) = (it.next(), it.next(), it.next()) else {
            return Err(Error::invalid("phantoms", "internal: missing split"));
        };
        let (Some(mtr), Some(mva), Some(mte)) = (mt.next(), mt.next(), mt.next()) else {
            return Err(Error::invalid("phantoms", "internal: missing masks"));
        };
        Ok((
            Dataset {
                provenance: Provenance {
                    name: format!("synthetic phantoms ({} px, seed {})", self.size, self.seed),
                    source: super::source::DataSource::Synthetic(self.clone()).to_string(),
                    path: None,
                    synthetic: true,
                },
                size: self.size,
                train,
                val,
                test,
            },
            Masks {
                size: self.size,
                train: mtr,
                val: mva,
                test: mte,
            },
        ))
    }

    /// Generates and writes `dir/phantom_<size>_seed<seed>.npz` and its
    /// companion `..._masks.npz` (keys `{split}_masks`, `[n, 14, S, S]`).
    pub fn write(&self, dir: impl AsRef<Path>) -> Result<(PathBuf, PathBuf)> {
        let (d, m) = self.generate()?;
        let base = dir
            .as_ref()
            .join(format!("phantom_{}_seed{}", self.size, self.seed));
        let data_path = d.save_npz(base.with_extension("npz"))?;
        let mask_path = PathBuf::from(format!("{}_masks.npz", base.display()));
        let mut w = super::npz::NpzWriter::create(&mask_path, super::npz::Compression::Deflated)?;
        for name in SplitName::ALL {
            let n = d.split(name).len();
            w.add_u8(
                &format!("{name}_masks"),
                &[n, NUM_LABELS, m.size, m.size],
                m.split(name),
            )?;
        }
        Ok((data_path, w.finish()?))
    }
}

/// Independent draws, then clinical co-occurrence (effusion with
/// cardiomegaly and edema, atelectasis with effusion, infiltration and
/// consolidation with pneumonia, nodules with masses, emphysema with
/// pneumothorax).
fn sample_labels(rng: &mut Rng, prev: &[f64; NUM_LABELS]) -> [bool; NUM_LABELS] {
    let mut l = [false; NUM_LABELS];
    for k in 0..NUM_LABELS {
        l[k] = rng.chance(prev[k]);
    }
    // (given, then, extra probability)
    const LINKS: [(usize, usize, f64); 7] = [
        (1, 2, 0.35),
        (9, 2, 0.4),
        (2, 0, 0.25),
        (6, 3, 0.4),
        (6, 8, 0.3),
        (4, 5, 0.2),
        (7, 10, 0.1),
    ];
    for (a, b, p) in LINKS {
        if l[a] && !l[b] && rng.chance(p) {
            l[b] = true;
        }
    }
    l
}

fn smoothstep(e0: f64, e1: f64, x: f64) -> f64 {
    let t = ((x - e0) / (e1 - e0)).clamp(0.0, 1.0);
    t * t * (3.0 - 2.0 * t)
}

/// An axis-aligned ellipse with soft edges about one pixel wide.
#[derive(Clone, Copy)]
struct Ellipse {
    cx: f64,
    cy: f64,
    rx: f64,
    ry: f64,
}

impl Ellipse {
    fn d(&self, u: f64, v: f64) -> f64 {
        (((u - self.cx) / self.rx).powi(2) + ((v - self.cy) / self.ry).powi(2)).sqrt()
    }
    /// Coverage in [0, 1] with an edge about `px` wide on each side of the
    /// outline, using the first-order signed distance `(d - 1) / |grad d|`
    /// so that thin ellipses get thin edges too.
    fn cov(&self, u: f64, v: f64, px: f64) -> f64 {
        // Nothing thinner than about a pixel, or small lesions vanish at 28 px.
        let e = Ellipse {
            rx: self.rx.max(1.3 * px),
            ry: self.ry.max(1.3 * px),
            ..*self
        };
        e.cov_exact(u, v, px)
    }

    fn cov_exact(&self, u: f64, v: f64, px: f64) -> f64 {
        let (dx, dy) = (u - self.cx, v - self.cy);
        let d = self.d(u, v);
        if d < 1e-9 {
            return 1.0;
        }
        let g =
            ((dx / (self.rx * self.rx)).powi(2) + (dy / (self.ry * self.ry)).powi(2)).sqrt() / d;
        let sd = (d - 1.0) / g.max(1e-9);
        1.0 - smoothstep(-px, px, sd)
    }
}

/// The anatomy of one patient (normalised coordinates, x right, y down;
/// the patient's left is the image's right).
struct Anatomy {
    body: Ellipse,
    lungs: [Ellipse; 2],
    heart: Ellipse,
    medi_half_width: f64,
    diaphragm_y: f64,
    rib_phase: f64,
    rib_gap: f64,
    gain: f64,
}

fn anatomy(rng: &mut Rng) -> Anatomy {
    let j = |rng: &mut Rng, a: f64| rng.range(-a, a);
    let lung_ry = 0.27 + j(rng, 0.03);
    let lung_cy = 0.45 + j(rng, 0.03);
    let spread = 0.18 + j(rng, 0.02);
    let lung = |cx: f64, rng: &mut Rng| Ellipse {
        cx,
        cy: lung_cy + j(rng, 0.01),
        rx: 0.13 + j(rng, 0.015),
        ry: lung_ry,
    };
    let l0 = lung(0.5 - spread, rng);
    let l1 = lung(0.5 + spread, rng);
    Anatomy {
        body: Ellipse {
            cx: 0.5 + j(rng, 0.02),
            cy: 0.56,
            rx: 0.42 + j(rng, 0.04),
            ry: 0.52,
        },
        lungs: [l0, l1],
        heart: Ellipse {
            cx: 0.55 + j(rng, 0.02),
            cy: lung_cy + lung_ry * 0.62,
            rx: 0.11 + j(rng, 0.01),
            ry: 0.1 + j(rng, 0.01),
        },
        medi_half_width: 0.055 + j(rng, 0.01),
        diaphragm_y: lung_cy + lung_ry * 0.92,
        rib_phase: rng.range(0.0, 1.0),
        rib_gap: 0.085 + j(rng, 0.008),
        gain: 1.0 + j(rng, 0.08),
    }
}

/// One lesion: a density change `amount * coverage(u, v)`.
struct Lesion {
    label: usize,
    amount: f64,
    shape: Shape,
}

enum Shape {
    Blob(Ellipse),
    Blobs(Vec<Ellipse>),
    /// Bottom of a lung above a meniscus: (lung, top y).
    Base(Ellipse, f64),
    /// Apex of a lung: (lung, bottom y); removes markings.
    Apex(Ellipse, f64),
    /// Whole lungs.
    Lungs([Ellipse; 2]),
    /// Reticular stripes in the lower outer zone of a lung.
    Stripes(Ellipse, f64),
    /// A band along a lung's outer wall: (lung, side sign).
    Wall(Ellipse, f64),
}

fn lesions(rng: &mut Rng, a: &mut Anatomy, labels: &[bool; NUM_LABELS]) -> Vec<Lesion> {
    let mut out = Vec::new();
    let side = |rng: &mut Rng| rng.below(2);
    for (k, _) in labels.iter().enumerate().filter(|(_, &on)| on) {
        let lung_i = side(rng);
        let lung = a.lungs[lung_i];
        let outward = if lung_i == 0 { -1.0 } else { 1.0 };
        let shape = match k {
            // atelectasis: a flat band of density in a lower lung zone
            0 => Shape::Blob(Ellipse {
                cx: lung.cx + rng.range(-0.03, 0.03),
                cy: lung.cy + lung.ry * rng.range(0.3, 0.5),
                rx: lung.rx * 0.75,
                ry: 0.035,
            }),
            // cardiomegaly: the heart widened (drawn below as heart change)
            1 => {
                a.heart.rx *= rng.range(1.45, 1.65);
                a.heart.ry *= 1.15;
                a.heart.cx += 0.02;
                Shape::Blob(a.heart)
            }
            // effusion: bright fill at a lung base
            2 => Shape::Base(lung, lung.cy + lung.ry * rng.range(0.35, 0.55)),
            // infiltration: patchy haze over a mid zone
            3 => Shape::Blobs(
                (0..4)
                    .map(|_| Ellipse {
                        cx: lung.cx + rng.range(-0.06, 0.06),
                        cy: lung.cy + rng.range(-0.08, 0.12),
                        rx: rng.range(0.04, 0.06),
                        ry: rng.range(0.04, 0.06),
                    })
                    .collect(),
            ),
            // mass: a large round opacity
            4 => Shape::Blob(spot(rng, &lung, (0.06, 0.085), 0.04, (-0.12, 0.08))),
            // nodule: a small bright spot
            5 => Shape::Blob(spot(rng, &lung, (0.028, 0.038), 0.06, (-0.15, 0.1))),
            // pneumonia: a lobar opacity in a lower lobe
            6 => Shape::Blob(Ellipse {
                cx: lung.cx + outward * 0.02,
                cy: lung.cy + lung.ry * 0.45,
                rx: lung.rx * 0.85,
                ry: lung.ry * 0.35,
            }),
            // pneumothorax: a dark rim at an apex, no markings
            7 => Shape::Apex(lung, lung.cy - lung.ry * rng.range(0.35, 0.5)),
            // consolidation: a dense homogeneous opacity, mid zone
            8 => Shape::Blob(Ellipse {
                cx: lung.cx + rng.range(-0.03, 0.03),
                cy: lung.cy + rng.range(-0.02, 0.06),
                rx: lung.rx * 0.55,
                ry: lung.ry * 0.3,
            }),
            // edema: bilateral perihilar haze (bat wings)
            9 => Shape::Blobs(
                a.lungs
                    .iter()
                    .map(|l| Ellipse {
                        cx: l.cx + (0.5 - l.cx) * 0.35,
                        cy: l.cy + 0.02,
                        rx: l.rx * 0.6,
                        ry: l.ry * 0.35,
                    })
                    .collect(),
            ),
            // emphysema: hyperlucent, larger lungs, flat diaphragm
            10 => {
                for l in a.lungs.iter_mut() {
                    l.ry *= 1.08;
                    l.rx *= 1.05;
                }
                a.diaphragm_y += 0.03;
                Shape::Lungs(a.lungs)
            }
            // fibrosis: reticular lines, lower outer zone
            11 => Shape::Stripes(lung, outward),
            // pleural thickening: a band along the outer wall
            12 => Shape::Wall(lung, outward),
            // hernia: a retrocardiac round gas shadow with a darker bubble
            _ => Shape::Blob(Ellipse {
                cx: 0.5 + rng.range(-0.02, 0.02),
                cy: a.diaphragm_y - 0.03,
                rx: 0.07,
                ry: 0.06,
            }),
        };
        let amount = match k {
            1 => 0.0, // drawn through the heart itself
            7 => -0.35,
            10 => -0.12,
            13 => -0.3, // gas in the herniated stomach, behind the bright heart
            2 | 4 | 5 | 8 | 12 => 0.4,
            6 => 0.3,
            9 | 3 => 0.2,
            _ => 0.25,
        };
        out.push(Lesion {
            label: k,
            amount,
            shape,
        });
    }
    out
}

/// A round spot in `lung`: radius drawn from `r`, centre shifted by up to
/// `dx` sideways and by `dy` vertically.
fn spot(rng: &mut Rng, lung: &Ellipse, r: (f64, f64), dx: f64, dy: (f64, f64)) -> Ellipse {
    let r = rng.range(r.0, r.1);
    Ellipse {
        cx: lung.cx + rng.range(-dx, dx),
        cy: lung.cy + rng.range(dy.0, dy.1),
        rx: r,
        ry: r,
    }
}

/// Coverage of a lesion shape at (u, v).
fn coverage(s: &Shape, u: f64, v: f64, px: f64) -> f64 {
    match s {
        Shape::Blob(e) => e.cov(u, v, px),
        Shape::Blobs(es) => es.iter().map(|e| e.cov(u, v, px)).fold(0.0, f64::max),
        Shape::Base(l, top) => {
            // Meniscus: the fluid line curves up at the outer wall.
            let curve = 0.06 * ((u - l.cx) / l.rx).powi(2);
            l.cov(u, v, px) * smoothstep(top - curve - px, top - curve + px, v)
        }
        Shape::Apex(l, bottom) => l.cov(u, v, px) * (1.0 - smoothstep(bottom - px, bottom + px, v)),
        Shape::Lungs(ls) => ls[0].cov(u, v, px).max(ls[1].cov(u, v, px)),
        Shape::Stripes(l, outward) => {
            let zone = l.cov(u, v, px)
                * smoothstep(l.cy, l.cy + 0.08, v)
                * smoothstep(0.0, 0.5, (u - l.cx) * outward / l.rx + 0.3);
            let period = (3.0 * px).max(0.04);
            let stripe = 0.5 + 0.5 * (2.0 * std::f64::consts::PI * (u + v) / period).cos();
            zone * stripe.max(0.35)
        }
        Shape::Wall(l, outward) => {
            let d = l.d(u, v);
            let outer = (u - l.cx) * outward > 0.0;
            if outer && v > l.cy - l.ry * 0.6 {
                let w = (0.05f64).max(2.0 * px / l.rx);
                smoothstep(1.0 - w - 0.05, 1.0 - w, d) * (1.0 - smoothstep(1.0, 1.0 + 0.05, d))
            } else {
                0.0
            }
        }
    }
}

/// Renders one image and its 14 masks.
fn render(
    rng: &mut Rng,
    size: usize,
    labels: &[bool; NUM_LABELS],
    noise: bool,
) -> (Vec<u8>, Vec<u8>) {
    let mut a = anatomy(rng);
    let normal_heart = a.heart;
    let les = lesions(rng, &mut a, labels);
    let px = 1.0 / size as f64;
    let noise_sigma = if noise { rng.range(0.02, 0.04) } else { 0.0 };
    let mut img = vec![0u8; size * size];
    let mut masks = vec![0u8; NUM_LABELS * size * size];
    for y in 0..size {
        let v = (y as f64 + 0.5) * px;
        for x in 0..size {
            let u = (x as f64 + 0.5) * px;
            let body = a.body.cov(u, v, px);
            let mut val = 0.05 + 0.5 * body;
            // Lungs: dark fields with a gentle vertical gradient.
            let lung = a.lungs[0].cov(u, v, px).max(a.lungs[1].cov(u, v, px));
            val -= lung * (0.32 - 0.06 * (v - 0.3));
            // Markings: ribs as curved bands, vessels fading to the periphery.
            let rib_v = v - 0.04 * ((u - 0.5) * 4.0).powi(2) / 4.0;
            let rib =
                0.5 + 0.5 * (2.0 * std::f64::consts::PI * (rib_v / a.rib_gap + a.rib_phase)).cos();
            let mut markings = body * 0.09 * rib.powi(4);
            // Mediastinum and spine.
            let medi = 1.0
                - smoothstep(
                    a.medi_half_width - px,
                    a.medi_half_width + px,
                    (u - 0.5).abs(),
                );
            val += medi * body * 0.18 * smoothstep(0.05, 0.2, v);
            // Heart shadow and diaphragm.
            val += a.heart.cov(u, v, px) * 0.28;
            val += body * smoothstep(a.diaphragm_y - px, a.diaphragm_y + 2.0 * px, v) * lung * 0.3;
            for l in &les {
                let c = coverage(&l.shape, u, v, px);
                if l.label == 7 {
                    markings *= 1.0 - c; // no lung markings beyond the pleural line
                }
                if l.label == 13 {
                    // the air bubble inside the hernia
                    if let Shape::Blob(e) = &l.shape {
                        let bubble = Ellipse {
                            rx: e.rx * 0.4,
                            ry: e.ry * 0.35,
                            cy: e.cy - e.ry * 0.3,
                            ..*e
                        };
                        val -= 0.15 * bubble.cov(u, v, px);
                    }
                }
                val += l.amount * c;
                let mask_c = if l.label == 1 {
                    // cardiomegaly: where the heart now is but was not
                    c * (1.0 - normal_heart.cov(u, v, px) * 0.6)
                } else {
                    c
                };
                if mask_c > 0.5 {
                    masks[(l.label * size + y) * size + x] = 1;
                }
            }
            val += markings;
            val *= a.gain;
            if noise {
                val += noise_sigma * rng.normal();
            }
            img[y * size + x] = (val.clamp(0.0, 1.0) * 255.0).round() as u8;
        }
    }
    (img, masks)
}

/// Renders one phantom with the given labels: `(image [S*S], masks
/// [14*S*S])`. The same `seed` gives the same anatomy whatever the labels,
/// so two renders differ only by the lesions; `noise = false` leaves the
/// noise out (for checking masks against what was drawn).
pub fn render_one(
    seed: u64,
    size: usize,
    labels: &[bool; NUM_LABELS],
    noise: bool,
) -> Result<(Vec<u8>, Vec<u8>)> {
    if !(28..=224).contains(&size) {
        return Err(Error::invalid(
            "phantom size",
            format!("{size} (must be 28 to 224)"),
        ));
    }
    Ok(render(&mut Rng::new(seed), size, labels, noise))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_and_sized() {
        let cfg = PhantomConfig {
            counts: [20, 5, 5],
            ..Default::default()
        };
        let (a, ma) = cfg.generate().unwrap();
        let (b, mb) = cfg.generate().unwrap();
        assert_eq!(a, b);
        assert_eq!(ma, mb);
        assert_eq!(a.train.images.len(), 20 * 28 * 28);
        assert_eq!(ma.train.len(), 20 * 14 * 28 * 28);
        let other = PhantomConfig {
            seed: 1,
            ..cfg.clone()
        }
        .generate()
        .unwrap()
        .0;
        assert_ne!(a.train.images, other.train.images);
        assert!(PhantomConfig {
            size: 27,
            ..cfg.clone()
        }
        .generate()
        .is_err());
        assert!(PhantomConfig { size: 225, ..cfg }.generate().is_err());
    }
}
