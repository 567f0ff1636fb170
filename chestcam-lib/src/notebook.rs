//! Helpers that keep notebook cells short: the data source from the
//! environment, quick mode, banners shown inline.
use crate::data::phantom::PhantomConfig;
use crate::data::source::DataSource;
use crate::data::Dataset;
use crate::viz::display::html_escape as escape;
use crate::{Error, Result};

/// True when `CHESTCAM_QUICK=1`: fewer images and epochs, same cells.
pub fn quick() -> bool {
    std::env::var("CHESTCAM_QUICK").is_ok_and(|v| v == "1")
}

/// A source string parsed; phantoms are fewer in quick mode.
fn source(s: &str) -> Result<DataSource> {
    let mut src: DataSource = s.parse()?;
    if let DataSource::Synthetic(cfg) = &mut src {
        if quick() {
            cfg.counts = [400, 100, 100];
        }
    }
    Ok(src)
}

/// The choices a student edits in a notebook's first code cell. The
/// `CHESTCAM_*` environment variables override them only for the tests and
/// `make demo` (`with_overrides`), and the cell's output says which did.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `chestmnist`, `chestmnist:64` (finer maps), `synthetic`, or a path
    /// to a MedMNIST-format `.npz`.
    pub source: String,
    pub epochs: usize,
    /// Training images used (`None`: all of them).
    pub train_subset: Option<usize>,
    /// `auto` (CUDA when there is one), `cpu`, `cuda`.
    pub device: String,
    /// `fp32` (MedMNIST's protocol), `auto` (the fastest measured on this
    /// device), `bf16` (on hardware that has it) or `fp16` (GPUs).
    pub precision: String,
    pub seed: u64,
    /// What the environment changed, for the cell's output.
    pub overridden: Vec<String>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            source: "chestmnist".into(),
            epochs: 3,
            train_subset: Some(2000),
            device: "auto".into(),
            precision: "fp32".into(),
            seed: 0,
            overridden: Vec::new(),
        }
    }
}

impl Settings {
    /// Applies `CHESTCAM_SOURCE`, `CHESTCAM_DEVICE` and `CHESTCAM_QUICK=1`
    /// (2 epochs on 256 images) where they are set.
    pub fn with_overrides(mut self) -> Settings {
        if let Ok(v) = std::env::var("CHESTCAM_SOURCE") {
            self.overridden
                .push(format!("source = {v:?} (CHESTCAM_SOURCE)"));
            self.source = v;
        }
        if let Ok(v) = std::env::var("CHESTCAM_DEVICE") {
            self.overridden
                .push(format!("device = {v:?} (CHESTCAM_DEVICE)"));
            self.device = v;
        }
        if quick() {
            self.epochs = self.epochs.min(2);
            self.train_subset = Some(self.train_subset.unwrap_or(256).min(256));
            self.overridden.push(format!(
                "epochs = {}, train_subset = Some(256) (CHESTCAM_QUICK=1)",
                self.epochs
            ));
        }
        self
    }

    /// The device, checked (`cuda` without a GPU is an error that says so).
    pub fn tch_device(&self) -> Result<tch::Device> {
        crate::model::parse_device(&self.device)
    }

    /// The training config: MedMNIST's protocol with these settings.
    pub fn train_config(&self) -> Result<crate::train::TrainConfig> {
        Ok(crate::train::TrainConfig {
            source: self.source.clone(),
            epochs: self.epochs,
            train_subset: self.train_subset,
            device: self.device.clone(),
            precision: self.precision.parse()?,
            seed: self.seed,
            ..Default::default()
        })
    }

    /// The data source; when ChestMNIST cannot be had, phantoms and a banner.
    pub fn load_data(&self) -> Result<NotebookData> {
        load_source(&self.source)
    }

