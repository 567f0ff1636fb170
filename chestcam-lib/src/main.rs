//! The `chestcam` command line.
use chestcam::cam::aug_smooth::AugSmooth;
use chestcam::cam::explain::MapsOut;
use chestcam::cam::Method;
use chestcam::choice::{device_name, ChoiceParser, Choices, ListParser};
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::source::DataSource;
use chestcam::data::summary::Summary;
use chestcam::data::SplitName;
use chestcam::model::Stem;
use chestcam::model::{parse_device, Stage};
use chestcam::train::{Checkpoint, Precision};
use chestcam::viz::heatmap::Colormap;
use chestcam::viz::montage::{Montage, MontageOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

/// Writes to standard output: a reader that went away (`| head`) ends the
/// program quietly with success; any other failure (`> /dev/full`) is an
/// error that says so, never a panic.
fn emit(text: &str) -> chestcam::Result<()> {
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    so.write_all(text.as_bytes())
        .and_then(|_| so.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            chestcam::Error::io("standard output", e)
        })
}

/// `println!` through [`emit`], returning its error from the function.
macro_rules! say {
    ($($arg:tt)*) => {
        emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

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
    /// Can the heatmaps be trusted? Localisation, faithfulness and sanity
    /// checks per method and label, beside RandomCAM and a centre prior.
    Trust(TrustArgs),
}

#[derive(clap::Args)]
struct TrustArgs {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// The data to read instead of the source recorded in the run's
    /// config.json: another copy of that file (after it was moved), or any
    /// source with the run's image size.
    #[arg(long)]
    source: Option<String>,
    /// The split whose first --images images are checked.
    #[arg(long, default_value = "test", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
    /// Comma-separated methods, or all (every method but RandomCAM, which
    /// is always added as a baseline with the centre prior).
    #[arg(
        long,
        default_value = "gradcam,gradcam++,xgradcam,hirescam,layercam,eigencam",
        value_parser = ListParser::new(Method::ALL.into_iter().filter(|m| *m != Method::RandomCam))
    )]
    methods: Choices<Method>,
    /// The stage whose activation the methods read (and the cascade's test of it).
    #[arg(long, default_value = "layer4", value_parser = ChoiceParser::<Stage>::new())]
    stage: Stage,
    /// The first N images of the split.
    #[arg(long, default_value_t = 32)]
    images: usize,
    /// all, or comma-separated label names.
    #[arg(long, default_value = "all")]
    labels: String,
    /// Comma-separated checks, or all.
    #[arg(
        long,
        default_value = "all",
        value_parser = ListParser::new(chestcam::trust::report::Check::ALL)
    )]
    metrics: Choices<chestcam::trust::report::Check>,
    /// Deletion/insertion steps.
    #[arg(long, default_value_t = 10)]
    steps: usize,
    /// ROAD's imputation noise (0 for none).
    #[arg(long, allow_negative_numbers = true, default_value_t = 0.01)]
    noise: f64,
    /// ROAD's pixels where map values tie at a percentile: threshold
    /// (pytorch-grad-cam: all of them, so a map that is 0 on 40% of the
    /// image loses all of it at p = 10..40) or rank (a fixed share, ties in
    /// a seeded random order).
    #[arg(long, default_value = "threshold", value_parser = ChoiceParser::<chestcam::trust::road::Ties>::new())]
    road_ties: chestcam::trust::road::Ties,
    /// Pointing-game tolerance in pixels (default: 15 px at 224 px, scaled).
    #[arg(long, allow_negative_numbers = true)]
    tolerance: Option<f64>,
    /// A masks npz (`{split}_masks`, [n, 14, S, S]); phantom sources find theirs.
    #[arg(long, conflicts_with = "boxes")]
    masks: Option<PathBuf>,
    /// Boxes in NIH's BBox_List_2017.csv format (needs --names).
    #[arg(long, requires = "names")]
    boxes: Option<PathBuf>,
    /// A CSV naming the NIH image of each row (image_index, npz_split, npz_index).
    #[arg(long, requires = "boxes")]
    names: Option<PathBuf>,
    /// best (the epoch of the highest validation AUC) or last (the last finished epoch).
    #[arg(long, default_value = "best", value_parser = ChoiceParser::<Checkpoint>::new())]
    checkpoint: Checkpoint,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: tch::Device,
    /// Images per forward.
    #[arg(long, default_value_t = 64)]
    chunk: usize,
    /// The arithmetic of the forwards of perturbed images (deletion, insertion, ROAD, confidence): fp32 (the reference implementations' numbers), bf16 autocast (2.2-2.7x faster forwards on a CPU with bfloat16 arithmetic such as AVX512-BF16; probabilities within about 0.01 of fp32), fp16 autocast (for GPUs without bf16), or auto (as train picks it for the device). The maps are always computed in fp32.
    #[arg(long, default_value = "fp32", value_parser = ChoiceParser::<Precision>::new())]
    precision: Precision,
    /// Seed of the cascade's re-initialised layers and of the random image pairs of its baseline.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Also run the data randomisation test against this run, trained on
    /// the same data with `train --shuffle-labels` (its last checkpoint).
    #[arg(long)]
    shuffled_run: Option<PathBuf>,
    /// The folder for trust.json, trust.md and the pictures (made if missing).
    #[arg(long)]
    out: PathBuf,
}

