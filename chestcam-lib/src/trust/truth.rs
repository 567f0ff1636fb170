//! Ground truth for the images a trust report checks: the phantom masks
//! (regenerated for `synthetic` sources, or read from the `_masks.npz`
//! beside a phantom npz), a masks npz given by hand, or NIH boxes.
use super::boxes;
use super::report::Truth;
use crate::data::registry::NUM_LABELS;
use crate::data::source::DataSource;
use crate::data::SplitName;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use tch::Tensor;

/// Where the ground truth comes from.
#[derive(Debug, Clone, Default)]
pub struct TruthSource {
    /// A masks npz (`{split}_masks`, `[n, 14, S, S]` 0/1).
    pub masks: Option<PathBuf>,
    /// A box list in `BBox_List_2017.csv`'s format and the CSV naming the
    /// NIH image of each row.
    pub boxes: Option<(PathBuf, PathBuf)>,
}

fn masks_npz(path: &Path, split: SplitName, n: usize, size: usize) -> Result<Vec<u8>> {
    let key = format!("{split}_masks");
    let a = crate::data::npz::NpzReader::open(path)?.read_u8(&key)?;
    if a.shape != [n, NUM_LABELS, size, size] {
        return Err(Error::bad_file(
            path,
            format!("{key} has shape {:?}; expected [{n}, {NUM_LABELS}, {size}, {size}] for the {split} split", a.shape),
        ));
    }
    Ok(a.data)
}

/// The `_masks.npz` that `chestcam phantoms` writes beside `data`.
pub fn companion_masks(data: &Path) -> PathBuf {
    let stem = data.with_extension("");
    PathBuf::from(format!("{}_masks.npz", stem.display()))
}

/// The masks of the images `idx` of `split` (`n` images of `size` px in the
/// split), or None when the data set has no ground truth.
pub fn load_truth(
    data: &DataSource,
    split: SplitName,
    n: usize,
    size: usize,
    idx: &[usize],
    from: &TruthSource,
) -> Result<Option<Truth>> {
    let (all, what) = if let Some((bbox, names)) = &from.boxes {
        let b = boxes::read_bbox_csv(bbox)?;
        let rows = boxes::read_names_csv(names, split, n)?;
        let (m, placed) = boxes::box_masks(&b, &rows, size);
        if placed == 0 {
            return Err(Error::bad_file(
                bbox,
                format!(
                    "no box matches an image of the {split} split named in {}",
                    names.display()
                ),
            ));
        }
        (m, format!("{placed} NIH boxes from {}", bbox.display()))
    } else if let Some(p) = &from.masks {
        (
            masks_npz(p, split, n, size)?,
            format!("masks from {}", p.display()),
        )
    } else {
        match data {
            DataSource::Synthetic(cfg) => {
                let m = cfg.generate()?.1;
                (
                    m.split(split).to_vec(),
                    "phantom masks (regenerated)".to_string(),
                )
            }
            DataSource::Path(p) if companion_masks(p).is_file() => {
                let mp = companion_masks(p);
                (
                    masks_npz(&mp, split, n, size)?,
                    format!("phantom masks from {}", mp.display()),
                )
            }
            _ => return Ok(None),
        }
    };
    let px = NUM_LABELS * size * size;
    let picked: Vec<u8> = idx
        .iter()
        .flat_map(|&i| all[i * px..(i + 1) * px].to_vec())
        .collect();
    let (b, s) = (idx.len() as i64, size as i64);
    Ok(Some(Truth {
        masks: Tensor::f_from_slice(&picked)?.f_view([b, NUM_LABELS as i64, s, s])?,
        what,
    }))
}