    pub fn evcxr_display(&self) {
        let mut h = String::from("<table><tr><th>setting</th><th>value</th></tr>");
        for (k, v) in [
            ("source", self.source.clone()),
            ("epochs", self.epochs.to_string()),
            ("train_subset", format!("{:?}", self.train_subset)),
            ("device", self.device.clone()),
            ("precision", self.precision.clone()),
            ("seed", self.seed.to_string()),
        ] {
            h.push_str(&format!("<tr><td>{k}</td><td>{}</td></tr>", escape(&v)));
        }
        h.push_str("</table>");
        for o in &self.overridden {
            h.push_str(&format!(
                "<p>Set by the environment, not this cell: {}</p>",
                escape(o)
            ));
        }
        Html(h).evcxr_display();
    }
}

/// A data set ready for a notebook, with the banner to show when it is not
/// what was asked for.
pub struct NotebookData {
    pub data: Dataset,
    pub banner: Option<String>,
}

/// Loads a source; when ChestMNIST cannot be had, falls back to phantoms
/// and says so in a banner.
fn load_source(s: &str) -> Result<NotebookData> {
    let src = source(s)?;
    let mut progress = crate::progress::Lines::default();
    let (mut data, banner) = src.load_or_synthetic(&mut progress)?;
    if banner.is_some() && quick() {
        let cfg = PhantomConfig {
            size: data.size,
            counts: [400, 100, 100],
            ..PhantomConfig::default()
        };
        data = cfg.generate()?.0;
    }
    Ok(NotebookData { data, banner })
}

impl NotebookData {
    /// evcxr display: the banner (if any) and the source in one line.
    pub fn evcxr_display(&self) {
        let mut html = String::new();
        if let Some(b) = &self.banner {
            html.push_str(&format!(
                "<div style=\"background:#fff3cd;border:1px solid #e0a800;padding:8px;margin:4px 0\"><b>SYNTHETIC DATA.</b> {}</div>",
                escape(b).replace('\n', "<br>")
            ));
        }
        let d = &self.data;
        html.push_str(&format!(
            "<div>Data: <b>{}</b>, {}x{} px, train {} / val {} / test {} images</div>",
            escape(&d.provenance.to_string()),
            d.size,
            d.size,
            d.train.len(),
            d.val.len(),
            d.test.len(),
        ));
        crate::viz::emit_text("text/html", &html);
    }
}

/// HTML shown inline by evcxr.
pub struct Html(pub String);

impl Html {
    pub fn evcxr_display(&self) {
        crate::viz::emit_text("text/html", &self.0);
    }
}

/// The prevalence of each label per split, as a bar chart.
pub fn prevalence_chart(d: &Dataset) -> Result<crate::viz::charts::Chart> {
    let title = format!("Findings per split - {}", d.provenance);
    crate::viz::charts::prevalence(
        &title,
        &[
            ("train", d.train.prevalence()),
            ("val", d.val.prevalence()),
            ("test", d.test.prevalence()),
        ],
    )
}

/// Parameters and feature-map size per stage for a stem and input size,
/// and what the stem means for Grad-CAM.
pub fn model_summary(stem: crate::model::Stem, size: usize) -> Result<Html> {
    let m = crate::model::Model::new(stem, size, tch::Device::Cpu)?;
    let counts = crate::model::ResNet18::parameter_counts(&m.vs);
    let f = crate::model::feature_sizes(stem, size);
    let mut h = format!("<p>ResNet-18, <b>{stem}</b> stem, {size}x{size} px input, 14 sigmoid outputs.</p><table><tr><th>part</th><th>parameters</th><th>output size</th></tr>");
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    for (i, (name, n)) in counts.iter().enumerate() {
        let out = match i {
            0 => format!(
                "64 x {0}x{0}",
                if stem == crate::model::Stem::Small {
                    size
                } else {
                    f[0]
                }
            ),
            1..=4 => format!("{} x {1}x{1}", [64, 128, 256, 512][i - 1], f[i - 1]),
            _ => "14 logits".to_string(),
        };
        h.push_str(&format!(
            "<tr><td>{name}</td><td style=\"text-align:right\">{n}</td><td>{out}</td></tr>"
        ));
    }
    h.push_str(&format!(
        "<tr><td><b>total</b></td><td style=\"text-align:right\"><b>{total}</b></td><td></td></tr></table><p>Grad-CAM reads layer4, which is <b>{0}x{0}</b> here: every heatmap has {1} cells, upsampled to the image. torchvision's stem (7x7 stride 2 plus max-pool) would leave a 28 px image at {2}x{2} in layer4, and every heatmap would be a constant.</p>",
        f[3],
        f[3] * f[3],
        crate::model::feature_sizes(crate::model::Stem::Imagenet, size)[3]
    ));
    Ok(Html(h))
}