/// Parses a comma-separated list with `parse`, `all` giving `all`.
fn list<T>(
    s: &str,
    all: &[T],
    parse: impl Fn(&str) -> chestcam::Result<T>,
) -> chestcam::Result<Vec<T>>
where
    T: Clone + PartialEq,
{
    if s.trim().eq_ignore_ascii_case("all") {
        return Ok(all.to_vec());
    }
    let mut out: Vec<T> = Vec::new();
    for part in s.split(',').filter(|p| !p.trim().is_empty()) {
        let v = parse(part)?;
        if !out.contains(&v) {
            out.push(v);
        }
    }
    if out.is_empty() {
        return Err(chestcam::Error::invalid(
            "list",
            format!("{s:?} names nothing"),
        ));
    }
    Ok(out)
}

fn trust(a: TrustArgs) -> chestcam::Result<()> {
    use chestcam::trust::report::TrustOptions;
    // Every argument is checked before the model and data are loaded.
    let labels = if a.labels.trim().eq_ignore_ascii_case("all") {
        Vec::new()
    } else {
        list(&a.labels, &[], chestcam::data::registry::label_index)?
    };
    let split = a.split;
    if a.images == 0 {
        return Err(chestcam::Error::invalid(
            "--images",
            "0: check at least 1 image (2 for the randomisation check)",
        ));
    }
    if a.steps == 0 || a.steps > 1000 {
        return Err(chestcam::Error::invalid(
            "--steps",
            format!("{} (1 to 1000)", a.steps),
        ));
    }
    if !(0.0..=1.0).contains(&a.noise) {
        return Err(chestcam::Error::invalid(
            "--noise",
            format!("{} (0 to 1)", a.noise),
        ));
    }
    if a.chunk == 0 {
        return Err(chestcam::Error::invalid(
            "--chunk",
            "0 (at least 1 image per forward)",
        ));
    }
    if let Some(t) = a.tolerance.filter(|t| !t.is_finite() || *t < 0.0) {
        return Err(chestcam::Error::invalid(
            "--tolerance",
            format!("{t} (pixels, 0 or more)"),
        ));
    }
    for f in [&a.masks, &a.boxes, &a.names].into_iter().flatten() {
        if !f.is_file() {
            return Err(chestcam::Error::invalid(
                "ground truth",
                format!("{} is not a file", f.display()),
            ));
        }
    }
    if a.out.exists() && !a.out.is_dir() {
        return Err(chestcam::Error::invalid(
            "--out",
            format!("{} exists and is not a folder", a.out.display()),
        ));
    }
    // The output folder is made first, so that an unwritable one fails before
    // minutes of work; one made here and left empty by a failure is removed.
    let opts = TrustOptions {
        methods: a.methods.0.clone(),
        stage: a.stage,
        labels,
        checks: a.metrics.0.clone(),
        steps: a.steps,
        road: chestcam::trust::road::RoadSettings {
            noise: a.noise,
            ties: a.road_ties,
            ..Default::default()
        },
        tolerance: a.tolerance,
        chunk: a.chunk,
        precision: a.precision,
        seed: a.seed,
    };
    let device = a.device;
    // The output folder is made before minutes of work, so that an
    // unwritable one fails first; one made here and left empty by a later
    // failure is removed again.
    let made = !a.out.exists();
    std::fs::create_dir_all(&a.out).map_err(|e| chestcam::Error::io(&a.out, e))?;
    let out = a.out.clone();
    let result = trust_run(a, split, opts, device);
    if result.is_err() && made {
        let _ = std::fs::remove_dir(&out);
    }
    result
}

