//! The files `chestcam explain` writes: panel, GIFs, JSON, maps.
use super::Explanation;
use crate::data::registry::LABELS;
use crate::{Error, Result};
use std::path::Path;

impl Explanation {
    /// Writes `<name>_panel.png`, `<name>_fade.gif`, `<name>_labels.gif`
    /// and `<name>.json` (probabilities per label) into `dir`; refuses to
    /// replace an existing file unless `overwrite`. `context` (what was
    /// explained with what: run, checkpoint, image, stages) goes into the
    /// JSON as its `context` entry.
    pub fn write(
        &self,
        dir: &Path,
        frames: usize,
        delay_ms: u32,
        overwrite: bool,
        context: Option<&serde_json::Value>,
    ) -> Result<Vec<std::path::PathBuf>> {
        let paths = output_paths(dir, &self.name);
        if !overwrite {
            refuse_existing(&paths)?;
        }
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let [panel, fade, labels, json] = &paths;
        self.panel()?.save(panel)?;
        self.fade_gif(0, frames, delay_ms)?.save(fade)?;
        self.label_gif(delay_ms.max(400) * 2)?.save(labels)?;
        let probs: serde_json::Map<String, serde_json::Value> = LABELS
            .iter()
            .zip(&self.probs)
            .map(|(l, p)| (l.to_string(), serde_json::json!(p)))
            .collect();
        let mut v = serde_json::json!({
            "name": self.name, "method": self.method, "size": self.size,
            "probabilities": probs,
            "truth": self.truth.as_ref().map(|t| LABELS.iter().zip(t).filter(|(_, v)| **v == 1).map(|(l, _)| l.to_string()).collect::<Vec<_>>()),
            "shown": self.shown.iter().map(|&l| LABELS[l]).collect::<Vec<_>>(),
            "flat_maps": self.shown.iter().zip(&self.flat).filter(|(_, f)| **f).map(|(&l, _)| LABELS[l]).collect::<Vec<_>>(),
            "trust": self.shown.iter().zip(&self.trust).map(|(&l, t)| (LABELS[l].to_string(), serde_json::json!({
                "deletion_auc": t.deletion_auc,
                "random_cam_deletion_auc": t.random_cam_deletion_auc,
                "beats_random": t.beats_random(),
            }))).collect::<serde_json::Map<String, serde_json::Value>>(),
        });
        if let (Some(c), Some(o)) = (context, v.as_object_mut()) {
            o.insert("context".into(), c.clone());
        }
        let text =
            serde_json::to_string_pretty(&v).map_err(|e| Error::invalid("json", e.to_string()))?;
        crate::util::write_atomic(json, text.as_bytes())?;
        Ok(paths.to_vec())
    }
}

/// Which maps `--maps` writes beside the JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapsOut {
    /// As the method made them, before ReLU and scaling, at the
    /// activation's resolution.
    Raw,
    /// As shown: ReLU'd, scaled to [0, 1], at the input's resolution.
    Scaled,
    Both,
}

crate::choices!(MapsOut, "--maps" { Raw => "raw", Scaled => "scaled", Both => "both" });

impl Explanation {
    /// Writes `<name>_maps.npz` into `dir` (atomically), readable with
    /// `numpy.load`: `labels` (int64, the shown labels' indices, as in the
    /// JSON), and `raw` (`[L, h, w]` float32) and/or `scaled` (`[L, H, W]`
    /// float32).
    pub fn write_maps(&self, dir: &Path, which: MapsOut) -> Result<std::path::PathBuf> {
        use crate::data::npz::{Compression, NpzWriter};
        let path = maps_path(dir, &self.name);
        let mut w = NpzWriter::create(&path, Compression::Deflated)?;
        let labels: Vec<i64> = self.shown.iter().map(|&l| l as i64).collect();
        w.add_i64("labels", &[labels.len()], &labels)?;
        let l = self.shown.len();
        if which != MapsOut::Scaled {
            let flat: Vec<f32> = self.raw.concat();
            w.add_f32("raw", &[l, self.raw_side, self.raw_side], &flat)?;
        }
        if which != MapsOut::Raw {
            let flat: Vec<f32> = self.maps.concat();
            w.add_f32("scaled", &[l, self.size, self.size], &flat)?;
        }
        w.finish()
    }
}

/// The file [`Explanation::write_maps`] writes for `name` in `dir`.
pub fn maps_path(dir: &Path, name: &str) -> std::path::PathBuf {
    dir.join(format!("{}_maps.npz", output_stem(name)))
}

/// A file-name stem for an explained image's outputs: its name with every
/// letter and digit kept (any script: `胸部.png` stays `胸部.png`) and
/// anything else (separators, spaces, control characters) as `_`.
pub fn output_stem(name: &str) -> String {
    let mut stem: String = name
        .chars()
        .map(|c| {
            if c.is_alphanumeric() || matches!(c, '-' | '_' | '.' | '+') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if stem.starts_with('.') {
        stem.replace_range(..1, "_");
    }
    if stem.is_empty() {
        stem = "image".into();
    }
    stem
}

/// The four files [`Explanation::write`] writes for `name` in `dir`.
pub fn output_paths(dir: &Path, name: &str) -> [std::path::PathBuf; 4] {
    let stem = output_stem(name);
    ["_panel.png", "_fade.gif", "_labels.gif", ".json"].map(|s| dir.join(format!("{stem}{s}")))
}

/// Refuses when any of `paths` exists (an earlier explain wrote it).
pub fn refuse_existing(paths: &[std::path::PathBuf]) -> Result<()> {
    let existing: Vec<&std::path::PathBuf> = paths.iter().filter(|p| p.exists()).collect();
    match existing.first() {
        None => Ok(()),
        Some(p) => Err(Error::invalid(
            "output",
            format!(
                "{} already exists{}: pass --overwrite to replace, or choose another --out",
                p.display(),
                match existing.len() {
                    1 => String::new(),
                    n => format!(" (and {} more)", n - 1),
                }
            ),
        )),
    }
}