/// Where the notebooks keep runs: `$CHESTCAM_RUNS`, else `runs` beside the notebooks.
pub fn runs_dir() -> std::path::PathBuf {
    std::env::var_os("CHESTCAM_RUNS")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("runs"))
}

/// A new run folder under [`runs_dir`], named by the time.
fn new_run() -> std::path::PathBuf {
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|t| t.as_secs())
        .unwrap_or(0);
    runs_dir().join(format!("run-{stamp}"))
}

/// `cfg` for exactly this data set (a phantom set keeps its counts and seed).
fn config_for(cfg: &crate::train::TrainConfig, d: &Dataset) -> crate::train::TrainConfig {
    crate::train::TrainConfig {
        source: d.provenance.source.clone(),
        ..cfg.clone()
    }
}

/// Trains `cfg.epochs - done` epochs into `run` (continuing it when
/// `done > 0`), printing a line per epoch, and records it as the latest run
/// (`runs/latest.txt`) for the second notebook.
fn train_into(
    cfg: &crate::train::TrainConfig,
    d: &Dataset,
    run: &std::path::Path,
    done: usize,
) -> Result<crate::train::TrainOutcome> {
    println!(
        "training {} epoch(s) on {} train images into {}",
        cfg.epochs.saturating_sub(done),
        cfg.train_subset.unwrap_or(d.train.len()).min(d.train.len()),
        run.display()
    );
    let out = crate::train::train(
        cfg,
        d,
        run,
        done > 0,
        &mut crate::progress::Silent,
        &mut |r| {
            println!("{r}");
            std::ops::ControlFlow::Continue(())
        },
    )?;
    let abs = std::fs::canonicalize(run).map_err(|e| Error::io(run, e))?;
    crate::util::write_atomic(
        runs_dir().join("latest.txt"),
        abs.display().to_string().as_bytes(),
    )?;
    Ok(out)
}

/// Trains into a fresh run folder, printing a line per epoch, and records
/// it as the latest run (`runs/latest.txt`) for the second notebook.
pub fn train_here(
    cfg: &crate::train::TrainConfig,
    d: &Dataset,
) -> Result<crate::train::TrainOutcome> {
    train_into(&config_for(cfg, d), d, &new_run(), 0)
}

/// The running figures of an epoch trained by hand (the lesson's loop).
pub struct HandEpoch {
    loss_sum: f64,
    images: usize,
    started: std::time::Instant,
}

impl HandEpoch {
    /// Starts the clock.
    pub fn start() -> HandEpoch {
        HandEpoch {
            loss_sum: 0.0,
            images: 0,
            started: std::time::Instant::now(),
        }
    }

    /// Adds a batch of `n` images with mean loss `loss`; returns that loss.
    pub fn add(&mut self, loss: &tch::Tensor, n: i64) -> Result<f64> {
        let l = loss.f_double_value(&[])?;
        self.loss_sum += l * n as f64;
        self.images += n.max(0) as usize;
        Ok(l)
    }
}

/// After the epoch written out by hand: saves it as epoch 1 of a fresh run
/// folder (validation and checkpoints, as the library closes an epoch),
/// then lets the library train the remaining epochs from those weights and
/// Adam's state, printing a line per epoch.
pub fn train_rest(
    cfg: &crate::train::TrainConfig,
    d: &Dataset,
    model: &crate::model::Model,
    opt: &mut crate::train::adam::Adam,
    first: HandEpoch,
) -> Result<crate::train::TrainOutcome> {
    let cfg = config_for(cfg, d);
    let run = new_run();
    let rec = crate::train::record_first_epoch(
        &cfg,
        d,
        &run,
        model,
        opt,
        first.loss_sum / first.images.max(1) as f64,
        first.images,
        first.started.elapsed().as_secs_f64(),
    )?;
    println!("{rec}   (the epoch above, saved)");
    train_into(&cfg, d, &run, 1)
}