/// The trust checks once every argument is known to be sound.
fn trust_run(
    a: TrustArgs,
    split: chestcam::data::SplitName,
    opts: chestcam::trust::report::TrustOptions,
    device: tch::Device,
) -> chestcam::Result<()> {
    use chestcam::trust::truth::{load_truth, TruthSource};
    let (model, meta) = chestcam::train::load_model(&a.run, a.checkpoint, device)?;
    let cfg = chestcam::train::load_config(&a.run)?;
    // The permuted-label run is checked before minutes of work.
    let shuffled = match &a.shuffled_run {
        Some(r) => Some((
            r,
            chestcam::trust::data_randomisation::load_shuffled_run(
                r,
                &model,
                meta.fingerprint.as_ref(),
            )?,
        )),
        None => None,
    };
    let source = chestcam::train::run_source(&a.run, &cfg.source, a.source.as_deref())?;
    let data = source.load(chestcam::progress::auto().as_mut())?;
    same_data(&a.run, &data, &meta, split)?;
    let sp = data.split(split);
    let idx: Vec<usize> = (0..a.images.min(sp.len())).collect();
    if a.images > sp.len() && !idx.is_empty() {
        chestcam::note!(
            "--images {}: the {split} split has {} images; all of them are checked",
            a.images,
            sp.len()
        );
    }
    if idx.is_empty() {
        return Err(chestcam::Error::invalid(
            "--split",
            format!("the {split} split of {} is empty", data.provenance),
        ));
    }
    let from = TruthSource {
        masks: a.masks,
        boxes: a.boxes.zip(a.names),
    };
    let truth = load_truth(&source, split, sp.len(), data.size, &idx, &from)?;
    if truth.is_none() {
        chestcam::note!(
            "no ground truth for {} (give --masks or --boxes/--names): localisation is not scored",
            data.provenance
        );
    }
    let mut report = chestcam::trust::report::run(
        &model,
        sp,
        &idx,
        &data.provenance,
        truth,
        &opts,
        chestcam::progress::auto_steps().as_mut(),
    )?;
    if let Some((r, m)) = &shuffled {
        chestcam::note!("data randomisation: maps of {} against it", r.display());
        report.add_data_randomisation(&model, m, sp, &opts)?;
    }
    for p in report.write(&a.out)? {
        say!("{}", p.display());
    }
    Ok(())
}

/// What `explain` needs to know which images to explain.
const WHICH_IMAGES: &str =
    "give --image FILE, or --index I or --first N (of --split, default test)";

#[derive(clap::Args)]
struct ExplainArgs {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// The data to read instead of the source recorded in the run's
    /// config.json: another copy of that file (after it was moved), or any
    /// source with the run's image size.
    #[arg(long, conflicts_with = "image")]
    source: Option<String>,
    /// A user's X-ray (PNG or JPEG, any size, grey or RGB).
    #[arg(long, conflicts_with_all = ["split", "index", "first"])]
    image: Option<PathBuf>,
    /// The split of the run's data source that --index and --first count in
    /// (default: test).
    #[arg(long, value_parser = ChoiceParser::<SplitName>::new())]
    split: Option<SplitName>,
    /// One image of --split, by its index (from 0).
    #[arg(long, conflicts_with = "first")]
    index: Option<usize>,
    /// The first N images of --split.
    #[arg(long)]
    first: Option<usize>,
    /// With --html, several (gradcam,hirescam) or all: the viewer offers
    /// each, the pictures show the first.
    #[arg(long, default_value = "gradcam", value_parser = ListParser::new(Method::ALL))]
    method: Choices<Method>,
    /// all, topK (top3), positive, or comma-separated label names.
    #[arg(long, default_value = "top3")]
    labels: String,
    /// Several (layer3,layer4), or all, average their maps, as
    /// pytorch-grad-cam does with several target layers.
    #[arg(long, default_value = "layer4", value_parser = ListParser::new(Stage::ALL))]
    stage: Choices<Stage>,
    /// Each map is the first principal component of its per-channel terms
    /// instead of their sum (pytorch-grad-cam's eigen_smooth).
    #[arg(long)]
    eigen_smooth: bool,
    /// Average the maps of augmented copies: off, shifts (small shifts x
    /// brightness 0.9/1/1.1) or flip (pytorch-grad-cam's horizontal flip x
    /// brightness; a flipped chest X-ray is another anatomy).
    #[arg(long, default_value = "off", value_parser = ChoiceParser::<AugSmooth>::new())]
    aug_smooth: AugSmooth,
    /// The heatmaps' colour scale.
    #[arg(long, default_value = "jet", value_parser = ChoiceParser::<Colormap>::new())]
    colormap: Colormap,
    /// best (the epoch of the highest validation AUC) or last (the last finished epoch).
    #[arg(long, default_value = "best", value_parser = ChoiceParser::<Checkpoint>::new())]
    checkpoint: Checkpoint,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: tch::Device,
    /// Deletion steps of each map's trust line (deletion AUC beside
    /// RandomCAM's); 0 switches it off.
    #[arg(long, default_value_t = 10)]
    trust_steps: usize,
    /// The folder for the panels, GIFs and JSON (made if missing).
    #[arg(long)]
    out: PathBuf,
    /// Replace outputs an earlier explain wrote (refused otherwise).
    #[arg(long)]
    overwrite: bool,
    /// Also write viewer.html into --out: one self-contained page to click
    /// through every image, all 14 labels, each method and stage.
    #[arg(long)]
    html: bool,
    /// Also write <name>_maps.npz beside the JSON (numpy.load reads it):
    /// raw (as the method made them, before ReLU and scaling, at the
    /// activation's resolution), scaled (as shown, at the input's), or both.
    #[arg(long, value_parser = ChoiceParser::<MapsOut>::new())]
    maps: Option<MapsOut>,
    /// With --html: the stages the viewer offers, each on its own
    /// (layer3,layer4, or all); default: --stage.
    #[arg(long, requires = "html", value_parser = ListParser::new(Stage::ALL))]
    html_stages: Option<Choices<Stage>>,
}

