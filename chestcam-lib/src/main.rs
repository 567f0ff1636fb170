//! The `chestcam` command line.
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::source::DataSource;
use chestcam::data::summary::Summary;
use chestcam::viz::montage::{Montage, MontageOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "chestcam",
    version,
    about = "ResNet-18 on ChestMNIST with Grad-CAM explanations"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load a data source and summarise it (counts and prevalence per label).
    Data(DataArgs),
    /// Write a synthetic phantom data set (npz + masks npz) to a folder.
    Phantoms(PhantomArgs),
    /// Show the libtorch build and the device chestcam would use.
    Info,
    /// Train a ResNet-18 (MedMNIST's protocol by default) into a run folder.
    Train(TrainArgs),
    /// Evaluate a run's checkpoint on a split: the per-label table.
    Eval(EvalArgs),
    /// Benchmark training and inference against PyTorch (same libtorch, weights, data).
    Bench(BenchArgs),
    /// Heatmaps for a run's predictions: panel PNG, GIFs and a JSON per image.
    Explain(ExplainArgs),
}

#[derive(clap::Args)]
struct ExplainArgs {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// A user's X-ray (PNG or JPEG, any size, grey or RGB).
    #[arg(long, conflicts_with_all = ["split", "index", "first"])]
    image: Option<PathBuf>,
    /// A split of the run's data source.
    #[arg(long)]
    split: Option<String>,
    #[arg(long, conflicts_with = "first")]
    index: Option<usize>,
    #[arg(long)]
    first: Option<usize>,
    /// gradcam, gradcam++, xgradcam, hirescam, layercam, eigencam, scorecam, ablationcam.
    #[arg(long, default_value = "gradcam")]
    method: String,
    /// all, topK (top3), positive, or comma-separated label names.
    #[arg(long, default_value = "top3")]
    labels: String,
    /// layer2, layer3 or layer4.
    #[arg(long, default_value = "layer4")]
    stage: String,
    /// jet, inferno, viridis or turbo.
    #[arg(long, default_value = "jet")]
    colormap: String,
    #[arg(long, default_value = "best")]
    checkpoint: String,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    out: PathBuf,
}

#[derive(clap::Args)]
struct BenchArgs {
    /// A MedMNIST-format npz (its first train images are the batch).
    #[arg(long)]
    data: PathBuf,
    #[arg(long, default_value_t = 128)]
    batch: usize,
    #[arg(long, default_value_t = 2)]
    threads: i32,
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    #[arg(long, default_value_t = 6)]
    reps: usize,
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    #[arg(long, default_value = "python")]
    python: String,
    #[arg(long, default_value = "scripts/bench_pytorch.py")]
    script: PathBuf,
    /// Images for the Score-CAM timing (it runs 512 forwards per image).
    #[arg(long, default_value_t = 8)]
    score_batch: usize,
}

#[derive(clap::Args)]
struct TrainArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size], or a path to a MedMNIST-format npz.
    #[arg(long, default_value = "chestmnist")]
    source: String,
    /// small (3x3 stride-1, no max-pool) or imagenet (7x7 stride-2 + max-pool); default by image size.
    #[arg(long)]
    stem: Option<String>,
    #[arg(long, default_value_t = 100)]
    epochs: usize,
    #[arg(long, default_value_t = 128)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Use only the first N training images.
    #[arg(long)]
    subset: Option<usize>,
    /// Random shifts, brightness and contrast (no flips).
    #[arg(long)]
    augment: bool,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    threads: Option<i32>,
    /// torchvision-named ImageNet weights (safetensors) to start from.
    #[arg(long)]
    imagenet: Option<PathBuf>,
    /// The run folder (config.json, metrics.jsonl, best/last checkpoints).
    #[arg(long)]
    run: PathBuf,
    /// Continue the run in --run (its saved config.json is used).
    #[arg(long)]
    resume: bool,
    /// Print the epochs and the final evaluation as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct EvalArgs {
    #[arg(long)]
    run: PathBuf,
    #[arg(long, default_value = "test")]
    split: String,
    /// best or last.
    #[arg(long, default_value = "best")]
    checkpoint: String,
    #[arg(long, default_value = "auto")]
    device: String,
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DataArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size], or a path to a MedMNIST-format npz.
    #[arg(long, default_value = "chestmnist")]
    source: String,
    /// Print the summary table (the default when nothing else is asked).
    #[arg(long)]
    summary: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write a montage of sample images per label to this PNG.
    #[arg(long)]
    montage: Option<PathBuf>,
    /// Which split the montage shows.
    #[arg(long, default_value = "train")]
    split: String,
}