/// Loss and AUC curves of a run.
pub fn training_curves(
    out: &crate::train::TrainOutcome,
) -> Result<(crate::viz::charts::Chart, crate::viz::charts::Chart)> {
    let r = &out.records;
    let loss = crate::viz::charts::curves(
        "Loss",
        "BCE",
        &[
            ("train", r.iter().map(|x| x.train_loss).collect()),
            ("val", r.iter().map(|x| x.val_loss).collect()),
        ],
    )?;
    let auc = crate::viz::charts::curves(
        "Validation AUC",
        "mean AUC",
        &[("val AUC", r.iter().map(|x| x.val_auc).collect())],
    )?;
    Ok((loss, auc))
}

/// The test evaluation of a run's best checkpoint, its ROC chart, and the
/// MedMNIST reference beside it.
pub fn test_report(
    run: &std::path::Path,
    d: &Dataset,
) -> Result<(crate::metrics::Evaluation, crate::viz::charts::Chart, Html)> {
    let (model, _) = crate::train::load_model(
        run,
        crate::train::Checkpoint::Best,
        tch::Device::cuda_if_available(),
    )?;
    let e = crate::train::evaluate_split(&model, &d.test, 256)?;
    let logits = crate::train::split_logits(&model, &d.test, 256)?;
    let probs: Vec<f32> = Vec::<f32>::try_from(logits.f_sigmoid()?.f_flatten(0, -1)?)?;
    let n = d.test.len();
    let curves: Vec<(String, Vec<(f64, f64)>)> = crate::data::registry::LABELS
        .iter()
        .enumerate()
        .map(|(k, name)| {
            let s: Vec<f64> = (0..n).map(|i| probs[i * 14 + k] as f64).collect();
            let y: Vec<u8> = (0..n).map(|i| d.test.labels[i * 14 + k]).collect();
            (name.to_string(), crate::metrics::roc_curve(&s, &y))
        })
        .collect();
    let roc = crate::viz::charts::roc_curves(
        &format!(
            "ROC per label, test split ({})",
            if d.provenance.synthetic {
                "SYNTHETIC"
            } else {
                "real"
            }
        ),
        &curves,
    )?;
    let html = Html(format!(
        "<table><tr><th></th><th>test AUC</th><th>test ACC</th></tr><tr><td>this run ({})</td><td>{:.3}</td><td>{:.3}</td></tr><tr><td>MedMNIST v2, ResNet-18 (28), 100 epochs on 78,468 images</td><td>0.768</td><td>0.947</td></tr></table><p>A few epochs on a CPU, on a subset (or on {}), cannot be compared one to one with the reference: fewer images and epochs mean a weaker model, a small test split makes AUC noisy, and labels with one class only are left out of our mean. ACC is high for any model here because most labels are rare: predicting \"no\" everywhere already scores about 0.95.</p>",
        escape(&d.provenance.to_string()),
        e.auc,
        e.acc,
        if d.provenance.synthetic { "synthetic phantoms" } else { "a small sample" }
    ));
    Ok((e, roc, html))
}

impl crate::metrics::Evaluation {
    /// evcxr display: the per-label table.
    pub fn evcxr_display(&self) {
        crate::viz::emit_text(
            "text/html",
            &format!("<pre>{}</pre>", escape(&self.to_string())),
        );
    }
}

/// The run the first notebook trained (`runs/latest.txt`), if any.
pub fn latest_run() -> Option<std::path::PathBuf> {
    let p = std::fs::read_to_string(runs_dir().join("latest.txt")).ok()?;
    let p = std::path::PathBuf::from(p.trim());
    p.join("best.safetensors").is_file().then_some(p)
}

/// The first notebook's run with its model and data; or, when there is
/// none, a quick model trained here (the note says so).
pub struct LoadedRun {
    pub run: std::path::PathBuf,
    pub model: crate::model::Model,
    pub data: Dataset,
    pub note: String,
}