/// The viewer page `explain --html` writes into --out.
const VIEWER_FILE: &str = "viewer.html";

/// The explanations the pictures show and, with --html, the viewer of every
/// method and stage choice, written to `<out>/viewer.html`. When the
/// pictures' method and stages are one of the viewer's views (always so
/// without --html-stages), that view's explanation of all 14 labels is cut
/// down to the labels asked for instead of explaining the images twice.
fn explain_input(
    model: &chestcam::model::Model,
    input: &chestcam::viz::viewer::ViewerInput,
    methods: &[Method],
    html_stages: &[Vec<Stage>],
    opts: &chestcam::cam::explain::ExplainOptions,
    a: &ExplainArgs,
) -> chestcam::Result<Vec<chestcam::cam::explain::Explanation>> {
    if !a.html {
        return input.explain(model, opts);
    }
    let title = format!("chestcam - {}", a.run.display());
    let (v, views) =
        chestcam::viz::viewer::build(model, input, methods, html_stages, opts, &title)?;
    std::fs::create_dir_all(&a.out).map_err(|e| chestcam::Error::io(&a.out, e))?;
    let path = a.out.join(VIEWER_FILE);
    v.save(&path)?;
    say!("{}", path.display());
    let stages = opts.stages();
    match views
        .iter()
        .find(|w| w.method == opts.method && w.stages == stages)
    {
        Some(w) => w
            .explanations
            .iter()
            .map(|e| e.restricted(&opts.labels))
            .collect(),
        None => input.explain(model, opts),
    }
}

#[derive(clap::Args)]
struct BenchArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size[:train,val,test[:seed]]], or a MedMNIST-format npz: its first --batch training images (all, when it has fewer) are the batch.
    #[arg(long)]
    data: String,
    /// Time the batch at this image size (28, 64, 224, ...): the images are resized by nearest neighbour, and the stem is the default for that size.
    #[arg(long)]
    size: Option<usize>,
    /// Images per batch, for training steps, inference and CAM maps.
    #[arg(long, default_value_t = 128)]
    batch: usize,
    /// CPU threads, the same for both sides.
    #[arg(long, default_value_t = 2)]
    threads: i32,
    /// Untimed runs of each row before the timed ones.
    #[arg(long, default_value_t = 2)]
    warmup: usize,
    /// Timed runs of each row; the table gives their median.
    #[arg(long, default_value_t = 6)]
    reps: usize,
    /// Folder for the batch, the shared initial weights and the PyTorch side's files.
    #[arg(long, default_value = "out/bench")]
    out: PathBuf,
    /// The Python that runs the PyTorch side (torch 2.11.0; pytorch-grad-cam 1.5.7 for the CAM and ROAD rows).
    #[arg(long, default_value = "python")]
    python: String,
    /// The PyTorch side's script.
    #[arg(long, default_value = "scripts/bench_pytorch.py")]
    script: PathBuf,
    /// Images for the Score-CAM timing (it runs 512 forwards per image).
    #[arg(long, default_value_t = 8)]
    score_batch: usize,
    /// Images for the ROAD row (14 labels each, against pytorch-grad-cam); 0 skips it.
    #[arg(long, default_value_t = 128)]
    road_images: usize,
    /// Also time every other CAM method's 14 calls in pytorch-grad-cam
    /// against chestcam's one call (once each; minutes on a CPU).
    #[arg(long)]
    all_methods: bool,
    /// auto, cpu, cuda or cuda:N: where both sides run (auto: CUDA when present).
    #[arg(long, default_value = "cpu", value_parser = device_name)]
    device: String,
}

