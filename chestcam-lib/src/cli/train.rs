//! `chestcam train`: a run folder from a data source.
use super::print_json;
use crate::emit;
use chestcam::choice::{device_name, ChoiceParser};
use chestcam::data::source::DataSource;
use chestcam::model::parse_device;
use chestcam::model::Stem;
use chestcam::train::{Checkpoint, Precision};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct TrainArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size[:train,val,test[:seed]]], or a MedMNIST-format npz.
    #[arg(long, default_value = "chestmnist")]
    source: String,
    /// small (3x3 stride-1, no max-pool) or imagenet (7x7 stride-2 + max-pool); default by image size.
    #[arg(long, value_parser = ChoiceParser::<Stem>::new())]
    stem: Option<Stem>,
    /// Epochs to train (MedMNIST's protocol: 100). The learning rate drops
    /// x0.1 at half and at three quarters of them, where those are whole
    /// epochs (MedMNIST's schedule).
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    /// Training images per step.
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    /// Adam's learning rate before the drops.
    #[arg(long, allow_negative_numbers = true, default_value_t = 1e-3)]
    lr: f64,
    /// Seed of the initial weights, the batches' order and the augmentation.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    subset: Option<usize>,
    /// Random shifts, brightness and contrast (no flips).
    #[arg(long)]
    augment: bool,
    /// Sanity check (data randomisation): train on the training labels
    /// permuted across images (one permutation from --seed); validation and
    /// test keep the true labels. `chestcam trust --shuffled-run` compares
    /// its maps with a real run's.
    #[arg(long)]
    shuffle_labels: bool,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = device_name)]
    device: String,
    /// CPU threads for libtorch (default: libtorch's choice, one per core).
    #[arg(long)]
    threads: Option<i32>,
    /// torchvision-named ImageNet weights (safetensors) to start from.
    #[arg(long)]
    imagenet: Option<PathBuf>,
    /// Channels-last weights and batches: true or false (default: true, faster on the CPU and on CUDA).
    #[arg(long)]
    channels_last: Option<bool>,
    /// CUDA only: replay each full batch's training step from one captured CUDA graph: true or false (default: true on CUDA, where it was the fastest at every size measured: 1.4x eager at 28 px, +3-6% at 64 and 224 px).
    #[arg(long, num_args = 0..=1, default_missing_value = "true")]
    cuda_graph: Option<bool>,
    /// CUDA only: let cuDNN autotune its convolution algorithms (torch.backends.cudnn.benchmark).
    #[arg(long)]
    cudnn_benchmark: bool,
    /// CUDA only: keep the uint8 training split on the device (true) or in host memory, a batch copied at a time (false). Default: on the device when it takes at most half of the device's free memory.
    #[arg(long)]
    data_on_device: Option<bool>,
    /// auto (the fastest measured: fp16 on CUDA, in the CUDA graph at any size, eager from 64 px; bf16 on a CPU with bfloat16 arithmetic such as AVX512-BF16; else fp32), fp32 (MedMNIST's protocol), bf16 (autocast; float32 weights and optimiser) or fp16 (autocast with a gradient scaler, for GPUs without bf16 such as a T4).
    #[arg(long, default_value = "auto", value_parser = ChoiceParser::<Precision>::new())]
    precision: Precision,
    /// The run folder (config.json, metrics.jsonl, best/last checkpoints).
    #[arg(long)]
    run: PathBuf,
    /// Continue the run in --run from its last finished epoch, with the
    /// settings of its config.json. What it trains cannot change; how it
    /// runs can: --device, --threads, --precision, --channels-last,
    /// --cuda-graph, --cudnn-benchmark, and --source for its data's new place.
    #[arg(long)]
    resume: bool,
    /// Print the epochs and the final evaluation as JSON.
    #[arg(long)]
    json: bool,
    /// The options typed on the command line (their ids), filled by main.
    #[arg(skip)]
    pub(crate) typed: Vec<String>,
}