/// The run `train_model.ipynb` made last, or else a quick one trained here
/// (1 epoch, 256 images of the settings' source), on the settings' device.
pub fn load_run_or_train(settings: &Settings) -> Result<LoadedRun> {
    let device = settings.tch_device()?;
    let (run, note) = match latest_run() {
        Some(r) => (
            r.clone(),
            format!("Loaded the run of train_model.ipynb: {}", r.display()),
        ),
        None => {
            let nd = settings.load_data()?;
            let cfg = crate::train::TrainConfig {
                epochs: 1,
                train_subset: Some(256),
                ..settings.train_config()?
            };
            let out = train_here(&cfg, &nd.data)?;
            (out.run.clone(), format!("No run of train_model.ipynb was found, so a quick model (1 epoch, 256 images) was trained here: {}. Its heatmaps mean little.", out.run.display()))
        }
    };
    let cfg = crate::train::load_config(&run)?;
    let mut progress = crate::progress::Silent;
    let (data, banner) =
        crate::train::run_source(&run, &cfg.source, None)?.load_or_synthetic(&mut progress)?;
    let (model, meta) = crate::train::load_model(&run, crate::train::Checkpoint::Best, device)?;
    // Data that is not the run's own (phantoms in place of ChestMNIST, or a
    // file changed since training) is said, not shown as the run's.
    let other =
        crate::train::SplitCheck::of(&meta, &data, crate::data::SplitName::Test).note(&run, &data);
    let note = [Some(note), banner, other]
        .into_iter()
        .flatten()
        .collect::<Vec<_>>()
        .join("\n");
    Ok(LoadedRun {
        run,
        model,
        data,
        note,
    })
}

impl LoadedRun {
    pub fn evcxr_display(&self) {
        crate::viz::emit_text(
            "text/html",
            &format!(
                "<p>{}</p><p>Data: <b>{}</b></p>",
                escape(&self.note).replace('\n', "<br>"),
                escape(&self.data.provenance.to_string())
            ),
        );
    }

    /// Test images with at least one finding first, then the rest: `n` indices.
    pub fn pick_test_images(&self, n: usize) -> Vec<usize> {
        let t = &self.data.test;
        let mut idx: Vec<usize> = (0..t.len()).collect();
        idx.sort_by_key(|&i| (t.label_row(i).iter().all(|&v| v == 0), i));
        idx.truncate(n);
        idx
    }

    /// The trust checks where the right answer is known: on this run's
    /// phantoms (or, for a run on real X-rays, on a small phantom model
    /// trained here), `n` test images, the 4 labels most often present
    /// among them, Grad-CAM, Grad-CAM++, HiResCAM and EigenCAM beside
    /// RandomCAM and the centre prior. ROAD and the confidence change run
    /// outside quick mode only. The perturbed images' forwards run in the
    /// fastest precision for the device, as training picks it (bf16 on a
    /// CPU with bfloat16 arithmetic: about half the wait; the report says
    /// which ran).
    pub fn trust_on_phantoms(&self, n: usize) -> Result<crate::trust::report::TrustReport> {
        use crate::trust::report::{run, Check, TrustOptions};
        use crate::trust::truth::{load_truth, TruthSource};
        let cfg = crate::train::load_config(&self.run)?;
        let (source, model, data);
        let owned;
        if self.data.provenance.synthetic {
            source = cfg.source.parse::<DataSource>()?;
            model = &self.model;
            data = &self.data;
        } else {
            let pc = PhantomConfig {
                size: self.data.size,
                counts: [1000, 100, n.max(2)],
                ..Default::default()
            };
            let d = pc.generate()?.0;
            let tc = crate::train::TrainConfig {
                source: DataSource::Synthetic(pc.clone()).to_string(),
                epochs: 2,
                train_subset: Some(if quick() { 256 } else { 2000 }),
                ..Default::default()
            };
            // Outside the runs folder: this is not the notebook's model.
            let run = std::env::temp_dir()
                .join(format!("chestcam-trust-phantoms-{}", std::process::id()));
            println!(
                "training a phantom model ({} epochs, {} images) into {}",
                tc.epochs,
                d.train.len(),
                run.display()
            );
            crate::train::train(
                &tc,
                &d,
                &run,
                false,
                &mut crate::progress::Silent,
                &mut |_| std::ops::ControlFlow::Continue(()),
            )?;
            let (m, _) = crate::train::load_model(
                &run,
                crate::train::Checkpoint::Best,
                tch::Device::cuda_if_available(),
            )?;
            owned = (m, d);
            source = DataSource::Synthetic(pc);
            model = &owned.0;
            data = &owned.1;
        }
        let test = &data.test;
        let idx: Vec<usize> = (0..n.min(test.len())).collect();
        let labels = crate::trust::frequent_labels(test, &idx, 4);
        let mut checks = vec![
            Check::Localisation,
            Check::Deletion,
            Check::Randomisation,
            Check::LabelSensitivity,
        ];
        if !quick() {
            checks.extend([Check::Road, Check::Confidence]);
        }
        let o = TrustOptions {
            methods: {
                use crate::cam::Method;
                vec![
                    Method::GradCam,
                    Method::GradCamPlusPlus,
                    Method::HiResCam,
                    Method::EigenCam,
                ]
            },
            labels,
            checks,
            steps: 8,
            precision: crate::train::Precision::Auto,
            ..Default::default()
        };
        let truth = load_truth(
            &source,
            crate::data::SplitName::Test,
            test.len(),
            data.size,
            &idx,
            &TruthSource::default(),
        )?;
        let mut progress = crate::progress::Lines::counting("steps");
        run(
            model,
            test,
            &idx,
            &data.provenance,
            truth,
            &o,
            &mut progress,
        )
    }

