//! Training: MedMNIST's protocol on a ResNet-18, with a run folder that can
//! be resumed.
//!
//! A run folder holds `config.json` (written before any work starts),
//! `metrics.jsonl` (a line per epoch), `last.safetensors` +
//! `last.optim.safetensors` + `last.json`, and `best.safetensors` +
//! `best.json` (best validation AUC). Every file is written to a temp name
//! and renamed; the JSON is written last, so a checkpoint is complete when
//! its JSON exists.
pub mod adam;
pub mod config;

pub use config::TrainConfig;

use crate::data::{Batches, Dataset, Split};
use crate::metrics::{evaluate, Evaluation};
use crate::model::{parse_device, Model};
use crate::util::write_atomic;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

/// One epoch's line in `metrics.jsonl`.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct EpochRecord {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub val_loss: f64,
    pub val_auc: f64,
    pub val_acc: f64,
    pub lr: f64,
    pub seconds: f64,
    pub images_per_sec: f64,
}

impl std::fmt::Display for EpochRecord {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "epoch {:>3}  train loss {:.4}  val loss {:.4}  val AUC {:.4}  val ACC {:.4}  lr {:.0e}  {:.1} s ({:.0} img/s)",
            self.epoch, self.train_loss, self.val_loss, self.val_auc, self.val_acc, self.lr, self.seconds, self.images_per_sec
        )
    }
}

/// The JSON beside a checkpoint.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CheckpointMeta {
    pub epoch: usize,
    pub step: i64,
    pub val_auc: f64,
    pub best_auc: f64,
    pub best_epoch: usize,
    pub stem: crate::model::Stem,
    pub size: usize,
    pub data: String,
    pub synthetic: bool,
}

/// What a training call produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run: PathBuf,
    pub records: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_auc: f64,
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("invalid JSON: {e}")))
}

fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Reads a run folder's `config.json`.
pub fn load_config(run: &Path) -> Result<TrainConfig> {
    read_json(&run.join("config.json"))
}

/// Logits `[n, 14]` on the CPU for a whole split, in batches, eval mode.
pub fn split_logits(model: &Model, split: &Split, batch_size: usize) -> Result<Tensor> {
    model.logits_batched(&split.images_tensor(Device::Cpu)?, batch_size)
}

/// Evaluates `model` on `split`: loss, AUC, ACC, AP as MedMNIST defines them.
pub fn evaluate_split(model: &Model, split: &Split, batch_size: usize) -> Result<Evaluation> {
    let logits = split_logits(model, split, batch_size)?;
    let y = split.labels_tensor(Device::Cpu)?;
    let loss = logits
        .f_binary_cross_entropy_with_logits(
            &y,
            None::<Tensor>,
            None::<Tensor>,
            tch::Reduction::Mean,
        )?
        .f_double_value(&[])?;
    let probs: Vec<f32> = Vec::<f32>::try_from(logits.f_sigmoid()?.f_flatten(0, -1)?)?;
    evaluate(&probs, &split.labels, Some(loss))
}

