//! Training: MedMNIST's protocol on a ResNet-18, into a run folder that can
//! be resumed and never mixes epochs ([`run_dir`] says what it guarantees).
//! [`train_step`] is the one training step, shared by [`train`] and
//! `chestcam bench`.
pub mod adam;
pub mod config;
pub mod graph;
pub mod run_dir;

pub use config::{cpu_has_bf16, device_string, Precision, ResumeChanges, TrainConfig};
pub use run_dir::{load_model, read_meta, Checkpoint, CheckpointMeta, RunDir};

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
    /// Where and how the epoch ran (`cpu: bf16, channels-last`): a resume
    /// may continue a run on another device. Absent in records written
    /// before chestcam kept it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
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

/// What a training call produced.
#[derive(Debug, Clone)]
pub struct TrainOutcome {
    pub run: PathBuf,
    pub records: Vec<EpochRecord>,
    pub best_epoch: usize,
    pub best_auc: f64,
}

pub(crate) fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| Error::bad_file(path, format!("invalid JSON: {e}")))
}

pub(crate) fn write_json<T: serde::Serialize>(path: &Path, v: &T) -> Result<()> {
    let text =
        serde_json::to_string_pretty(v).map_err(|e| Error::invalid("json", e.to_string()))?;
    write_atomic(path, format!("{text}\n").as_bytes())
}

/// Reads a run folder's `config.json`.
pub fn load_config(run: &Path) -> Result<TrainConfig> {
    read_json(&run.join("config.json"))
}

/// The data a run's commands read: `given` (a `--source`) when there is
/// one, else the source that the run's config.json records (`recorded`); a
/// file moved since training is named as such, with the way out.
pub fn run_source(
    run: &Path,
    recorded: &str,
    given: Option<&str>,
) -> Result<crate::data::source::DataSource> {
    use crate::data::source::DataSource;
    if let Some(g) = given {
        return g.parse();
    }
    let source: DataSource = recorded.parse()?;
    if let DataSource::Path(p) = &source {
        if !p.exists() {
            return Err(Error::invalid(
                "data source",
                format!(
                    "{} was trained on {}, which is no longer there; \
                     give its new place with --source",
                    run.display(),
                    p.display()
                ),
            ));
        }
    }
    Ok(source)
}

/// Logits `[n, 14]` on the CPU for a whole split, in batches, eval mode.
pub fn split_logits(model: &Model, split: &Split, batch_size: usize) -> Result<Tensor> {
    split_logits_with(model, split, batch_size, "", &mut crate::progress::Silent)
}

/// [`split_logits`], counting the images done on `progress` as the job
/// `label` (minutes for a 224 px split on a CPU).
pub fn split_logits_with(
    model: &Model,
    split: &Split,
    batch_size: usize,
    label: &str,
    progress: &mut dyn crate::progress::Progress,
) -> Result<Tensor> {
    let n = split.len();
    progress.start(label, Some(n as u64));
    // A batch at a time from the split's bytes: nothing split-sized in float.
    // To a GPU each batch goes through pinned memory without the host
    // waiting, and the logits stay there until the last batch is done.
    let logits = model.logits_chunked(n, batch_size, |start, len| {
        progress.update(start as u64);
        let x = crate::data::batches::to_device(split.images_u8(start, len)?, model.device())?;
        crate::data::normalise(&x)
    });
    if logits.is_ok() {
        progress.update(n as u64);
    }
    progress.finish();
    logits
}

/// Evaluates `model` on `split`: loss, AUC, ACC, AP as MedMNIST defines them.
pub fn evaluate_split(model: &Model, split: &Split, batch_size: usize) -> Result<Evaluation> {
    evaluate_split_with(model, split, batch_size, "", &mut crate::progress::Silent)
}

