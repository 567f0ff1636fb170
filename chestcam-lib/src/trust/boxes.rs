//! Ground truth from bounding boxes in NIH's `BBox_List_2017.csv` format
//! (`Image Index,Finding Label,Bbox [x,y,w,h],,,`: x, y, w, h on the
//! 1024 px original), joined to a data set by a CSV that names the NIH
//! image of each row (such as nih1000's `labels.csv`: `npz_split`,
//! `npz_index`, `image_index`), and scaled to the data set's size.
use crate::data::registry::{label_index, NUM_LABELS};
use crate::data::SplitName;
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::Path;

/// The side of the NIH originals that box coordinates refer to.
pub const NIH_SIDE: f64 = 1024.0;

/// One box of NIH's list.
#[derive(Debug, Clone, PartialEq)]
pub struct NihBox {
    pub image: String,
    pub label: usize,
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

fn read_lines(path: &Path) -> Result<Vec<Vec<String>>> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    Ok(text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            l.split(',')
                .map(|f| f.trim().trim_matches('"').to_string())
                .collect()
        })
        .collect())
}

/// NIH's finding names as chestcam's labels ("Infiltrate" is infiltration).
fn nih_label(name: &str) -> Result<usize> {
    let n = name.to_ascii_lowercase();
    label_index(if n == "infiltrate" {
        "infiltration"
    } else {
        &n
    })
}

/// Reads a box list in `BBox_List_2017.csv`'s format (a header row first).
pub fn read_bbox_csv(path: impl AsRef<Path>) -> Result<Vec<NihBox>> {
    let path = path.as_ref();
    let rows = read_lines(path)?;
    let mut out = Vec::new();
    for (i, r) in rows.iter().enumerate() {
        if i == 0
            && r.first()
                .is_some_and(|f| f.eq_ignore_ascii_case("Image Index"))
        {
            continue;
        }
        let bad = |why: String| Error::bad_file(path, format!("line {}: {why}", i + 1));
        if r.len() < 6 {
            return Err(bad(format!(
                "{} fields; expected Image Index, Finding Label, x, y, w, h",
                r.len()
            )));
        }
        let label = nih_label(&r[1]).map_err(|e| bad(e.to_string()))?;
        let num = |k: usize| -> Result<f64> {
            r[k].parse::<f64>()
                .ok()
                .filter(|v| v.is_finite())
                .ok_or_else(|| bad(format!("{:?} is not a number", r[k])))
        };
        let b = NihBox {
            image: r[0].clone(),
            label,
            x: num(2)?,
            y: num(3)?,
            w: num(4)?,
            h: num(5)?,
        };
        if b.w <= 0.0 || b.h <= 0.0 {
            return Err(bad(format!("box of width {} and height {}", b.w, b.h)));
        }
        out.push(b);
    }
    Ok(out)
}

/// The NIH image name of each row of `split`, from a CSV with a header
/// holding `image_index` (or `Image Index`), and `npz_split` plus
/// `npz_index`; without those two, the rows are the split's rows in order.
pub fn read_names_csv(
    path: impl AsRef<Path>,
    split: SplitName,
    n: usize,
) -> Result<Vec<Option<String>>> {
    let path = path.as_ref();
    let rows = read_lines(path)?;
    let header = rows
        .first()
        .ok_or_else(|| Error::bad_file(path, "empty file; expected a header row"))?;
    let col = |names: &[&str]| {
        header
            .iter()
            .position(|h| names.iter().any(|n| h.eq_ignore_ascii_case(n)))
    };
    let name_col = col(&["image_index", "Image Index"]).ok_or_else(|| {
        Error::bad_file(path, "no image_index (or Image Index) column in the header")
    })?;
    let (split_col, index_col) = (col(&["npz_split"]), col(&["npz_index"]));
    let mut names = vec![None; n];
    for (i, r) in rows.iter().enumerate().skip(1) {
        let bad = |why: String| Error::bad_file(path, format!("line {}: {why}", i + 1));
        let field = |c: usize| {
            r.get(c)
                .ok_or_else(|| bad(format!("{} fields, column {} missing", r.len(), c + 1)))
        };
        let idx = match (split_col, index_col) {
            (Some(s), Some(k)) => {
                if field(s)?.as_str() != split.as_str() {
                    continue;
                }
                field(k)?
                    .parse::<usize>()
                    .map_err(|_| bad(format!("npz_index {:?} is not a number", r[k])))?
            }
            _ => i - 1,
        };
        if idx >= n {
            return Err(bad(format!(
                "index {idx} but the {split} split has {n} images"
            )));
        }
        names[idx] = Some(field(name_col)?.clone());
    }
    Ok(names)
}

/// Masks `[n, 14, size, size]` (0/1 bytes) from the boxes of each row's NIH
/// image, scaled from 1024 px (a box covers every pixel it touches), and
/// how many boxes were placed.
pub fn box_masks(boxes: &[NihBox], names: &[Option<String>], size: usize) -> (Vec<u8>, usize) {
    let mut rows: HashMap<&str, Vec<usize>> = HashMap::new();
    for (i, n) in names.iter().enumerate() {
        if let Some(n) = n {
            rows.entry(n.as_str()).or_default().push(i);
        }
    }
    let px = size * size;
    let mut out = vec![0u8; names.len() * NUM_LABELS * px];
    let mut placed = 0;
    let scale = size as f64 / NIH_SIDE;
    let span = |a: f64, len: f64| {
        let lo = ((a * scale).floor().max(0.0) as usize).min(size);
        let hi = (((a + len) * scale).ceil().max(0.0) as usize).min(size);
        lo..hi
    };
    for b in boxes {
        let Some(idx) = rows.get(b.image.as_str()) else {
            continue;
        };
        for &i in idx {
            let base = (i * NUM_LABELS + b.label) * px;
            for y in span(b.y, b.h) {
                for x in span(b.x, b.w) {
                    out[base + y * size + x] = 1;
                }
            }
            placed += 1;
        }
    }
    (out, placed)
}