    /// Explanations of test images `idx` with the given options.
    pub fn explain(
        &self,
        idx: &[usize],
        o: &crate::cam::explain::ExplainOptions,
    ) -> Result<Vec<crate::cam::explain::Explanation>> {
        crate::cam::explain::explain_split(&self.model, &self.data.test, idx, o)
    }

    /// The viewer (`viz::viewer`) of test images `idx`: all 14 labels under
    /// each method of `methods` at each stage of `stages`, with `o`'s
    /// trust lines and colormap.
    pub fn viewer(
        &self,
        idx: &[usize],
        methods: &[crate::cam::Method],
        stages: &[crate::model::Stage],
        o: &crate::cam::explain::ExplainOptions,
    ) -> Result<crate::viz::viewer::Viewer> {
        let stages: Vec<Vec<crate::model::Stage>> = stages.iter().map(|&s| vec![s]).collect();
        let input = crate::viz::viewer::ViewerInput::Split {
            split: &self.data.test,
            idx,
        };
        let title = format!("chestcam - {}", self.data.provenance);
        crate::viz::viewer::build(&self.model, &input, methods, &stages, o, &title).map(|(v, _)| v)
    }

    /// Predictions against ground truth for test images `idx`, as a table.
    pub fn predictions(&self, idx: &[usize]) -> Result<Html> {
        let ex = self.explain(
            idx,
            &crate::cam::explain::ExplainOptions {
                labels: crate::cam::explain::LabelChoice::Top(3),
                trust_steps: 0,
                ..Default::default()
            },
        )?;
        let mut h = String::from("<table><tr><th>image</th><th>findings (ground truth)</th><th>top 3 predicted (probability)</th></tr>");
        for e in &ex {
            let truth = e
                .truth
                .as_ref()
                .map(|t| {
                    crate::data::registry::LABELS
                        .iter()
                        .zip(t)
                        .filter(|(_, v)| **v == 1)
                        .map(|(l, _)| *l)
                        .collect::<Vec<_>>()
                        .join(", ")
                })
                .unwrap_or_default();
            let pred = e
                .shown
                .iter()
                .map(|&l| format!("{} ({:.2})", crate::data::registry::LABELS[l], e.probs[l]))
                .collect::<Vec<_>>()
                .join(", ");
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                e.name,
                if truth.is_empty() {
                    "no finding".into()
                } else {
                    truth
                },
                pred
            ));
        }
        h.push_str("</table>");
        Ok(Html(h))
    }
}