/// [`evaluate_split`], counting the images done on `progress` as the job
/// `label`.
pub fn evaluate_split_with(
    model: &Model,
    split: &Split,
    batch_size: usize,
    label: &str,
    progress: &mut dyn crate::progress::Progress,
) -> Result<Evaluation> {
    let logits = split_logits_with(model, split, batch_size, label, progress)?;
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

/// Steps between reads of the running loss (each read waits for the device).
const LOSS_CHECK_EVERY: usize = 32;

/// One training step: forward in train mode (under bf16 autocast when
/// asked), mean BCE-with-logits over the batch and all 14 labels,
/// backward, one Adam update at `lr`. Returns the
/// batch's loss as a scalar tensor on the model's device, without waiting
/// for it (read it when needed).
pub fn train_step(
    model: &Model,
    opt: &mut adam::Adam,
    x: &Tensor,
    y: &Tensor,
    lr: f64,
    precision: Precision,
) -> Result<Tensor> {
    opt.zero_grad()?;
    let forward = || -> Result<Tensor> {
        let (logits, _) = model
            .net
            .forward_stage(x, crate::model::Stage::Layer4, true);
        Ok(logits.f_binary_cross_entropy_with_logits(
            y,
            None::<Tensor>,
            None::<Tensor>,
            tch::Reduction::Mean,
        )?)
    };
    let size = x.size().last().copied().unwrap_or(0).max(0) as usize;
    let precision = precision.resolve(model.device(), size);
    // Autocast covers the forward only; backward follows its dtypes.
    let loss = precision.run(model.device(), forward)?;
    match (precision, opt.grad_scaler()) {
        // float16 gradients underflow: backward from the scaled loss.
        (Precision::Fp16, Some(sc)) => loss.f_mul(&sc.scale.f_view([])?)?.f_backward()?,
        (Precision::Fp16, None) => {
            return Err(Error::invalid(
                "fp16 training",
                "the optimiser has no gradient scaler (Adam::enable_grad_scaler)",
            ))
        }
        _ => loss.f_backward()?,
    }
    opt.step(lr)?;
    Ok(loss.detach())
}

/// What closing an epoch reads and updates.
struct EpochEnd<'a> {
    data: &'a Dataset,
    /// `data`'s fingerprint, taken once per training call.
    fingerprint: crate::data::DataFingerprint,
    model: &'a Model,
    opt: &'a mut adam::Adam,
    stem: crate::model::Stem,
    records: &'a mut Vec<EpochRecord>,
    best_auc: &'a mut f64,
    best_epoch: &'a mut usize,
    /// Counts the validation's images (`epoch 3/10: validation`).
    progress: &'a mut dyn crate::progress::Progress,
    /// The run's number of epochs, for the validation's label.
    epochs: usize,
}

/// The end of an epoch: validation, the record (`rec` arrives with its
/// training figures; the validation's time is added to its seconds), the
/// best-so-far, and the checkpoints, with an error that says what the
/// folder still holds when saving fails.
fn close_epoch(dir: &RunDir, e: &mut EpochEnd, mut rec: EpochRecord) -> Result<EpochRecord> {
    let v0 = Instant::now();
    let label = format!("epoch {}/{}: validation", rec.epoch, e.epochs);
    let val = evaluate_split_with(e.model, &e.data.val, 256, &label, e.progress)?;
    rec.val_loss = val.loss.unwrap_or(f64::NAN);
    rec.val_auc = val.auc;
    rec.val_acc = val.acc;
    rec.seconds += v0.elapsed().as_secs_f64();
    e.records.push(rec.clone());
    let improved = rec.val_auc > *e.best_auc || *e.best_epoch == 0;
    let (prev_auc, prev_epoch) = (*e.best_auc, *e.best_epoch);
    if improved {
        *e.best_auc = rec.val_auc;
        *e.best_epoch = rec.epoch;
    }
    e.opt.sync_step()?;
    let meta = CheckpointMeta {
        epoch: rec.epoch,
        step: e.opt.step,
        val_auc: rec.val_auc,
        best_auc: *e.best_auc,
        best_epoch: *e.best_epoch,
        stem: e.stem,
        size: e.data.size,
        data: e.data.provenance.to_string(),
        synthetic: e.data.provenance.synthetic,
        records: e.records.clone(),
        fingerprint: Some(e.fingerprint),
    };
    if let Err(err) = dir.save_epoch(e.model, e.opt, &meta, improved) {
        let kept = match rec.epoch - 1 {
            0 => "no epoch had finished before, so the folder can be reused".to_string(),
            p => format!(
                "the folder still holds epoch {p} (best: epoch {prev_epoch}, val AUC {prev_auc:.4}); free space and resume"
            ),
        };
        return Err(Error::Training(format!(
            "saving epoch {} failed: {err}; {kept}",
            rec.epoch
        )));
    }
    Ok(rec)
}