#[derive(clap::Args)]
struct TrainArgs {
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
    typed: Vec<String>,
}

#[derive(clap::Args)]
struct EvalArgs {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// The data to read instead of the source recorded in the run's
    /// config.json: another copy of that file (after it was moved), or any
    /// source with the run's image size.
    #[arg(long)]
    source: Option<String>,
    /// The split to evaluate on.
    #[arg(long, default_value = "test", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
    /// best (the epoch of the highest validation AUC) or last (the last finished epoch).
    #[arg(long, default_value = "best", value_parser = ChoiceParser::<Checkpoint>::new())]
    checkpoint: Checkpoint,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: tch::Device,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(clap::Args)]
struct DataArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size[:train,val,test[:seed]]], or a MedMNIST-format npz.
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
    #[arg(long, default_value = "train", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
}

#[derive(clap::Args)]
struct PhantomArgs {
    /// Image side in pixels (28, 64, 128, 224, ...).
    #[arg(long, default_value_t = 28)]
    size: usize,
    /// The generator's seed: the same seed, size and counts write the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per split: train,val,test.
    #[arg(long, default_value = "2000,300,500")]
    counts: String,
    /// The folder to write into (made if missing): phantom_<size>_seed<seed>.npz and its _masks.npz.
    #[arg(long)]
    out: PathBuf,
}

/// Refuses data of another size than the model was trained on, and says
/// so when `split` holds other images than the run recorded for it (the
/// check is returned for outputs that record it).
fn same_data(
    run: &std::path::Path,
    data: &chestcam::data::Dataset,
    meta: &chestcam::train::CheckpointMeta,
    split: chestcam::data::SplitName,
) -> chestcam::Result<chestcam::train::SplitCheck> {
    if data.size != meta.size {
        return Err(chestcam::Error::invalid(
            "data",
            format!(
                "{} has {} px images but the model was trained on {} px",
                data.provenance, data.size, meta.size
            ),
        ));
    }
    let check = chestcam::train::SplitCheck::of(meta, data, split);
    if let Some(note) = check.note(run, data) {
        chestcam::note!("{note}");
    }
    Ok(check)
}

/// What `eval --json` and `explain`'s JSON record of the split they read:
/// the source, the split, its fingerprint and whether the run recorded it.
fn split_record(
    data: &chestcam::data::Dataset,
    check: &chestcam::train::SplitCheck,
) -> [(&'static str, serde_json::Value); 4] {
    [
        ("data", serde_json::json!(data.provenance.source)),
        ("split", serde_json::json!(check.split)),
        ("split_fingerprint", serde_json::json!(check.now)),
        ("same_split_as_run", serde_json::json!(check.same_as_run())),
    ]
}

/// `p` as an absolute path without `..` or links, for the records.
fn full_path(p: &std::path::Path) -> chestcam::Result<String> {
    Ok(std::fs::canonicalize(p)
        .map_err(|e| chestcam::Error::io(p, e))?
        .display()
        .to_string())
}

/// Prints `v` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> chestcam::Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| chestcam::Error::invalid("json", e.to_string()))?;
    say!("{text}");
    Ok(())
}