/// Runs `chestcam train` (and `train --resume`).
pub(crate) fn run(a: TrainArgs) -> chestcam::Result<()> {
    let cfg = chestcam::train::TrainConfig {
        channels_last: a.channels_last,
        cuda_graph: a.cuda_graph,
        cudnn_benchmark: a.cudnn_benchmark,
        data_on_device: a.data_on_device,
        precision: a.precision,
        source: a.source,
        stem: a.stem,
        epochs: a.epochs,
        batch_size: a.batch_size,
        lr: a.lr,
        seed: a.seed,
        train_subset: a.subset,
        augment: a.augment,
        shuffle_labels: a.shuffle_labels,
        device: a.device,
        threads: a.threads,
        imagenet: a.imagenet,
        ..Default::default()
    };
    // A relative path is recorded absolute, so that the run can be
    // evaluated, explained and resumed from any folder.
    let absolute = |source: &str| -> chestcam::Result<String> {
        Ok(match source.parse::<DataSource>()? {
            DataSource::Path(p) => std::fs::canonicalize(&p)
                .map_err(|e| chestcam::Error::io(&p, e))?
                .display()
                .to_string(),
            _ => source.to_string(),
        })
    };
    // A resume changes only what was typed, of what it may change.
    let typed = |id: &str| a.typed.iter().any(|t| t == id);
    let changes = chestcam::train::ResumeChanges {
        source: match typed("source") && a.resume {
            true => Some(absolute(&cfg.source)?),
            false => None,
        },
        device: typed("device").then(|| cfg.device.clone()),
        threads: cfg.threads.filter(|_| typed("threads")),
        precision: typed("precision").then_some(cfg.precision),
        channels_last: cfg.channels_last.filter(|_| typed("channels_last")),
        cuda_graph: cfg.cuda_graph.filter(|_| typed("cuda_graph")),
        cudnn_benchmark: typed("cudnn_benchmark").then_some(cfg.cudnn_benchmark),
        data_on_device: cfg.data_on_device.filter(|_| typed("data_on_device")),
    };
    let cfg = if a.resume {
        let c = chestcam::train::resume_config(&a.run, &changes)?;
        if changes.source.is_none() {
            // A recorded file that has moved is named, with the way out.
            chestcam::train::run_source(&a.run, &c.source, None)?;
        }
        c
    } else {
        let source = absolute(&cfg.source)?;
        chestcam::train::TrainConfig { source, ..cfg }
    };
    cfg.validate(None)?;
    // Refusals that need no data come before the data is loaded.
    chestcam::train::check_run_folder(&a.run, a.resume)?;
    if let Some(p) = cfg.imagenet.as_ref().filter(|p| !p.is_file()) {
        return Err(chestcam::Error::invalid(
            "--imagenet",
            format!("{}: no such file", p.display()),
        ));
    }
    let source: DataSource = cfg.source.parse()?;
    let mut progress = chestcam::progress::auto();
    let data = source.load(progress.as_mut())?;
    cfg.validate(Some(data.size))?;
    chestcam::train::check_data(&cfg, &data)?;
    if a.resume {
        chestcam::train::check_resume_data(&a.run, &data)?;
    }
    if cfg.shuffle_labels {
        chestcam::note!("labels: permuted across the training images (--shuffle-labels: a data randomisation run)");
    }
    chestcam::note!(
        "data: {} ({} train / {} val / {} test, {} px)",
        data.provenance,
        data.train.len(),
        data.val.len(),
        data.test.len(),
        data.size
    );
    let step = cfg.resolved(parse_device(&cfg.device)?, data.size);
    chestcam::note!(
        "step: {}{}",
        step.step_summary(),
        if cfg.precision == chestcam::train::Precision::Auto
            && step.precision != chestcam::train::Precision::Fp32
        {
            " (--precision fp32 for MedMNIST's exact protocol)"
        } else {
            ""
        }
    );
    if let (true, Ok(m)) = (
        a.resume,
        chestcam::train::read_meta(&a.run, Checkpoint::Last),
    ) {
        let before = m.records.last().and_then(|r| r.step.clone());
        let now = step.step_label();
        chestcam::note!(
            "resuming after epoch {} of {} (best so far: epoch {}, val AUC {:.4}){}",
            m.epoch,
            cfg.epochs,
            m.best_epoch,
            m.best_auc,
            match before {
                Some(b) if b != now => format!("; epoch {} ran as {b}, now {now}", m.epoch),
                _ => String::new(),
            }
        );
    }
    let json = a.json;
    // A bar on a terminal; in a log, lines for a job (an epoch, a
    // validation) only once it has run 10 s: at 28 px an epoch line
    // says enough, at 224 px on a CPU an epoch takes hours.
    let mut bar: Box<dyn chestcam::progress::Progress> = if json {
        Box::new(chestcam::progress::Silent)
    } else {
        chestcam::progress::patient_images()
    };
    let out = {
        let mut on_epoch = |r: &chestcam::train::EpochRecord| {
            if !json {
                chestcam::note!("{r}");
            }
            std::ops::ControlFlow::Continue(())
        };
        if a.resume {
            chestcam::train::resume_run(&a.run, &changes, &data, bar.as_mut(), &mut on_epoch)?
        } else {
            chestcam::train::train(&cfg, &data, &a.run, false, bar.as_mut(), &mut on_epoch)?
        }
    };
    let (model, meta) =
        chestcam::train::load_model(&a.run, Checkpoint::Best, parse_device(&cfg.device)?)?;
    let test =
        chestcam::train::evaluate_split_with(&model, &data.test, 256, "test split", bar.as_mut())?;
    let rss = chestcam::bench::peak_rss_mib();
    if let (false, Some(r)) = (json, rss) {
        chestcam::note!("peak host memory (RSS): {r:.0} MiB");
    }
    // On CUDA, the caching allocator's peak (what PyTorch's
    // torch.cuda.max_memory_allocated reports).
    let device_mib = match chestcam::model::parse_device(&cfg.device)? {
        tch::Device::Cuda(i) => chestcam::shim::cuda_peak_memory(i, false)
            .ok()
            .map(|(held, reserved)| (held as f64 / 1048576.0, reserved as f64 / 1048576.0)),
        _ => None,
    };
    if let (false, Some((held, reserved))) = (json, device_mib) {
        chestcam::note!(
            "peak device memory: {held:.0} MiB held by tensors, {reserved:.0} MiB reserved"
        );
    }
    if json {
        let v = serde_json::json!({"run": out.run, "epochs": out.records, "best_epoch": meta.epoch, "test": test, "peak_rss_mib": rss, "peak_device_mib": device_mib.map(|d| d.0)});
        print_json(&v)?;
    } else {
        say!(
            "best epoch {} (val AUC {:.4}); test split of {}:",
            meta.epoch,
            meta.val_auc,
            data.provenance
        );
        emit(&test.to_string())?;
    }
    Ok(())
}