/// Starts a run in `run` from an epoch trained outside [`train`] (the
/// notebook's epoch written out by hand): `model` and `opt` as that epoch
/// left them, its mean training loss and seconds. The epoch is validated
/// and saved as epoch 1, exactly as `train` closes an epoch, so that
/// `train(cfg, data, run, true, ..)` continues with epoch 2.
#[allow(clippy::too_many_arguments)]
pub fn record_first_epoch(
    cfg: &TrainConfig,
    data: &Dataset,
    run: &Path,
    model: &Model,
    opt: &mut adam::Adam,
    train_loss: f64,
    images: usize,
    seconds: f64,
) -> Result<EpochRecord> {
    check_run_folder(run, false)?;
    cfg.validate(Some(data.size))?;
    check_data(cfg, data)?;
    let stem = cfg.stem_for(data.size);
    if model.stem != stem || model.size != data.size {
        return Err(Error::invalid(
            "model",
            format!(
                "a {} stem for {} px, but the run is configured for a {stem} stem at {} px",
                model.stem, model.size, data.size
            ),
        ));
    }
    let dir = RunDir::open(run)?;
    if let Some(m) = dir.last_meta()? {
        return Err(already_a_run(run, Some(m)));
    }
    dir.start(cfg)?;
    let (mut records, mut best_auc, mut best_epoch) = (Vec::new(), f64::NEG_INFINITY, 0);
    close_epoch(
        &dir,
        &mut EpochEnd {
            data,
            fingerprint: data.fingerprint(),
            model,
            opt,
            stem,
            records: &mut records,
            best_auc: &mut best_auc,
            best_epoch: &mut best_epoch,
            progress: &mut crate::progress::Silent,
            epochs: cfg.epochs,
        },
        EpochRecord {
            epoch: 1,
            train_loss,
            val_loss: f64::NAN,
            val_auc: f64::NAN,
            val_acc: f64::NAN,
            lr: cfg.lr_at(0),
            seconds,
            images_per_sec: images as f64 / seconds.max(1e-9),
            step: Some(format!(
                "{}: the notebook's epoch by hand",
                device_string(model.device())
            )),
        },
    )
}

/// Refuses data that cannot give a meaningful run, before anything is
/// written: an empty training split, and a validation split on which AUC
/// (which picks the best checkpoint) is undefined.
pub fn check_data(cfg: &TrainConfig, data: &Dataset) -> Result<()> {
    let n_train = cfg.train_subset.unwrap_or(usize::MAX).min(data.train.len());
    if n_train == 0 {
        return Err(Error::invalid(
            "data",
            format!(
                "the training split of {} is empty: nothing to train on",
                data.provenance
            ),
        ));
    }
    if data.val.is_empty() {
        return Err(Error::invalid(
            "data",
            format!(
                "the validation split of {} is empty: the best checkpoint is chosen by validation AUC",
                data.provenance
            ),
        ));
    }
    let l = crate::data::registry::NUM_LABELS;
    let two_classes = (0..l).any(|j| {
        let pos = (0..data.val.len())
            .filter(|&i| data.val.labels[i * l + j] != 0)
            .count();
        pos > 0 && pos < data.val.len()
    });
    if !two_classes {
        return Err(Error::invalid(
            "data",
            format!(
                "validation AUC is undefined on {}: in its {} validation images every label is all positive or all negative, so no checkpoint could be chosen",
                data.provenance,
                data.val.len()
            ),
        ));
    }
    Ok(())
}

/// Refuses, before any data is loaded or file touched, a `run` that is a
/// file, a resume without a saved run, and a fresh start over finished
/// epochs. (Checked again under the folder's lock when training starts.)
pub fn check_run_folder(run: &Path, resume: bool) -> Result<()> {
    if run.exists() && !run.is_dir() {
        return Err(Error::invalid(
            "run folder",
            format!("{} is a file, not a run folder", run.display()),
        ));
    }
    if resume && !run.join("config.json").is_file() {
        return Err(Error::invalid(
            "run folder",
            format!(
                "{} has no run to resume (no config.json); start it without --resume",
                run.display()
            ),
        ));
    }
    if !resume && run.join("last.safetensors").exists() {
        return Err(already_a_run(run, read_meta(run, Checkpoint::Last).ok()));
    }
    Ok(())
}