#[derive(clap::Args)]
struct PhantomArgs {
    #[arg(long, default_value_t = 28)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per split: train,val,test.
    #[arg(long, default_value = "2000,300,500")]
    counts: String,
    #[arg(long)]
    out: PathBuf,
}

/// Prints `v` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> chestcam::Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| chestcam::Error::invalid("json", e.to_string()))?;
    println!("{text}");
    Ok(())
}

fn run(cli: Cli) -> chestcam::Result<()> {
    match cli.cmd {
        Cmd::Data(a) => {
            let source: DataSource = a.source.parse()?;
            let mut progress = chestcam::progress::auto();
            let data = source.load(progress.as_mut())?;
            let summary = Summary::of(&data);
            if a.json {
                print_json(&summary)?;
            } else if a.summary || a.montage.is_none() {
                print!("{summary}");
            }
            if let Some(path) = a.montage {
                let opt = MontageOptions {
                    split: a.split.parse()?,
                    ..Default::default()
                };
                Montage::new(&data, opt).save(&path)?;
                eprintln!("montage written to {}", path.display());
            }
        }
        Cmd::Train(a) => {
            let cfg = chestcam::train::TrainConfig {
                source: a.source,
                stem: a.stem.map(|s| s.parse()).transpose()?,
                epochs: a.epochs,
                batch_size: a.batch_size,
                lr: a.lr,
                seed: a.seed,
                train_subset: a.subset,
                augment: a.augment,
                device: a.device,
                threads: a.threads,
                imagenet: a.imagenet,
                ..Default::default()
            };
            let cfg = if a.resume && a.run.join("config.json").exists() {
                chestcam::train::load_config(&a.run)?
            } else {
                cfg
            };
            cfg.validate(None)?;
            let source: DataSource = cfg.source.parse()?;
            let mut progress = chestcam::progress::auto();
            let data = source.load(progress.as_mut())?;
            cfg.validate(Some(data.size))?;
            eprintln!(
                "data: {} ({} train / {} val / {} test, {} px)",
                data.provenance,
                data.train.len(),
                data.val.len(),
                data.test.len(),
                data.size
            );
            let json = a.json;
            let mut bar: Box<dyn chestcam::progress::Progress> =
                if std::io::IsTerminal::is_terminal(&std::io::stderr()) && !json {
                    Box::new(chestcam::progress::Bar::images())
                } else {
                    Box::new(chestcam::progress::Silent)
                };
            let out =
                chestcam::train::train(&cfg, &data, &a.run, a.resume, bar.as_mut(), &mut |r| {
                    if !json {
                        eprintln!("{r}");
                    }
                    std::ops::ControlFlow::Continue(())
                })?;
            let (model, meta) = chestcam::train::load_model(
                &a.run,
                "best",
                chestcam::model::parse_device(&cfg.device)?,
            )?;
            let test = chestcam::train::evaluate_split(&model, &data.test, 256)?;
            if json {
                let v = serde_json::json!({"run": out.run, "epochs": out.records, "best_epoch": meta.epoch, "test": test});
                print_json(&v)?;
            } else {
                println!(
                    "best epoch {} (val AUC {:.4}); test split of {}:",
                    meta.epoch, meta.val_auc, data.provenance
                );
                print!("{test}");
            }
        }
        Cmd::Eval(a) => {
            let cfg = chestcam::train::load_config(&a.run)?;
            let split: chestcam::data::SplitName = a.split.parse()?;
            let device = chestcam::model::parse_device(&a.device)?;
            let (model, meta) = chestcam::train::load_model(&a.run, &a.checkpoint, device)?;
            let mut progress = chestcam::progress::auto();
            let data = cfg.source.parse::<DataSource>()?.load(progress.as_mut())?;
            if data.size != meta.size {
                return Err(chestcam::Error::invalid(
                    "data",
                    format!(
                        "{} has {} px images but the model was trained on {} px",
                        data.provenance, data.size, meta.size
                    ),
                ));
            }
            let e = chestcam::train::evaluate_split(&model, data.split(split), 256)?;
            if a.json {
                print_json(&e)?;
            } else {
                println!(
                    "{} checkpoint (epoch {}) on the {split} split of {}:",
                    a.checkpoint, meta.epoch, data.provenance
                );
                print!("{e}");
            }
        }
        Cmd::Bench(a) => {
            let report = chestcam::bench::run(&chestcam::bench::BenchOptions {
                data: a.data,
                batch: a.batch,
                threads: a.threads,
                warmup: a.warmup,
                reps: a.reps,
                out: a.out,
                python: a.python,
                script: a.script,
                score_batch: a.score_batch,
            })?;
            print!("{report}");
        }
        Cmd::Explain(a) => {
            use chestcam::cam::explain::{explain, explain_split, load_xray, ExplainOptions};
            let stage = match a.stage.as_str() {
                "layer2" => chestcam::model::Stage::Layer2,
                "layer3" => chestcam::model::Stage::Layer3,
                "layer4" => chestcam::model::Stage::Layer4,
                other => {
                    return Err(chestcam::Error::invalid(
                        "stage",
                        format!("{other:?} (expected layer2, layer3 or layer4)"),
                    ))
                }
            };
            let opts = ExplainOptions {
                method: a.method.parse()?,
                stage,
                labels: a.labels.parse()?,
                overlay: chestcam::viz::heatmap::OverlayOptions {
                    colormap: a.colormap.parse()?,
                    ..Default::default()
                },
                ..Default::default()
            };
            let device = chestcam::model::parse_device(&a.device)?;
            let (model, meta) = chestcam::train::load_model(&a.run, &a.checkpoint, device)?;
            let ex = if let Some(path) = &a.image {
                let name = path
                    .file_stem()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into());
                explain(
                    &model,
                    &load_xray(path, meta.size)?,
                    meta.size,
                    &[name],
                    None,
                    &opts,
                )?
            } else {
                let split: chestcam::data::SplitName =
                    a.split.as_deref().unwrap_or("test").parse()?;
                let cfg = chestcam::train::load_config(&a.run)?;
                let mut progress = chestcam::progress::auto();
                let data = cfg.source.parse::<DataSource>()?.load(progress.as_mut())?;
                let sp = data.split(split);
                let idx: Vec<usize> = match (a.index, a.first) {
                    (Some(i), _) => vec![i],
                    (None, Some(n)) => (0..n.min(sp.len())).collect(),
                    (None, None) => {
                        return Err(chestcam::Error::invalid(
                            "explain",
                            "give --image FILE, or --split with --index I or --first N",
                        ))
                    }
                };
                explain_split(&model, sp, &idx, &opts)?
            };
            for e in &ex {
                for p in e.write(&a.out, opts.gif_frames, opts.gif_delay_ms)? {
                    println!("{}", p.display());
                }
            }
        }
        Cmd::Info => {
            let cuda = tch::Cuda::is_available();
            println!("chestcam {}", env!("CARGO_PKG_VERSION"));
            println!(
                "cuda available: {cuda} ({} device(s))",
                tch::Cuda::device_count()
            );
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            println!("device: {:?}", tch::Device::cuda_if_available());
            println!("cpu threads: {}", tch::get_num_threads());
        }
        Cmd::Phantoms(a) => {
            let counts: Vec<usize> = a
                .counts
                .split(',')
                .map(|c| c.trim().parse::<usize>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    chestcam::Error::invalid(
                        "--counts",
                        format!("{:?} (expected three numbers: train,val,test)", a.counts),
                    )
                })?;
            let [tr, va, te] = counts[..] else {
                return Err(chestcam::Error::invalid(
                    "--counts",
                    format!("{:?} (expected three numbers: train,val,test)", a.counts),
                ));
            };
            let cfg = PhantomConfig {
                size: a.size,
                seed: a.seed,
                counts: [tr, va, te],
                ..Default::default()
            };
            let (d, m) = cfg.write(&a.out)?;
            println!("{}\n{}", d.display(), m.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
