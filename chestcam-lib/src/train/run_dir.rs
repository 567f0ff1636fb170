//! The run folder, and what it guarantees.
//!
//! | file | written | holds |
//! | --- | --- | --- |
//! | `config.json` | before the first epoch | the [`TrainConfig`] |
//! | `best.safetensors` | after an epoch that improved val AUC | weights + metadata |
//! | `last.safetensors` | after every epoch, after `best` | weights, Adam's moments, metadata with every epoch's record |
//! | `metrics.jsonl` | after `last` | a line per epoch (a copy of `last`'s records) |
//! | `.lock` | while a training writes | the writer's pid |
//!
//! - **All or nothing.** A checkpoint is one safetensors file whose header
//!   metadata (`chestcam`) says which epoch it is; it is written to a temp
//!   name, synced and renamed. Killed at any moment, the folder holds the
//!   previous epoch's checkpoint or this one's, never a mix, and a resume
//!   continues exactly (the epoch records travel inside `last`, so
//!   `metrics.jsonl` is rewritten from them).
//! - **`best` before `last`.** `last` names its best epoch only once that
//!   epoch's `best.safetensors` is in place; a failed save (a full disk)
//!   stops training with the previous state intact.
//! - **One writer.** A training holds an exclusive lock on `.lock`; a second
//!   one into the same folder is refused (the lock dies with its process).
//! - **A folder with no finished epoch can be reused** without `--resume`.
//! - Temp files left by a killed writer are removed when a training opens
//!   the folder.
use super::{EpochRecord, TrainConfig};
use crate::model::{Model, Stem};
use crate::tensors_file::{self, TensorsFile};
use crate::{Error, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Tensor};

/// The metadata key of a checkpoint.
const META_KEY: &str = "chestcam";

/// What a checkpoint says of itself (in its safetensors header).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    pub epoch: usize,
    pub step: i64,
    pub val_auc: f64,
    pub best_auc: f64,
    pub best_epoch: usize,
    pub stem: Stem,
    pub size: usize,
    pub data: String,
    pub synthetic: bool,
    /// Every epoch's record up to this one (empty in checkpoints written
    /// before chestcam kept them here).
    #[serde(default)]
    pub records: Vec<EpochRecord>,
    /// The identity of the data it trained on ([`crate::data::fingerprint`]);
    /// absent in checkpoints written before chestcam recorded it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprint: Option<crate::data::DataFingerprint>,
}

/// Which checkpoint of a run folder.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checkpoint {
    /// The epoch with the best validation AUC (MedMNIST's model selection).
    Best,
    /// The latest epoch (with the optimiser's state, for `--resume`).
    Last,
}

crate::choices!(Checkpoint, "checkpoint" { Best => "best", Last => "last" });

impl std::fmt::Display for Checkpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(crate::choice::Choice::name(*self))
    }
}

fn checkpoint_path(run: &Path, which: Checkpoint) -> PathBuf {
    run.join(format!("{which}.safetensors"))
}

/// Reads a checkpoint's metadata (header only). A checkpoint written by
/// chestcam 0.1 (metadata in a `.json` beside it) is read from that file.
pub fn read_meta(run: &Path, which: Checkpoint) -> Result<CheckpointMeta> {
    let path = checkpoint_path(run, which);
    if !path.is_file() {
        let why = if run.join("config.json").is_file() {
            "no epoch of its training has finished"
        } else {
            "it holds no run"
        };
        return Err(Error::invalid(
            "run folder",
            format!(
                "{} has no {which} checkpoint ({} is missing: {why})",
                run.display(),
                path.display()
            ),
        ));
    }
    let meta = tensors_file::read_metadata(&path)?;
    match meta.get(META_KEY) {
        Some(json) => serde_json::from_str(json).map_err(|e| {
            Error::bad_file(&path, format!("its chestcam metadata is not readable: {e}"))
        }),
        None => {
            let legacy = run.join(format!("{which}.json"));
            if legacy.is_file() {
                super::read_json(&legacy)
            } else {
                Err(Error::bad_file(
                    &path,
                    "has no chestcam metadata: not a checkpoint written by chestcam train",
                ))
            }
        }
    }
}

/// Loads a trained model from a run folder (`which`: `best` or `last`),
/// refusing weights that hold NaN or infinities.
pub fn load_model(
    run: &Path,
    which: Checkpoint,
    device: Device,
) -> Result<(Model, CheckpointMeta)> {
    let meta = read_meta(run, which)?;
    let path = checkpoint_path(run, which);
    let mut model = Model::new(meta.stem, meta.size, device)?;
    model.load(&path)?;
    // Corrupt weights would otherwise surface much later, as NaN maps.
    for (name, t) in model.vs.variables() {
        if !bool::try_from(t.f_isfinite()?.f_all()?)? {
            return Err(Error::bad_file(
                &path,
                format!("parameter {name} holds NaN or infinite values: the weights are corrupt"),
            ));
        }
    }
    Ok((model, meta))
}

/// A run folder opened for training: created if needed, locked against a
/// second writer for as long as this value lives.
pub struct RunDir {
    path: PathBuf,
    _lock: std::fs::File,
}