fn already_a_run(run: &Path, meta: Option<CheckpointMeta>) -> Error {
    let done = meta
        .map(|m| format!(" ({} epoch(s) finished)", m.epoch))
        .unwrap_or_default();
    Error::invalid(
        "run folder",
        format!(
            "{} already holds a run{done}: pass --resume or choose another folder",
            run.display()
        ),
    )
}

/// Trains on `data` into `run`. With `resume`, continues from the last
/// finished epoch with the configuration saved in the folder (as
/// [`resume_run`] without changes; `cfg` is then unused). A folder
/// with no finished epoch is started afresh; one with finished epochs is
/// refused without `resume`. `on_epoch` sees each epoch's record after its
/// checkpoint is written; `ControlFlow::Break` stops training there (the
/// run can be resumed later). `progress` counts the images of each epoch.
pub fn train(
    cfg: &TrainConfig,
    data: &Dataset,
    run: &Path,
    resume: bool,
    progress: &mut dyn crate::progress::Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> std::ops::ControlFlow<()>,
) -> Result<TrainOutcome> {
    if resume {
        return resume_run(run, &ResumeChanges::default(), data, progress, on_epoch);
    }
    check_run_folder(run, false)?;
    train_into_folder(cfg, data, run, false, progress, on_epoch)
}

/// The configuration a resume of `run` with `changes` trains with:
/// `config.json`'s, with how it runs changed ([`TrainConfig::with_changes`]).
/// A recorded device this machine lacks is named, with the way to continue
/// elsewhere.
pub fn resume_config(run: &Path, changes: &ResumeChanges) -> Result<TrainConfig> {
    check_run_folder(run, true)?;
    let cfg = load_config(run)?.with_changes(changes)?;
    if let Err(e) = parse_device(&cfg.device) {
        return Err(Error::invalid(
            "device",
            format!(
                "{} ran on {}, which this machine cannot use ({e}); continue it here with --resume --device cpu",
                run.display(),
                cfg.device
            ),
        ));
    }
    Ok(cfg)
}

/// Continues `run` from its last finished epoch on `data` (the run's data,
/// perhaps read from a new place), with how it runs changed by `changes`
/// (another device, precision, ...). When the step changes, `config.json`
/// is rewritten (what a later resume repeats) and each epoch's record says
/// where it ran. Refuses data of another image size than the run's.
pub fn resume_run(
    run: &Path,
    changes: &ResumeChanges,
    data: &Dataset,
    progress: &mut dyn crate::progress::Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> std::ops::ControlFlow<()>,
) -> Result<TrainOutcome> {
    let cfg = resume_config(run, changes)?;
    check_resume_data(run, data)?;
    train_into_folder(&cfg, data, run, true, progress, on_epoch)
}

/// Refuses to continue `run` on other data than it trained on: another
/// image size (the weights would load: a ResNet takes any size), or, where
/// the checkpoint recorded its data's fingerprint, other training or
/// validation images (another file of the same size, or a file replaced at
/// the same path).
pub fn check_resume_data(run: &Path, data: &Dataset) -> Result<()> {
    if !run.join("last.safetensors").is_file() {
        return Ok(());
    }
    let meta = read_meta(run, Checkpoint::Last)?;
    if meta.size != data.size {
        return Err(Error::invalid(
            "data",
            format!(
                "{} was trained on {} px images, but {} has {} px: a resume needs the run's own data",
                run.display(),
                meta.size,
                data.provenance,
                data.size
            ),
        ));
    }
    let splits = [crate::data::SplitName::Train, crate::data::SplitName::Val];
    if let Some((split, was, is)) = meta
        .fingerprint
        .and_then(|f| f.first_difference(&data.fingerprint(), &splits))
    {
        return Err(Error::invalid(
            "data",
            format!(
                "{} was trained on other images than {}: its {split} split was {was}, this one is {is}; a resume needs the run's own data (the same file, perhaps moved)",
                run.display(),
                data.provenance,
            ),
        ));
    }
    Ok(())
}

