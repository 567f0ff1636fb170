//! `chestcam explain`: heatmaps for a run's predictions.
use super::{full_path, same_data, split_record, TrainedRun};
use crate::emit;
use chestcam::cam::aug_smooth::AugSmooth;
use chestcam::cam::explain::MapsOut;
use chestcam::cam::Method;
use chestcam::choice::{ChoiceParser, Choices, ListParser};
use chestcam::data::SplitName;
use chestcam::model::Stage;
use chestcam::viz::heatmap::Colormap;
use std::path::PathBuf;

/// What `explain` needs to know which images to explain.
const WHICH_IMAGES: &str =
    "give --image FILE, or --index I or --first N (of --split, default test)";

#[derive(clap::Args)]
pub(crate) struct ExplainArgs {
    #[command(flatten)]
    trained: TrainedRun,
    /// A user's X-ray (PNG or JPEG, any size, grey or RGB).
    #[arg(long, conflicts_with_all = ["source", "split", "index", "first"])]
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
    let title = format!("chestcam - {}", a.trained.run.display());
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

/// Runs `chestcam explain`.
pub(crate) fn run(a: ExplainArgs) -> chestcam::Result<()> {
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
    let (model, meta) = a.trained.model()?;
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
        "run": full_path(&a.trained.run)?,
        "checkpoint": a.trained.checkpoint.to_string(),
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
        let mut progress = chestcam::progress::auto();
        let data = a.trained.data_source()?.load(progress.as_mut())?;
        let check = same_data(&a.trained.run, &data, &meta, split)?;
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
    Ok(())
}