impl RunDir {
    /// Creates `path` if needed and takes its lock; refuses a file where
    /// the folder belongs and a folder another training is writing to.
    /// Removes temp files a killed writer left.
    pub fn open(path: &Path) -> Result<RunDir> {
        if path.exists() && !path.is_dir() {
            return Err(Error::invalid(
                "run folder",
                format!("{} is a file, not a run folder", path.display()),
            ));
        }
        std::fs::create_dir_all(path).map_err(|e| Error::io(path, e))?;
        let lock_path = path.join(".lock");
        let mut lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&lock_path)
            .map_err(|e| Error::io(&lock_path, e))?;
        match lock.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                let pid = std::fs::read_to_string(&lock_path).unwrap_or_default();
                let pid = pid.trim();
                let who = if pid.is_empty() {
                    String::new()
                } else {
                    format!(" (pid {pid})")
                };
                return Err(Error::invalid(
                    "run folder",
                    format!(
                        "{} is in use by another training{who}: wait for it, or train into another folder",
                        path.display()
                    ),
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => return Err(Error::io(&lock_path, e)),
        }
        {
            use std::io::{Seek, Write};
            let _ = lock.set_len(0);
            let _ = lock.seek(std::io::SeekFrom::Start(0));
            let _ = write!(lock, "{}", std::process::id());
        }
        crate::util::remove_stale_temps(path)?;
        Ok(RunDir {
            path: path.to_path_buf(),
            _lock: lock,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last finished epoch's metadata, or `None` when no epoch has
    /// finished. A chestcam 0.1 folder cannot be continued.
    pub fn last_meta(&self) -> Result<Option<CheckpointMeta>> {
        if !self.path.join("last.safetensors").is_file() {
            return Ok(None);
        }
        let meta = read_meta(&self.path, Checkpoint::Last)?;
        if meta.records.len() != meta.epoch {
            return Err(Error::invalid(
                "run folder",
                format!(
                    "{} was written by an older chestcam (checkpoint metadata in last.json): it can be evaluated and explained, but not continued; train into a new folder",
                    self.path.display()
                ),
            ));
        }
        Ok(Some(meta))
    }

    /// Starts the folder afresh for `cfg`: removes what an unfinished
    /// earlier start left (no epoch of it finished) and writes `config.json`.
    pub fn start(&self, cfg: &TrainConfig) -> Result<()> {
        for f in ["metrics.jsonl", "best.safetensors", "best.json"] {
            let p = self.path.join(f);
            if p.exists() {
                std::fs::remove_file(&p).map_err(|e| Error::io(&p, e))?;
            }
        }
        super::write_json(&self.path.join("config.json"), cfg)
    }

    /// Restores `model` and `opt` from `last.safetensors`; returns its
    /// metadata (with the records of every finished epoch) and rewrites
    /// `metrics.jsonl` from it.
    pub fn resume(&self, model: &mut Model, opt: &mut super::adam::Adam) -> Result<CheckpointMeta> {
        let meta = self.last_meta()?.ok_or_else(|| {
            Error::invalid(
                "run folder",
                format!("{} has no finished epoch", self.path.display()),
            )
        })?;
        let path = self.path.join("last.safetensors");
        let file: TensorsFile = tensors_file::read(&path)?;
        model.load_from(&file, &path)?;
        opt.load_state(&file, &path, meta.step)?;
        self.write_metrics(&meta.records)?;
        Ok(meta)
    }

    /// Saves a finished epoch: `best` first (when `improved`), then `last`
    /// (weights, optimiser state and `meta`), then `metrics.jsonl`. Each is
    /// atomic; a failure leaves the previous epoch's state intact.
    pub fn save_epoch(
        &self,
        model: &Model,
        opt: &super::adam::Adam,
        meta: &CheckpointMeta,
        improved: bool,
    ) -> Result<()> {
        let json = serde_json::to_string(meta)
            .map_err(|e| Error::invalid("checkpoint metadata", e.to_string()))?;
        let metadata = HashMap::from([
            (META_KEY.to_string(), json),
            ("format".to_string(), "chestcam checkpoint 2".to_string()),
        ]);
        let weights = model.named_tensors();
        if improved {
            let refs: Vec<(&str, &Tensor)> = weights.iter().map(|(n, t)| (n.as_str(), t)).collect();
            tensors_file::write(&self.path.join("best.safetensors"), &refs, metadata.clone())?;
        }
        let state = opt.state_tensors();
        let refs: Vec<(&str, &Tensor)> = weights
            .iter()
            .chain(state.iter())
            .map(|(n, t)| (n.as_str(), t))
            .collect();
        tensors_file::write(&self.path.join("last.safetensors"), &refs, metadata)?;
        self.write_metrics(&meta.records)
    }

    fn write_metrics(&self, records: &[EpochRecord]) -> Result<()> {
        let mut lines = String::new();
        for r in records {
            let line = serde_json::to_string(r)
                .map_err(|e| Error::invalid("epoch record", e.to_string()))?;
            lines.push_str(&line);
            lines.push('\n');
        }
        crate::util::write_atomic(self.path.join("metrics.jsonl"), lines.as_bytes())
    }
}