/// One split of a data set against what a run's checkpoint recorded for
/// it: its fingerprint taken once, for the JSON and the note alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitCheck {
    pub split: crate::data::SplitName,
    /// The split's fingerprint now.
    pub now: crate::data::SplitFingerprint,
    /// What the checkpoint recorded for it (`None` in checkpoints written
    /// before chestcam recorded fingerprints).
    pub recorded: Option<crate::data::SplitFingerprint>,
}

impl SplitCheck {
    pub fn of(meta: &CheckpointMeta, data: &Dataset, split: crate::data::SplitName) -> SplitCheck {
        SplitCheck {
            split,
            now: crate::data::SplitFingerprint::of(data.split(split)),
            recorded: meta.fingerprint.map(|f| *f.split(split)),
        }
    }

    /// Whether the split holds the images the run recorded; `None` when it
    /// recorded none.
    pub fn same_as_run(&self) -> Option<bool> {
        self.recorded.map(|r| r == self.now)
    }

    /// A line for a user who evaluates or explains `run`'s model on this
    /// split of `data` when its images are not the ones the run recorded:
    /// the numbers are then for other data.
    pub fn note(&self, run: &Path, data: &Dataset) -> Option<String> {
        let was = self.recorded.filter(|r| *r != self.now)?;
        Some(format!(
            "note: the {} split of {} is not the one {} recorded ({was} then, {} here): these results are for other images than the run's own",
            self.split,
            data.provenance,
            run.display(),
            self.now
        ))
    }
}

/// Where a run's training split lives (see `TrainConfig::data_on_device`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Placement {
    /// Copied to the device once.
    Device,
    /// In host memory (the CPU, or asked for).
    Host,
    /// In host memory because `bytes` would take more than half of the
    /// `free` bytes of the device.
    HostForSpace { bytes: u64, free: u64 },
}

/// Where the first `n` images of `split` go for training on `device`:
/// as `asked`, or on a GPU when their bytes take at most half of its free
/// memory (on the device when its free memory cannot be read).
fn split_placement(asked: Option<bool>, split: &Split, n: usize, device: Device) -> Placement {
    let free = match device {
        Device::Cpu => return Placement::Host,
        Device::Cuda(i) => crate::shim::cuda_free_memory(i).ok().map(|(f, _)| f),
        _ => None,
    };
    let bytes = (n.min(split.len()) * split.size * split.size) as u64;
    placement(asked, bytes, free)
}

/// [`split_placement`]'s rule for `bytes` of images and `free` device bytes.
fn placement(asked: Option<bool>, bytes: u64, free: Option<u64>) -> Placement {
    match (asked, free) {
        (Some(true), _) => Placement::Device,
        (Some(false), _) => Placement::Host,
        (None, Some(free)) if bytes > free / 2 => Placement::HostForSpace { bytes, free },
        (None, _) => Placement::Device,
    }
}