fn run(cli: Cli) -> chestcam::Result<()> {
    match cli.cmd {
        Cmd::Data(a) => {
            let source: DataSource = a.source.parse()?;
            let split = a.split;
            if let Some(m) = a
                .montage
                .as_ref()
                .filter(|m| !m.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
            {
                return Err(chestcam::Error::invalid(
                    "--montage",
                    format!(
                        "{}: a montage is written as PNG; give a .png name",
                        m.display()
                    ),
                ));
            }
            let mut progress = chestcam::progress::auto();
            let data = source.load(progress.as_mut())?;
            let summary = Summary::of(&data);
            if a.json {
                print_json(&summary)?;
            } else if a.summary || a.montage.is_none() {
                emit(&summary.to_string())?;
            }
            if let Some(path) = a.montage {
                let opt = MontageOptions {
                    split,
                    ..Default::default()
                };
                Montage::new(&data, opt).save(&path)?;
                chestcam::note!("montage written to {}", path.display());
            }
        }
        Cmd::Train(a) => {
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
                    chestcam::train::resume_run(
                        &a.run,
                        &changes,
                        &data,
                        bar.as_mut(),
                        &mut on_epoch,
                    )?
                } else {
                    chestcam::train::train(&cfg, &data, &a.run, false, bar.as_mut(), &mut on_epoch)?
                }
            };
            let (model, meta) =
                chestcam::train::load_model(&a.run, Checkpoint::Best, parse_device(&cfg.device)?)?;
            let test = chestcam::train::evaluate_split_with(
                &model,
                &data.test,
                256,
                "test split",
                bar.as_mut(),
            )?;
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
        }
        Cmd::Eval(a) => {
            let cfg = chestcam::train::load_config(&a.run)?;
            let split = a.split;
            let (model, meta) = chestcam::train::load_model(&a.run, a.checkpoint, a.device)?;
            let mut progress = chestcam::progress::auto();
            let data = chestcam::train::run_source(&a.run, &cfg.source, a.source.as_deref())?
                .load(progress.as_mut())?;
            let check = same_data(&a.run, &data, &meta, split)?;
            let label = format!("{split} split");
            let e = chestcam::train::evaluate_split_with(
                &model,
                data.split(split),
                256,
                &label,
                chestcam::progress::patient_images().as_mut(),
            )?;
            if a.json {
                // The evaluation, with what was evaluated on what.
                let mut v = serde_json::to_value(&e)
                    .map_err(|e| chestcam::Error::invalid("json", e.to_string()))?;
                if let Some(o) = v.as_object_mut() {
                    for (k, val) in [
                        ("checkpoint", serde_json::json!(a.checkpoint.to_string())),
                        ("epoch", serde_json::json!(meta.epoch)),
                    ]
                    .into_iter()
                    .chain(split_record(&data, &check))
                    {
                        o.insert(k.to_string(), val);
                    }
                }
                print_json(&v)?;
            } else {
                say!(
                    "{} checkpoint (epoch {}) on the {split} split of {}:",
                    a.checkpoint,
                    meta.epoch,
                    data.provenance
                );
                emit(&e.to_string())?;
            }
        }
        Cmd::Bench(a) => {
            let o = chestcam::bench::BenchOptions {
                data: a.data,
                size: a.size,
                batch: a.batch,
                threads: a.threads,
                warmup: a.warmup,
                reps: a.reps,
                out: a.out,
                python: a.python,
                script: a.script,
                score_batch: a.score_batch,
                road_images: a.road_images,
                device: a.device,
                all_methods: a.all_methods,
            };
            let report = chestcam::bench::run(&o, &chestcam::progress::auto_steps)?;
            emit(&report.text)?;
            // Printed apart, after the main table: a capture that fails
            // badly cannot take the table with it.
            emit(&chestcam::bench::graph_rows(&o, &report)?)?;
            emit(&chestcam::bench::cam_parity_rows(&o)?)?;
            emit(&chestcam::bench::cam_graph_rows(&o)?)?;
        }
        Cmd::Trust(a) => trust(a)?,
        Cmd::Explain(a) => {
            use chestcam::cam::explain::{load_xray, ExplainOptions};
            let stages = a.stage.0.clone();
            let methods = a.method.0.clone();
            let maps_out = a.maps;
            if methods.len() > 1 && !a.html {
                return Err(chestcam::Error::invalid(
                    "--method",
                    format!(
                        "{} methods: several need --html (the pictures show one)",
                        methods.len()
                    ),
                ));
            }
            let html_stages: Vec<Vec<chestcam::model::Stage>> = match &a.html_stages {
                Some(h) => h.iter().map(|s| vec![*s]).collect(),
                None => vec![stages.clone()],
            };
            let opts = ExplainOptions {
                method: methods[0],
                stage: stages[0],
                more_stages: stages[1..].to_vec(),
                smooth: chestcam::cam::Smooth {
                    eigen: a.eigen_smooth,
                    aug: a.aug_smooth,
                },
                labels: a.labels.parse()?,
                overlay: chestcam::viz::heatmap::OverlayOptions {
                    colormap: a.colormap,
                    ..Default::default()
                },
                trust_steps: a.trust_steps.min(1000),
                ..Default::default()
            };
            if a.image.is_none() {
                match (&a.split, a.index, a.first) {
                    (_, _, Some(0)) => {
                        return Err(chestcam::Error::invalid(
                            "--first",
                            "0: explain at least 1 image",
                        ))
                    }
                    (_, Some(_), _) | (_, _, Some(_)) => {}
                    _ => return Err(chestcam::Error::invalid("explain", WHICH_IMAGES)),
                }
            }
            // The image's whole file name (a/good.png and b/good.jpg differ);
            // existing outputs are refused before any work.
            let image_name = a.image.as_ref().map(|p| {
                p.file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_else(|| "image".into())
            });
            let split = a
                .image
                .is_none()
                .then(|| a.split.unwrap_or(SplitName::Test));
            let (model, meta) = chestcam::train::load_model(&a.run, a.checkpoint, a.device)?;
            if !a.overwrite {
                use chestcam::cam::explain::split_image_name;
                let names: Vec<String> = match (&image_name, split, a.index, a.first) {
                    (Some(n), ..) => vec![n.clone()],
                    (None, Some(s), Some(i), _) => vec![split_image_name(s, i)],
                    (None, Some(s), None, Some(n)) => {
                        (0..n.min(10_000)).map(|i| split_image_name(s, i)).collect()
                    }
                    _ => vec![],
                };
                let mut paths: Vec<PathBuf> = names
                    .iter()
                    .flat_map(|n| chestcam::cam::explain::output_paths(&a.out, n))
                    .collect();
                if a.html {
                    paths.push(a.out.join(VIEWER_FILE));
                }
                if maps_out.is_some() {
                    paths.extend(
                        names
                            .iter()
                            .map(|n| chestcam::cam::explain::maps_path(&a.out, n)),
                    );
                }
                chestcam::cam::explain::refuse_existing(&paths)?;
            }
            // What each JSON was made from; the image's own entry is added below.
            let mut context = serde_json::json!({
                "run": full_path(&a.run)?,
                "checkpoint": a.checkpoint.to_string(),
                "epoch": meta.epoch,
                "stages": stages.iter().map(|s| s.to_string()).collect::<Vec<_>>(),
                "eigen_smooth": a.eigen_smooth,
                "aug_smooth": chestcam::choice::Choice::name(a.aug_smooth),
            });
            let mut images: Vec<(&str, serde_json::Value)> = Vec::new();
            let ex = if let Some(path) = &a.image {
                let name = image_name.clone().unwrap_or_default();
                let pixels = load_xray(path, meta.size)?;
                images.push(("image", serde_json::json!(full_path(path)?)));
                let names = [name];
                let input = chestcam::viz::viewer::ViewerInput::Pixels {
                    pixels: &pixels,
                    size: meta.size,
                    names: &names,
                    truth: None,
                };
                explain_input(&model, &input, &methods, &html_stages, &opts, &a)?
            } else {
                let Some(split) = split else {
                    return Err(chestcam::Error::invalid("explain", WHICH_IMAGES));
                };
                let cfg = chestcam::train::load_config(&a.run)?;
                let mut progress = chestcam::progress::auto();
                let data = chestcam::train::run_source(&a.run, &cfg.source, a.source.as_deref())?
                    .load(progress.as_mut())?;
                let check = same_data(&a.run, &data, &meta, split)?;
                let sp = data.split(split);
                let idx: Vec<usize> = match (a.index, a.first) {
                    (Some(i), _) => vec![i],
                    (None, Some(n)) => {
                        if n > sp.len() {
                            chestcam::note!(
                                "--first {n}: the {split} split has {} images; all of them are explained",
                                sp.len()
                            );
                        }
                        (0..n.min(sp.len())).collect()
                    }
                    (None, None) => return Err(chestcam::Error::invalid("explain", WHICH_IMAGES)),
                };
                if let Some(c) = context.as_object_mut() {
                    for (k, v) in split_record(&data, &check) {
                        c.insert(k.into(), v);
                    }
                }
                images.extend(idx.iter().map(|&i| ("index", serde_json::json!(i))));
                let input = chestcam::viz::viewer::ViewerInput::Split {
                    split: sp,
                    idx: &idx,
                };
                explain_input(&model, &input, &methods, &html_stages, &opts, &a)?
            };
            if images.len() != ex.len() {
                return Err(chestcam::Error::invalid(
                    "explain",
                    format!("{} images but {} explanations", images.len(), ex.len()),
                ));
            }
            for (e, (key, value)) in ex.iter().zip(images) {
                let mut c = context.clone();
                if let Some(o) = c.as_object_mut() {
                    o.insert(key.into(), value);
                }
                for p in e.write(
                    &a.out,
                    opts.gif_frames,
                    opts.gif_delay_ms,
                    a.overwrite,
                    Some(&c),
                )? {
                    say!("{}", p.display());
                }
                if let Some(m) = maps_out {
                    say!("{}", e.write_maps(&a.out, m)?.display());
                }
            }
        }
        Cmd::Info => {
            let cuda = tch::Cuda::is_available();
            say!("chestcam {}", env!("CARGO_PKG_VERSION"));
            say!(
                "cuda available: {cuda} ({} device(s))",
                tch::Cuda::device_count()
            );
            say!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            say!("device: {:?}", tch::Device::cuda_if_available());
            say!("cpu threads: {}", tch::get_num_threads());
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
            say!("{}\n{}", d.display(), m.display());
        }
    }
    Ok(())
}

