//! `chestcam trust`: can the heatmaps be trusted?
use super::{same_data, TrainedRun};
use crate::emit;
use chestcam::cam::Method;
use chestcam::choice::{ChoiceParser, Choices, ListParser};
use chestcam::data::SplitName;
use chestcam::model::Stage;
use chestcam::train::Precision;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct TrustArgs {
    #[command(flatten)]
    trained: TrainedRun,
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

/// Runs `chestcam trust`.
pub(crate) fn run(a: TrustArgs) -> chestcam::Result<()> {
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
    // The output folder is made before minutes of work, so that an
    // unwritable one fails first; one made here and left empty by a later
    // failure is removed again.
    let made = !a.out.exists();
    std::fs::create_dir_all(&a.out).map_err(|e| chestcam::Error::io(&a.out, e))?;
    let out = a.out.clone();
    let result = trust_run(a, split, opts);
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
) -> chestcam::Result<()> {
    use chestcam::trust::truth::{load_truth, TruthSource};
    let (model, meta) = a.trained.model()?;
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
    let source = a.trained.data_source()?;
    let data = source.load(chestcam::progress::auto().as_mut())?;
    same_data(&a.trained.run, &data, &meta, split)?;
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