fn train_into_folder(
    cfg: &TrainConfig,
    data: &Dataset,
    run: &Path,
    resume: bool,
    progress: &mut dyn crate::progress::Progress,
    on_epoch: &mut dyn FnMut(&EpochRecord) -> std::ops::ControlFlow<()>,
) -> Result<TrainOutcome> {
    // Everything that can be checked is checked before the folder is touched.
    cfg.validate(Some(data.size))?;
    check_data(cfg, data)?;
    if let Some(t) = cfg.threads {
        tch::set_num_threads(t);
    }
    let device = parse_device(&cfg.device)?;
    // Defaults that depend on the device and size become concrete here, so
    // that config.json records what ran and a resume repeats it.
    let cfg = &cfg.resolved(device, data.size);
    // Process-wide in libtorch: set either way, so an earlier run in the
    // same process (a notebook) does not leak its choice into this one.
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(cfg.cudnn_benchmark);
    }
    let stem = cfg.stem_for(data.size);
    tch::manual_seed(cfg.seed as i64);
    let mut model = Model::new(stem, data.size, device)?;
    if let Some(p) = &cfg.imagenet {
        model.load_imagenet(p)?;
    }
    let channels_last = cfg.uses_channels_last();
    if channels_last {
        model.to_channels_last()?;
    }
    let mut opt = adam::Adam::new(&model.vs);
    if cfg.precision == Precision::Fp16 {
        opt.enable_grad_scaler()?;
    }

    let dir = RunDir::open(run)?;
    let mut records: Vec<EpochRecord> = Vec::new();
    let (mut best_auc, mut best_epoch, mut start_epoch) = (f64::NEG_INFINITY, 0, 0);
    match (resume, dir.last_meta()?) {
        (false, Some(m)) => return Err(already_a_run(run, Some(m))),
        (false, None) | (true, None) => dir.start(cfg)?,
        (true, Some(_)) => {
            let meta = dir.resume(&mut model, &mut opt)?;
            // A resume that runs differently records it for the next one.
            if load_config(run)? != *cfg {
                write_json(&run.join("config.json"), cfg)?;
            }
            records = meta.records;
            best_auc = meta.best_auc;
            best_epoch = meta.best_epoch;
            start_epoch = meta.epoch;
        }
    }
    // The training images stay uint8 and are normalised a batch at a time:
    // on a GPU the whole uint8 split lives on the device (a quarter of its
    // float size) when there is room for it; elsewhere, and on a GPU
    // without that room, batches are gathered from the split's bytes.
    let n_train = cfg.train_subset.unwrap_or(usize::MAX).min(data.train.len());
    let on_device = match split_placement(cfg.data_on_device, &data.train, n_train, device) {
        Placement::Device => Some((
            data.train.images_u8_on(n_train, device)?,
            data.train.head_labels(n_train, device)?,
        )),
        Placement::Host => None,
        Placement::HostForSpace { bytes, free } => {
            crate::note!(
                "data: the training split ({} as uint8) stays in host memory and each batch \
                 is copied to {} as it is needed: it would take more than half of the {} \
                 free there (--data-on-device true puts it there anyway)",
                crate::progress::human_bytes(bytes),
                device_string(device),
                crate::progress::human_bytes(free)
            );
            None
        }
    };
    let streamed = device.is_cuda() && on_device.is_none();
    let fingerprint = data.fingerprint();
    let augment = cfg.augment.then(crate::data::Augment::default);
    let shuffled_labels: Option<Vec<i64>> = cfg.shuffle_labels.then(|| {
        crate::util::Rng::new(cfg.seed ^ 0x005E_ED1A_BE15)
            .permutation(n_train)
            .into_iter()
            .map(|i| i as i64)
            .collect()
    });
    // With --cuda-graph: full batches replay a captured step (one per
    // learning rate); a graph that cannot be captured leaves the run eager.
    let mut steps = graph::Steps::new(cfg.uses_cuda_graph());
    for epoch in start_epoch..cfg.epochs {
        let lr = cfg.lr_at(epoch);
        let t0 = Instant::now();
        let seed = cfg
            .seed
            .wrapping_mul(1_000_003)
            .wrapping_add(epoch as u64 + 1);
        let batches = match &on_device {
            Some((x, y)) => Batches::from_tensors(
                x.shallow_clone(),
                y.shallow_clone(),
                cfg.batch_size,
                Some(seed),
                augment,
            )?,
            None => Batches::from_host(
                &data.train,
                n_train,
                cfg.batch_size,
                Some(seed),
                augment,
                device,
            )?,
        };
        // Data randomisation: one permutation of the label rows for the
        // whole run (the same every epoch, so the model can memorise it).
        let batches = match &shuffled_labels {
            Some(rows) => batches.with_labels_of(rows.clone())?,
            None => batches,
        };
        // The loss is summed on the device and read every few steps, so the
        // device never waits for the host.
        let mut loss_sum = Tensor::f_zeros([], (tch::Kind::Double, device))?;
        let (mut seen, mut checked) = (0usize, 0usize);
        progress.start(
            &format!("epoch {}/{}", epoch + 1, cfg.epochs),
            Some(n_train as u64),
        );
        let mut batches = batches.enumerate().peekable();
        while let Some((b, batch)) = batches.next() {
            let (xb, yb) = batch?;
            let xb = match channels_last {
                true => crate::shim::channels_last(&xb)?,
                false => xb,
            };
            let n = yb.size()[0] as usize;
            let full = n == cfg.batch_size;
            // What the run folder holds if training stops here.
            let kept = || match records.len() {
                0 => format!(
                    "no epoch had finished, so nothing was kept; {} can be reused",
                    run.display()
                ),
                e => format!("the checkpoint of epoch {e} is kept in {}", run.display()),
            };
            let gave_up = steps.gave_up().is_some();
            let loss = steps
                .step(&model, &mut opt, &xb, &yb, lr, cfg.precision, full)
                .map_err(|f| {
                    f.stopped(&format!("epoch {}, batch {}", epoch + 1, b + 1), &kept())
                })?;
            if let (false, Some(why)) = (gave_up, steps.gave_up()) {
                crate::note!(
                    "epoch {}, batch {}: the CUDA graph could not be captured ({why}); \
                     training goes on without it (the same steps, slower). \
                     --cuda-graph false skips the attempt.",
                    epoch + 1,
                    b + 1
                );
            }
            loss_sum = loss_sum.f_add(&loss.f_mul_scalar(n as f64)?)?;
            seen += n;
            if (b + 1) % LOSS_CHECK_EVERY == 0 || batches.peek().is_none() {
                let s = loss_sum.f_double_value(&[])?;
                if !s.is_finite() {
                    return Err(Error::Training(format!(
                        "the loss became {s} in epoch {}, batches {} to {}: {}. Try a lower --lr.",
                        epoch + 1,
                        checked + 1,
                        b + 1,
                        kept()
                    )));
                }
                checked = b + 1;
            }
            progress.update(seen as u64);
        }
        progress.finish();
        let loss_total = loss_sum.f_double_value(&[])?;
        let train_secs = t0.elapsed().as_secs_f64();
        let rec = close_epoch(
            &dir,
            &mut EpochEnd {
                data,
                fingerprint,
                model: &model,
                opt: &mut opt,
                stem,
                records: &mut records,
                best_auc: &mut best_auc,
                best_epoch: &mut best_epoch,
                progress: &mut *progress,
                epochs: cfg.epochs,
            },
            EpochRecord {
                epoch: epoch + 1,
                train_loss: loss_total / seen.max(1) as f64,
                val_loss: f64::NAN,
                val_auc: f64::NAN,
                val_acc: f64::NAN,
                lr,
                seconds: train_secs,
                images_per_sec: seen as f64 / train_secs.max(1e-9),
                step: Some(format!(
                    "{}{}",
                    match steps.gave_up() {
                        None => cfg.step_label(),
                        Some(_) => format!(
                            "{} (the CUDA graph could not be captured)",
                            TrainConfig {
                                cuda_graph: Some(false),
                                ..cfg.clone()
                            }
                            .step_label()
                        ),
                    },
                    if streamed {
                        ", batches from host memory"
                    } else {
                        ""
                    }
                )),
            },
        )?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_training_split_goes_to_the_device_when_it_takes_at_most_half_its_free_memory() {
        const G: u64 = 1 << 30;
        // Full ChestMNIST-224 (78,468 images, 3.67 GiB) on a T4 with 14.5 GiB
        // free: on the device; with 6 GiB free (a shared card): streamed.
        let cm224 = 78_468 * 224 * 224;
        assert_eq!(placement(None, cm224, Some(29 * G / 2)), Placement::Device);
        assert_eq!(
            placement(None, cm224, Some(6 * G)),
            Placement::HostForSpace {
                bytes: cm224,
                free: 6 * G
            }
        );
        // Exactly half fits; a byte more does not.
        assert_eq!(placement(None, 4 * G, Some(8 * G)), Placement::Device);
        assert!(matches!(
            placement(None, 4 * G + 1, Some(8 * G)),
            Placement::HostForSpace { .. }
        ));
        // Asked for: as asked, whatever is free; unknown free memory: the device.
        assert_eq!(placement(Some(true), cm224, Some(G)), Placement::Device);
        assert_eq!(placement(Some(false), 1, Some(80 * G)), Placement::Host);
        assert_eq!(placement(None, cm224, None), Placement::Device);
        // On the CPU the split is in host memory already.
        let split = crate::data::Split {
            name: crate::data::SplitName::Train,
            size: 28,
            images: vec![0; 4 * 28 * 28],
            labels: vec![0; 4 * crate::data::registry::NUM_LABELS],
        };
        assert_eq!(
            split_placement(None, &split, 4, Device::Cpu),
            Placement::Host
        );
    }
}