/// A usage error on one line (clap's own spans several): what is wrong,
/// and where help is. `--help` and `--version` print as clap prints them.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(
        e.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: invalid arguments")
        .to_string();
    // Missing arguments are listed on the lines after the first, and so
    // are the possible values of a bad choice and clap's "did you mean".
    let rest: Vec<&str> = lines
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect();
    let listed: Vec<&str> = rest
        .iter()
        .filter(|l| l.starts_with('-') || l.starts_with('<'))
        .copied()
        .collect();
    let notes: Vec<&str> = rest
        .iter()
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .or_else(|| l.strip_prefix("tip: "))
        })
        .collect();
    let first = first.trim_end_matches(':');
    let first = if notes.is_empty() {
        first.to_string()
    } else {
        format!("{first}; {}", notes.join("; "))
    };
    let sub = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let help = match sub {
        Some(s) if Cli::command_for_help(&s) => format!("chestcam {s} --help"),
        _ => "chestcam --help".to_string(),
    };
    if listed.is_empty() {
        chestcam::note!("{first} (see {help})");
    } else {
        chestcam::note!("{first}: {} (see {help})", listed.join(", "));
    }
    std::process::exit(2)
}

impl Cli {
    /// Whether `name` is a subcommand (its help is then the one to name).
    fn command_for_help(name: &str) -> bool {
        use clap::CommandFactory;
        Cli::command().find_subcommand(name).is_some()
    }
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => usage_error(e),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    // `train --resume` takes what the run trains from its config.json: an
    // option that would change it is refused (ignoring it would be silent);
    // the options of how it runs are passed on as typed.
    if let Some(("train", m)) = matches.subcommand() {
        let cmd = Cli::command();
        let options: Vec<String> = cmd
            .find_subcommand("train")
            .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
            .unwrap_or_default();
        let typed: Vec<String> = m
            .ids()
            .map(|id| id.as_str())
            .filter(|id| options.iter().any(|o| o == id))
            .filter(|id| !matches!(*id, "run" | "resume" | "json"))
            .filter(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
        let fixed: Vec<String> = typed
            .iter()
            .map(|id| id.replace('_', "-"))
            .filter(|o| !chestcam::train::ResumeChanges::OPTIONS.contains(&o.as_str()))
            .map(|o| format!("--{o}"))
            .collect();
        if m.get_flag("resume") && !fixed.is_empty() {
            chestcam::note!(
                "error: --resume continues what the run's config.json trains; drop {} (or train into a new --run). Only how it runs may change: {}",
                fixed.join(", "),
                chestcam::train::ResumeChanges::OPTIONS
                    .iter()
                    .map(|o| format!("--{o}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return ExitCode::FAILURE;
        }
        if let Cmd::Train(a) = &mut cli.cmd {
            a.typed = typed;
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            chestcam::note!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own consistency checks, and a line of help for every option
    /// of every subcommand: `chestcam <cmd> -h` never lists a bare option.
    #[test]
    fn every_option_says_what_it_does() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let bare: Vec<String> = cmd
            .get_subcommands()
            .flat_map(|sub| {
                sub.get_arguments()
                    .filter(|a| !a.is_hide_set() && a.get_help().is_none())
                    .map(|a| format!("{} --{}", sub.get_name(), a.get_id()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(bare.is_empty(), "options without help: {bare:?}");
        // The check sees options: `eval --json` is one of those it covers.
        let eval = cmd.find_subcommand("eval").unwrap();
        assert!(eval
            .get_arguments()
            .any(|a| a.get_id() == "json" && a.get_help().is_some()));
    }
}