/// Trains on `data` into `run`. With `resume`, continues from `last.json`
/// (the configuration is the one saved in the folder). `on_epoch` sees each
/// epoch's record after its checkpoint is written; `ControlFlow::Break`
/// stops training there (the run can be resumed later). `progress` counts
/// the images of each epoch (a bar on a terminal; `Silent` elsewhere).
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    run: &Path,
    resume: bool,
    progress: &mut dyn crate::progress::Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> std::ops::ControlFlow<()>,
) -> Result<TrainOutcome> {
    let saved = run.join("config.json");
    let cfg = &if resume && saved.exists() {
        load_config(run)?
    } else {
        cfg.clone()
    };
    cfg.validate(Some(data.size))?;
    if run.exists() && !run.is_dir() {
        return Err(Error::invalid(
            "run folder",
            format!("{} is a file, not a run folder", run.display()),
        ));
    }
    let last_json = run.join("last.json");
    if !resume && (last_json.exists() || run.join("config.json").exists()) {
        return Err(Error::invalid(
            "run folder",
            format!(
                "{} already holds a run: pass --resume or choose another folder",
                run.display()
            ),
        ));
    }
    if resume && !last_json.exists() && !run.join("config.json").exists() {
        return Err(Error::invalid(
            "run folder",
            format!("{} has no run to resume (no config.json)", run.display()),
        ));
    }
    std::fs::create_dir_all(run).map_err(|e| Error::io(run, e))?;
    if !resume || !run.join("config.json").exists() {
        write_json(&run.join("config.json"), cfg)?;
    }
    if let Some(t) = cfg.threads {
        tch::set_num_threads(t);
    }
    let device = parse_device(&cfg.device)?;
    let stem = cfg.stem_for(data.size);
    tch::manual_seed(cfg.seed as i64);
    let mut model = Model::new(stem, data.size, device)?;
    if let Some(p) = &cfg.imagenet {
        model.load_imagenet(p)?;
    }
    let mut opt = adam::Adam::new(&model.vs);
    let mut records: Vec<EpochRecord> = Vec::new();
    let (mut best_auc, mut best_epoch, mut start_epoch) = (f64::NEG_INFINITY, 0, 0);
    if resume && last_json.exists() {
        let meta: CheckpointMeta = read_json(&last_json)?;
        model.load(run.join("last.safetensors"))?;
        opt.load(&run.join("last.optim.safetensors"), meta.step)?;
        let text = std::fs::read_to_string(run.join("metrics.jsonl"))
            .map_err(|e| Error::io(run.join("metrics.jsonl"), e))?;
        for (i, line) in text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .take(meta.epoch)
            .enumerate()
        {
            records.push(serde_json::from_str(line).map_err(|e| {
                Error::bad_file(run.join("metrics.jsonl"), format!("line {}: {e}", i + 1))
            })?);
        }
        best_auc = meta.best_auc;
        best_epoch = meta.best_epoch;
        start_epoch = meta.epoch;
    }
    let train_split = match cfg.train_subset {
        Some(n) => data.train.head(n),
        None => data.train.clone(),
    };
    let x = train_split.images_tensor(device)?;
    let y = train_split.labels_tensor(device)?;
    let augment = cfg.augment.then(crate::data::Augment::default);
    for epoch in start_epoch..cfg.epochs {
        let lr = cfg.lr_at(epoch);
        let t0 = Instant::now();
        let seed = cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(epoch as u64 + 1);
        let batches = Batches::from_tensors(
            x.shallow_clone(),
            y.shallow_clone(),
            cfg.batch_size,
            Some(seed),
            augment,
        )?;
        let (mut loss_sum, mut seen) = (0.0, 0usize);
        progress.start(
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
            Some(train_split.len() as u64),
        );
        for (b, batch) in batches.enumerate() {
            let (xb, yb) = batch?;
            let n = yb.size()[0] as usize;
            opt.zero_grad();
            let (logits, _) = model
                .net
                .forward_stage(&xb, crate::model::Stage::Layer4, true);
            let loss = logits.f_binary_cross_entropy_with_logits(
                &yb,
                None::<Tensor>,
                None::<Tensor>,
                tch::Reduction::Mean,
            )?;
            let lv = loss.f_double_value(&[])?;
            if !lv.is_finite() {
                return Err(Error::invalid(
                    "training",
                    format!(
                        "loss became {lv} at epoch {}, batch {}; stopped. The last good checkpoint is kept in {} (lower --lr?)",
                        epoch + 1,
                        b + 1,
                        run.display()
                    ),
                ));
            }
            loss.f_backward()?;
            opt.step(lr)?;
            loss_sum += lv * n as f64;
            seen += n;
            progress.update(seen as u64);
        }
        progress.finish();
        let train_secs = t0.elapsed().as_secs_f64();
        let val = evaluate_split(&model, &data.val, 256)?;
        let rec = EpochRecord {
            epoch: epoch + 1,
            train_loss: loss_sum / seen.max(1) as f64,
            val_loss: val.loss.unwrap_or(f64::NAN),
            val_auc: val.auc,
            val_acc: val.acc,
            lr,
            seconds: t0.elapsed().as_secs_f64(),
            images_per_sec: seen as f64 / train_secs.max(1e-9),
        };
        records.push(rec.clone());
        let lines: String = records
            .iter()
            .map(|r| serde_json::to_string(r).unwrap_or_default() + "\n")
            .collect();
        write_atomic(run.join("metrics.jsonl"), lines.as_bytes())?;
        let improved = rec.val_auc > best_auc || (best_epoch == 0 && rec.val_auc.is_nan());
        if improved {
            best_auc = rec.val_auc;
            best_epoch = rec.epoch;
        }
        let meta = CheckpointMeta {
            epoch: rec.epoch,
            step: opt.step,
            val_auc: rec.val_auc,
            best_auc,
            best_epoch,
            stem,
            size: data.size,
            data: data.provenance.to_string(),
            synthetic: data.provenance.synthetic,
        };
        model.save(run.join("last.safetensors"))?;
        opt.save(&run.join("last.optim.safetensors"))?;
        write_json(&last_json, &meta)?;
        if improved {
            model.save(run.join("best.safetensors"))?;
            write_json(&run.join("best.json"), &meta)?;
        }
        if on_epoch(&rec).is_break() {
            break;
        }
    }
    Ok(TrainOutcome {
        run: run.to_path_buf(),
        records,
        best_epoch,
        best_auc,
    })
}

/// Loads a trained model from a run folder (`checkpoint`: `best` or `last`).
pub fn load_model(run: &Path, checkpoint: &str, device: Device) -> Result<(Model, CheckpointMeta)> {
    if !matches!(checkpoint, "best" | "last") {
        return Err(Error::invalid(
            "checkpoint",
            format!("{checkpoint:?} (expected best or last)"),
        ));
    }
    let meta_path = run.join(format!("{checkpoint}.json"));
    if !meta_path.exists() {
        return Err(Error::invalid(
            "run folder",
            format!(
                "{} has no {checkpoint} checkpoint ({} missing)",
                run.display(),
                meta_path.display()
            ),
        ));
    }
    let meta: CheckpointMeta = read_json(&meta_path)?;
    let mut model = Model::new(meta.stem, meta.size, device)?;
    let weights = run.join(format!("{checkpoint}.safetensors"));
    model.load(&weights)?;
    // Corrupt weights would otherwise surface much later, as NaN maps.
    for (name, t) in model.vs.variables() {
        if !bool::try_from(t.f_isfinite()?.f_all()?)? {
            return Err(Error::bad_file(
                &weights,
                format!("parameter {name} holds NaN or infinite values: the weights are corrupt"),
            ));
        }
    }
    Ok((model, meta))
}
