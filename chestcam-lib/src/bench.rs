//! `chestcam bench`: our training step and inference against the identical
//! network in PyTorch eager (and fed by a DataLoader), same libtorch, same
//! initial weights, same images, same thread count, run in one command.
//! Timings are medians over repetitions after warm-up.
use crate::data::Dataset;
use crate::model::{Model, Stage, Stem};
use crate::train::adam::Adam;
use crate::train::Precision;
use crate::util::sync;
use crate::{Error, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, Clone)]
pub struct BenchOptions {
    /// A data source (`chestmnist[:size]`, `synthetic[...]` or a
    /// MedMNIST-format npz): its first `batch` training images (all, when
    /// it has fewer) are the batch.
    pub data: String,
    /// The batch resized to this many pixels (nearest neighbour) instead
    /// of the source's own size.
    pub size: Option<usize>,
    pub batch: usize,
    pub threads: i32,
    pub warmup: usize,
    pub reps: usize,
    pub out: PathBuf,
    pub python: String,
    pub script: PathBuf,
    /// Images for the (slow) Score-CAM timing.
    pub score_batch: usize,
    /// Images for the ROAD row (14 labels each, against pytorch-grad-cam's
    /// ROADCombined on the same maps); 0 skips it.
    pub road_images: usize,
    /// `auto`, `cpu`, `cuda`, `cuda:N`: both sides run there.
    pub device: String,
    /// Also time every other method's 14 calls in pytorch-grad-cam (once
    /// each; minutes on a CPU).
    pub all_methods: bool,
}

fn median_secs(warmup: usize, reps: usize, mut f: impl FnMut() -> Result<()>) -> Result<f64> {
    for _ in 0..warmup {
        f()?;
    }
    let mut ts = Vec::with_capacity(reps);
    for _ in 0..reps.max(1) {
        let t = Instant::now();
        f()?;
        ts.push(t.elapsed().as_secs_f64());
    }
    ts.sort_by(f64::total_cmp);
    Ok(ts[ts.len() / 2])
}

/// Peak resident memory of this process in MiB (Linux `VmHWM`).
pub fn peak_rss_mib() -> Option<f64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// What [`run`] measured: the report's text, and what [`graph_rows`]
/// compares its rows with.
pub struct Report {
    pub text: String,
    /// chestcam's training step as `chestcam train` runs it, images/s.
    pub train_images_per_sec: f64,
    /// PyTorch's training rows that ran ([`PYTORCH_TRAIN_ROWS`]), images/s,
    /// in the table's order.
    pub pytorch: Vec<(&'static PyTorchRow, f64)>,
}

impl Report {
    /// PyTorch's row `key` (as `scripts/bench_pytorch.py` names it), images/s.
    pub fn pytorch(&self, key: &str) -> Option<f64> {
        self.pytorch
            .iter()
            .find(|(r, _)| r.key == key)
            .map(|(_, v)| *v)
    }

    /// PyTorch's fastest training row: its name and images/s.
    pub fn pytorch_best(&self) -> Option<(&'static str, f64)> {
        self.pytorch
            .iter()
            .max_by(|a, b| a.1.total_cmp(&b.1))
            .map(|(r, v)| (r.name, *v))
    }
}

/// One of PyTorch's training rows in the bench.
#[derive(Debug)]
pub struct PyTorchRow {
    /// As the table shows it.
    pub name: &'static str,
    /// The key of its median seconds in `scripts/bench_pytorch.py`'s JSON
    /// (a failed row writes `<key less _s>_error` instead).
    pub key: &'static str,
    /// Only timed on CUDA (the row is left out of a CPU table).
    pub cuda_only: bool,
}

/// PyTorch's training rows, in the table's order.
pub const PYTORCH_TRAIN_ROWS: [PyTorchRow; 10] = {
    const fn row(name: &'static str, key: &'static str, cuda_only: bool) -> PyTorchRow {
        PyTorchRow {
            name,
            key,
            cuda_only,
        }
    }
    [
        row("PyTorch eager", "train_eager_s", false),
        row("PyTorch fused Adam", "train_fused_s", false),
        row("PyTorch fused + chan-last", "train_fused_cl_s", false),
        row("PyTorch bf16+fused+chan-last", "train_amp_s", false),
        row("PyTorch fp16+scaler+fused+c-l", "train_fp16_s", true),
        row("PyTorch CUDA graph of step", "train_graph_s", true),
        row(
            "PyTorch graph bf16, chan-last",
            "train_graph_bf16_cl_s",
            true,
        ),
        row(
            "PyTorch graph fp16+scaler, c-l",
            "train_graph_fp16_cl_s",
            true,
        ),
        row("PyTorch DataLoader+PIL", "train_dataloader_s", false),
        row(
            "PyTorch DataLoader, 8 workers",
            "train_dataloader8_s",
            false,
        ),
    ]
};

/// What every timed training variant starts from: a model with the bench's
/// initial weights (`init`), the batch `x` in the chosen layout, and a fresh
/// Adam (with a gradient scaler for fp16).
fn fresh_step(
    stem: Stem,
    size: usize,
    device: Device,
    init: &Path,
    x: &Tensor,
    channels_last: bool,
    precision: Precision,
) -> Result<(Model, Tensor, Adam)> {
    let mut m = Model::new(stem, size, device)?;
    m.load(init)?;
    let input = if channels_last {
        m.to_channels_last()?;
        crate::shim::channels_last(x)?
    } else {
        x.shallow_clone()
    };
    let mut opt = Adam::new(&m.vs);
    if precision == Precision::Fp16 {
        opt.enable_grad_scaler()?;
    }
    Ok((m, input, opt))
}

/// The npz that both sides read (written by [`run`]).
pub fn bench_npz(o: &BenchOptions) -> PathBuf {
    o.out.join("bench_data.npz")
}

/// Writes [`bench_npz`] and returns what it holds: the batch (`--batch`
/// training images of the source, at `--size` when given) and a few
/// validation and test images for the MedMNIST layout, so that chestcam
/// and PyTorch time the very same bytes.
pub fn prepare_data(o: &BenchOptions) -> Result<Dataset> {
    let source: crate::data::source::DataSource = o.data.parse()?;
    let data = source.load(crate::progress::auto().as_mut())?;
    if data.train.is_empty() {
        return Err(Error::invalid(
            "--data",
            format!("{} has no training images to time", data.provenance),
        ));
    }
    let size = o.size.unwrap_or(data.size);
    if !(8..=1024).contains(&size) {
        return Err(Error::invalid("--size", format!("{size} px (8 to 1024)")));
    }
    // The batch becomes float32 on the device, several times over.
    let n = o.batch.min(data.train.len());
    let bytes = n as u128 * (size * size) as u128;
    if bytes > 1 << 30 {
        return Err(Error::invalid(
            "--batch",
            format!(
                "{n} images of {size} px are {:.1} GiB as bytes (at most 1 GiB: a timing needs no more)",
                bytes as f64 / (1u64 << 30) as f64
            ),
        ));
    }
    let small = |s: &crate::data::Split| s.tiled_resized(s.len().min(16), size);
    let bench = Dataset {
        provenance: data.provenance.clone(),
        size,
        train: data.train.tiled_resized(n, size)?,
        val: small(&data.val)?,
        test: small(&data.test)?,
    };
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    bench.save_npz(bench_npz(o))?;
    Ok(bench)
}

/// Makes a progress reporter for each phase of the bench (its steps).
pub type PhaseProgress<'a> = &'a dyn Fn() -> Box<dyn crate::progress::Progress>;

/// Runs both sides and returns the report; `progress` reports each phase
/// (minutes each on a CPU).
pub fn run(o: &BenchOptions, progress: PhaseProgress) -> Result<Report> {
    crate::util::check_threads("--threads", o.threads as i64)?;
    for (what, v) in [
        ("--batch", o.batch),
        ("--reps", o.reps),
        ("--score-batch", o.score_batch),
    ] {
        if v == 0 {
            return Err(Error::invalid(what, "0 (at least 1)"));
        }
    }
    tch::set_num_threads(o.threads);
    let device = crate::model::parse_device(&o.device)?;
    let data = prepare_data(o)?;
    let stem = Stem::default_for(data.size);
    let b = o.batch.min(data.train.len());
    let split = data.train.head(b);
    let x = split.images_tensor(device)?;
    let y = split.labels_tensor(device)?;
    std::fs::create_dir_all(&o.out).map_err(|e| Error::io(&o.out, e))?;
    let init = o.out.join("init.safetensors");
    tch::manual_seed(0);
    let model = Model::new(stem, data.size, device)?;
    model.save(&init)?;
    let logits = model.logits(&x).f_to_device(Device::Cpu)?;
    let logits_path = o.out.join("rust_logits.safetensors");
    crate::tensors_file::write(&logits_path, &[("logits", &logits)], Default::default())?;

    // Inference is cheap: three times the repetitions for a steadier median.
    let infer = median_secs(o.warmup + 1, 3 * o.reps, || {
        let _ = model.logits(&x);
        sync(device);
        Ok(())
    })?;
    // Training steps from the same initial weights, each variant on its own
    // model and optimiser; the loss is read so the time is real.
    let time_step = |channels_last: bool, fused: bool, precision: Precision, warmup: usize| {
        let (m, input, mut opt) =
            fresh_step(stem, data.size, device, &init, &x, channels_last, precision)?;
        opt.fused = fused;
        median_secs(warmup, o.reps, || {
            let loss = crate::train::train_step(&m, &mut opt, &input, &y, 1e-3, precision)?;
            loss.f_double_value(&[])?;
            Ok(())
        })
    };
    // As `chestcam train` runs on this device (fused Adam, its default
    // layout), then the other layout, each in bf16 autocast too, then
    // contiguous (NCHW) with the per-parameter Adam loop (foreach=False's
    // way).
    let cl = crate::train::TrainConfig::default().uses_channels_last();
    let layout = |c: bool| if c { "chan-last" } else { "NCHW" };
    let variants = [
        (format!("fp32, {}", layout(!cl)), !cl, true, Precision::Fp32),
        (format!("bf16, {}", layout(cl)), cl, true, Precision::Bf16),
        (format!("bf16, {}", layout(!cl)), !cl, true, Precision::Bf16),
        (
            "fp32, NCHW, loop Adam".to_string(),
            false,
            false,
            Precision::Fp32,
        ),
    ];
    // fp16 (with its gradient scaler) only on CUDA: CPUs without float16
    // arithmetic run it about 20 times slower than fp32.
    let fp16 = device
        .is_cuda()
        .then(|| (format!("fp16, {}", layout(cl)), cl, true, Precision::Fp16));
    // On CUDA, after those: fp32 and bf16 with cuDNN autotuning.
    let tuned_precisions: &[Precision] = if device.is_cuda() {
        &[Precision::Fp32, Precision::Bf16]
    } else {
        &[]
    };
    let mut p = progress();
    let rows = 1 + variants.len() + usize::from(fp16.is_some()) + tuned_precisions.len();
    p.start("bench chestcam training steps", Some(rows as u64));
    let train = time_step(cl, true, Precision::Fp32, o.warmup)?;
    let mut done = 1;
    p.update(done);
    // `train`'s defaults depend on the device and size (on CUDA a graph,
    // fp16 in it; bf16 on a CPU with bfloat16 arithmetic): its eager step
    // is one of the fused-Adam rows, the first row included.
    let dflt = crate::train::TrainConfig::default().resolved(device, data.size);
    let is_default = |precision: Precision, c: bool| {
        precision == dflt.precision && c == dflt.uses_channels_last()
    };
    let mut default_ips = is_default(Precision::Fp32, cl).then_some(b as f64 / train);
    let mut variant_ips = Vec::new();
    for (name, c, fused, precision) in variants.into_iter().chain(fp16) {
        let warm = o.warmup + 2 * usize::from(precision != Precision::Fp32);
        let ips = b as f64 / time_step(c, fused, precision, warm)?;
        if fused && is_default(precision, c) {
            default_ips = Some(ips);
        }
        variant_ips.push((name, ips));
        done += 1;
        p.update(done);
    }
    // On CUDA: cuDNN autotuning (`train --cudnn-benchmark`), as PyTorch's
    // bf16 row uses it; its first steps search, so more warm-up.
    if device.is_cuda() {
        tch::Cuda::cudnn_set_benchmark(true);
        let tuned = tuned_precisions
            .iter()
            .map(|&precision| {
                let secs = time_step(cl, true, precision, o.warmup + 5)?;
                let name = format!("{precision}, {}, cudnn.benchmark", layout(cl));
                done += 1;
                p.update(done);
                Ok((name, b as f64 / secs))
            })
            .collect::<Result<Vec<_>>>();
        // Process-wide: off again whether or not a step failed.
        tch::Cuda::cudnn_set_benchmark(false);
        variant_ips.extend(tuned?);
    }
    p.finish();
    // Every method that needs at most a forward and 14 backwards, all 14
    // labels of the batch in one call each (Grad-CAM first).
    use crate::cam::Method;
    let timed: Vec<Method> = Method::ALL
        .into_iter()
        .filter(|m| !matches!(m, Method::ScoreCam | Method::AblationCam))
        .collect();
    let mut p = progress();
    // Each method, then Grad-CAM by phase, then Score-CAM.
    p.start("bench chestcam CAM methods", Some(timed.len() as u64 + 2));
    let mut cam_costs = Vec::new();
    // ATen kernel operators per call (one counted call each, untimed): on
    // a GPU a launch each, what the card waits on at small sizes.
    let (_, forward_ops) = crate::shim::count_ops(|| Ok(model.logits(&x)))?;
    let mut cam_ops = Vec::new();
    for method in timed {
        let secs = median_secs(1, o.reps, || {
            crate::cam::compute(&model, &x, method, Stage::Layer4, &[], 64)?;
            sync(device);
            Ok(())
        })?;
        cam_costs.push((method, secs));
        let (_, ops) = crate::shim::count_ops(|| {
            crate::cam::compute(&model, &x, method, Stage::Layer4, &[], 64)
        })?;
        cam_ops.push(ops.kernels());
        p.update(cam_costs.len() as u64);
    }
    let cam = cam_costs[0].1;
    // Grad-CAM's time by phase, the device waited for after each.
    let mut by_phase: Vec<(&'static str, Vec<f64>)> = Vec::new();
    for rep in 0..o.reps + 1 {
        let (r, phases) = crate::cam::phases::record(device, || {
            crate::cam::compute(&model, &x, Method::GradCam, Stage::Layer4, &[], 64)
        });
        r?;
        if rep == 0 {
            continue; // the warm-up call
        }
        for (i, (name, secs)) in phases.into_iter().enumerate() {
            match by_phase.get_mut(i) {
                Some((_, v)) => v.push(secs),
                None => by_phase.push((name, vec![secs])),
            }
        }
    }
    p.update(cam_costs.len() as u64 + 1);
    // Score-CAM: one forward per channel and image, 64 at a time.
    let score_n = o.score_batch.min(b) as i64;
    let xs = x.f_narrow(0, 0, score_n)?;
    let t = Instant::now();
    crate::cam::compute(
        &model,
        &xs,
        crate::cam::Method::ScoreCam,
        Stage::Layer4,
        &[],
        64,
    )?;
    sync(device);
    let score = t.elapsed().as_secs_f64();
    p.update(cam_costs.len() as u64 + 2);
    p.finish();
    let rss = peak_rss_mib().unwrap_or(f64::NAN);

    let mut p = progress();
    p.start(
        &format!("bench PyTorch side ({})", o.script.display()),
        None,
    );
    let py = run_python(o, &init, &logits_path, b, stem);
    p.finish();
    let py = py?;
    let get = |k: &str| py.get(k).and_then(|v| v.as_f64());
    let ips = |secs: f64| b as f64 / secs;
    let mut t = String::new();
    t.push_str(&format!(
        "ResNet-18 ({6} stem), {0}x{0} px, batch {b}, on {7:?} ({1} CPU threads), medians of {2} training steps / {5} inference passes after {3} warm-up; torch {4}\n\n",
        data.size,
        o.threads,
        o.reps,
        o.warmup,
        py.get("torch").and_then(|v| v.as_str()).unwrap_or("?"),
        3 * o.reps,
        stem,
        device
    ));
    t.push_str(&format!(
        "train's default step here: {} (the {} row)\n\n",
        dflt.step_summary(),
        if dflt.uses_cuda_graph() {
            "graph"
        } else {
            "eager"
        },
    ));
    t.push_str(&format!(
        "{:<40} {:>10} {:>10}\n",
        "row", "img/s", "ours/row"
    ));
    let (our_train, our_infer) = (ips(train), ips(infer));
    t.push_str(&format!(
        "{:<40} {:>10.1} {:>10}\n",
        format!("train  chestcam fp32, {}", layout(cl)),
        our_train,
        "1.00"
    ));
    for (name, v) in &variant_ips {
        t.push_str(&format!(
            "{:<40} {:>10.1} {:>10.2}\n",
            format!("train  chestcam {name}"),
            v,
            our_train / v
        ));
    }
    let mut pytorch = Vec::new();
    for row in PYTORCH_TRAIN_ROWS
        .iter()
        .filter(|r| device.is_cuda() || !r.cuda_only)
    {
        let name = format!("train  {}", row.name);
        match get(row.key) {
            Some(s) => {
                pytorch.push((row, ips(s)));
                t.push_str(&format!(
                    "{:<40} {:>10.1} {:>10.2}\n",
                    name,
                    ips(s),
                    our_train / ips(s)
                ))
            }
            None => match py
                .get(format!("{}_error", row.key.trim_end_matches("_s")))
                .and_then(|v| v.as_str())
            {
                Some(e) => t.push_str(&format!("{name:<40} failed: {e}\n")),
                None => t.push_str(&format!("{name:<40} {:>10} {:>10}\n", "skipped", "")),
            },
        }
    }
    let report = Report {
        text: String::new(),
        train_images_per_sec: our_train,
        pytorch,
    };
    // The default step against PyTorch's eager and best rows (a graph
    // default is compared in the graph rows below).
    if let (Some(v), false) = (default_ips, dflt.uses_cuda_graph()) {
        let mut line = format!("train  default step ({})", dflt.step_summary());
        if let Some(e) = report.pytorch("train_eager_s") {
            line.push_str(&format!(", {:.2}x PyTorch eager", v / e));
        }
        if let Some((name, best)) = report.pytorch_best() {
            line.push_str(&format!(", {:.2}x PyTorch's best ({name})", v / best));
        }
        t.push_str(&format!("{line}\n"));
    }
    t.push_str(&format!(
        "{:<40} {:>10.1} {:>10}\n",
        "infer  chestcam (tch)", our_infer, "1.00"
    ));
    if let Some(s) = get("infer_eager_s") {
        t.push_str(&format!(
            "{:<40} {:>10.1} {:>10.2}\n",
            "infer  PyTorch eager",
            ips(s),
            our_infer / ips(s)
        ));
    }
    t.push_str(&format!(
        "\npeak RSS over the whole run (training, inference, CAM): chestcam {:.0} MiB, PyTorch process {:.0} MiB\n",
        rss,
        get("peak_rss_mb").unwrap_or(f64::NAN)
    ));
    if let Device::Cuda(i) = device {
        let (held, reserved) = crate::shim::cuda_peak_memory(i, false)?;
        t.push_str(&format!(
            "peak device memory held by tensors: chestcam {:.0} MiB ({:.0} MiB reserved), PyTorch process {:.0} MiB\n",
            held as f64 / 1048576.0,
            reserved as f64 / 1048576.0,
            get("peak_device_mb").unwrap_or(f64::NAN)
        ));
    }
    t.push_str(&format!(
        "\nCAM maps, all 14 labels for the batch of {b} (layer4), cost in plain forwards:\n"
    ));
    t.push_str(&format!(
        "{:<40} {:>9.3} s\n",
        "plain forward (chestcam)", infer
    ));
    for (method, secs) in &cam_costs {
        let theirs = py
            .get("cam14_s")
            .and_then(|m| m.get(method.name()))
            .and_then(|v| v.as_f64())
            .map(|s| format!("; pytorch-grad-cam {s:.3} s, {:.1}x", s / secs))
            .unwrap_or_default();
        t.push_str(&format!(
            "{:<40} {:>9.3} s   ({:.2} forwards; {}{theirs})\n",
            format!("{}, one call", method.name()),
            secs,
            secs / infer,
            method.cost()
        ));
    }
    t.push_str(&format!(
        "ATen kernel operators per call (a launch each on a GPU; approximate, see shim::OpCounts): plain forward {}, {}\n",
        forward_ops.kernels(),
        cam_costs
            .iter()
            .zip(&cam_ops)
            .map(|((m, _), k)| format!("{} {k}", m.name()))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    match get("gradcam14_s") {
        Some(s) => t.push_str(&format!(
            "{:<40} {:>9.3} s   (chestcam's GradCAM is {:.1}x faster)\n",
            "pytorch-grad-cam GradCAM, 14 calls",
            s,
            s / cam
        )),
        None => t.push_str("pytorch-grad-cam: skipped (not installed)\n"),
    }
    t.push_str(&format!(
        "GradCAM by phase, the device waited for after each (medians of {}):\n",
        o.reps
    ));
    for (name, mut v) in by_phase {
        v.sort_by(f64::total_cmp);
        let m = v[v.len() / 2];
        t.push_str(&format!(
            "  {name:<38} {m:>9.4} s   ({:.3} forwards)\n",
            m / infer
        ));
    }
    t.push_str(&format!(
        "Score-CAM, all 14 labels, {score_n} images (512 masked forwards each, 64 at a time): {score:.1} s ({:.2} s per image)\n",
        score / score_n as f64
    ));
    if let Some(d) = get("max_abs_logit_diff") {
        t.push_str(&format!(
            "parity: max |logit difference| on the same weights and batch = {d:.2e}\n"
        ));
    }
    if o.road_images > 0 {
        let mut p = progress();
        p.start("bench ROAD, both sides", None);
        let row = road_row(o, &model, &x, &init);
        p.finish();
        t.push_str(&row?);
    }
    Ok(Report { text: t, ..report })
}

/// On CUDA: chestcam's training step captured as one CUDA graph
/// ([`crate::train::graph::GraphStep`]), in fp32 and bf16, against the
/// rows of `report` (run first, from the same options: it wrote the
/// initial weights). A failed capture is reported in its row.
pub fn graph_rows(o: &BenchOptions, report: &Report) -> Result<String> {
    let device = crate::model::parse_device(&o.device)?;
    if !device.is_cuda() {
        return Ok(String::new());
    }
    let data = Dataset::from_npz(bench_npz(o))?;
    let stem = Stem::default_for(data.size);
    let split = data.train.head(o.batch.min(data.train.len()));
    let (x, y) = (split.images_tensor(device)?, split.labels_tensor(device)?);
    let b = x.size()[0] as f64;
    let init = o.out.join("init.safetensors");
    let mut t = format!(
        "\nchestcam's training step as one CUDA graph (forward, loss, backward, fused Adam), medians of {} replays:\n",
        o.reps
    );
    let variants = [false, true]
        .into_iter()
        .flat_map(|c| [(Precision::Fp32, c, false), (Precision::Bf16, c, false)])
        .chain([
            (Precision::Fp16, true, false),
            (Precision::Fp32, true, true),
            (Precision::Bf16, true, true),
        ]);
    for (precision, cl, tune) in variants {
        tch::Cuda::cudnn_set_benchmark(tune);
        let measured = (|| -> Result<f64> {
            let (m, input, mut opt) =
                fresh_step(stem, data.size, device, &init, &x, cl, precision)?;
            let mut g = crate::train::graph::GraphStep::new(&m, &opt, &input, &y, 1e-3, precision)?;
            // The warm-up covers the graph's eager steps and its capture.
            let warmup = o.warmup.max(crate::train::graph::WARMUP_STEPS + 1);
            let secs = median_secs(warmup, o.reps, || {
                g.step(&m, &mut opt, &input, &y)?.f_double_value(&[])?;
                Ok(())
            })?;
            Ok(b / secs)
        })();
        tch::Cuda::cudnn_set_benchmark(false);
        let name = format!(
            "train  graph {precision}, {}{}",
            if cl { "chan-last" } else { "NCHW" },
            if tune { ", cudnn.bench" } else { "" }
        );
        match measured {
            Ok(v) => {
                t.push_str(&format!(
                    "{name:<40} {v:>10.1}   {:.2}x chestcam eager",
                    v / report.train_images_per_sec
                ));
                // PyTorch's graph of the same step, where it has one.
                let same = match (precision, cl) {
                    (Precision::Fp32, false) => Some("train_graph_s"),
                    (Precision::Bf16, true) => Some("train_graph_bf16_cl_s"),
                    (Precision::Fp16, true) => Some("train_graph_fp16_cl_s"),
                    _ => None,
                };
                for (what, r) in [
                    ("PyTorch eager", report.pytorch("train_eager_s")),
                    (
                        "PyTorch's graph of this step",
                        same.and_then(|k| report.pytorch(k)),
                    ),
                ] {
                    if let Some(r) = r {
                        t.push_str(&format!(", {:.2}x {what}", v / r));
                    }
                }
                if let Some((name, best)) = report.pytorch_best() {
                    t.push_str(&format!(", {:.2}x PyTorch's best ({name})", v / best));
                }
                t.push('\n');
            }
            Err(e) => t.push_str(&format!("{name:<40} failed: {e}\n")),
        }
    }
    Ok(t)
}

/// On CUDA: each capturable CAM method's call for all 14 labels of the
/// batch replayed as one CUDA graph ([`crate::cam::graph::CamGraph`]),
/// timed against its eager call and against a plain forward, eager and
/// graphed, with the largest difference of its maps from the eager maps.
/// Empty on the CPU (where a graph is only emulated). Run after [`run`]
/// (its weights).
pub fn cam_graph_rows(o: &BenchOptions) -> Result<String> {
    let device = crate::model::parse_device(&o.device)?;
    if !device.is_cuda() {
        return Ok(String::new());
    }
    let methods: Vec<crate::cam::Method> = crate::cam::Method::ALL
        .into_iter()
        .filter(|m| crate::cam::graph::not_capturable(*m).is_none())
        .collect();
    cam_graphs(o, device, &methods)
}

/// The largest `|a - b|` of two tensors of one shape.
fn max_abs_difference(a: &Tensor, b: &Tensor) -> Result<f64> {
    Ok(a.f_sub(b)?.f_abs()?.f_max()?.f_double_value(&[])?)
}

/// [`cam_graph_rows`] on any device, for `methods`.
fn cam_graphs(o: &BenchOptions, device: Device, methods: &[crate::cam::Method]) -> Result<String> {
    use crate::cam::{graph::CamGraph, Smooth};
    use crate::graphed::{Graphed, WARMUP_CALLS};
    let data = Dataset::from_npz(bench_npz(o))?;
    let mut model = Model::new(Stem::default_for(data.size), data.size, device)?;
    model.load(o.out.join("init.safetensors"))?;
    let x = data
        .train
        .head(o.batch.min(data.train.len()))
        .images_tensor(device)?;
    // Enough warm-up for the eager calls, the capture and a replay.
    let warmup = o.warmup.max(WARMUP_CALLS + 2);
    // Forwards three times as often, as in `run` (they are cheap).
    let timed = |reps: usize, f: &mut dyn FnMut() -> Result<()>| {
        median_secs(warmup, reps, || {
            f()?;
            sync(device);
            Ok(())
        })
    };
    let forward = timed(3 * o.reps, &mut || {
        let _ = model.logits(&x);
        Ok(())
    })?;
    let mut g = Graphed::new(&[&x])?;
    let forward_graph = timed(3 * o.reps, &mut || {
        g.call(&[&x], |ins| Ok(vec![model.logits(&ins[0])]))?;
        Ok(())
    })?;
    // The graphed forward on another input than the one it was captured with.
    let reversed = x.f_flip([0i64])?;
    let logits_diff = max_abs_difference(
        &g.call(&[&reversed], |ins| Ok(vec![model.logits(&ins[0])]))?
            .remove(0),
        &model.logits(&reversed),
    )?;
    let mut t = format!(
        "\nCAM calls as one CUDA graph, all 14 labels of {} images (layer4), medians of {} calls ({} for the forwards): plain forward {:.3} ms eager, {:.3} ms graphed (max |logits - eager logits| {logits_diff:.1e})\n",
        x.size()[0],
        o.reps,
        3 * o.reps,
        forward * 1e3,
        forward_graph * 1e3
    );
    for &method in methods {
        let row = (|| -> Result<String> {
            let eager_of =
                |input: &Tensor| crate::cam::compute(&model, input, method, Stage::Layer4, &[], 64);
            let eager = timed(o.reps, &mut || eager_of(&x).map(|_| ()))?;
            let mut cg = CamGraph::new(
                &model,
                &x,
                method,
                &[Stage::Layer4],
                &[],
                64,
                Smooth::default(),
            )?;
            let graphed = timed(o.reps, &mut || cg.compute(&x).map(|_| ()))?;
            // Two replays after the timed ones, of the batch and of the
            // batch in reverse order (a replay must read its new input),
            // each against an eager call; the first is read after the
            // second replay (it must not be the graph's own output).
            let (first, second) = (cg.compute(&x)?, cg.compute(&reversed)?);
            let diff = max_abs_difference(&first.maps, &eager_of(&x)?.maps)?.max(
                max_abs_difference(&second.maps, &eager_of(&reversed)?.maps)?,
            );
            Ok(format!(
                "{:<22} graph {:>8.3} ms, eager {:>8.3} ms ({:.1}x); {:.2} eager forwards, {:.2} graphed forwards; max |maps - eager maps| {diff:.1e} (two batches)\n",
                method.name(),
                graphed * 1e3,
                eager * 1e3,
                eager / graphed,
                graphed / forward,
                graphed / forward_graph
            ))
        })();
        t.push_str(&match row {
            Ok(r) => r,
            Err(e) => format!("{:<22} failed: {e}\n", method.name()),
        });
    }
    Ok(t)
}

/// On CUDA: every CAM method's maps on the device against the same
/// weights' maps on the CPU (the first 8 images of the batch, all 14
/// labels, layer4): the device paths (the channels-last upsampling, the
/// eigenvectors by squaring, the probe gradients) checked on the card
/// where they run. Empty on the CPU. Run after [`run`] (its weights).
pub fn cam_parity_rows(o: &BenchOptions) -> Result<String> {
    let device = crate::model::parse_device(&o.device)?;
    if !device.is_cuda() {
        return Ok(String::new());
    }
    cam_parity(o, device, Device::Cpu, 8)
}

/// The maps of every CAM method on `a` against `b` for the first `n`
/// images of [`bench_npz`], from the weights [`run`] saved. RandomCAM (each
/// device's own generator) and the two methods of a forward per channel
/// (minutes on a CPU) are left out.
fn cam_parity(o: &BenchOptions, a: Device, b: Device, n: usize) -> Result<String> {
    use crate::cam::Method;
    let data = Dataset::from_npz(bench_npz(o))?;
    let stem = Stem::default_for(data.size);
    let split = data.train.head(n);
    let init = o.out.join("init.safetensors");
    let load = |d: Device| -> Result<(Model, Tensor)> {
        let mut m = Model::new(stem, data.size, d)?;
        m.load(&init)?;
        Ok((m, split.images_tensor(d)?))
    };
    let ((ma, xa), (mb, xb)) = (load(a)?, load(b)?);
    let mut t = format!(
        "
CAM maps on {a:?} against {b:?}, same weights, {} images x 14 labels, layer4 (maps scaled to [0, 1]):
",
        split.len()
    );
    for method in Method::ALL.into_iter().filter(|m| {
        !matches!(
            m,
            Method::RandomCam | Method::ScoreCam | Method::AblationCam
        )
    }) {
        let diff = (|| -> Result<(f64, i64, i64)> {
            let maps = |m: &Model, x: &Tensor| -> Result<Tensor> {
                Ok(crate::cam::compute(m, x, method, Stage::Layer4, &[], 64)?
                    .maps
                    .f_to_device(Device::Cpu)?)
            };
            let d = maps(&ma, &xa)?.f_sub(&maps(&mb, &xb)?)?.f_abs()?;
            // Per map (image x label): its largest difference.
            let per_map = d.f_flatten(2, -1)?.f_amax(&[-1i64][..], false)?;
            let over = per_map
                .f_gt(1e-3)?
                .f_sum(tch::Kind::Int64)?
                .f_int64_value(&[])?;
            Ok((
                d.f_max()?.f_double_value(&[])?,
                over,
                per_map.numel() as i64,
            ))
        })();
        t.push_str(&match diff {
            Ok((max, over, maps)) => format!(
                "{:<22} max |difference| {max:.2e}, {over} of {maps} maps above 1e-3\n",
                method.name()
            ),
            Err(e) => format!("{:<22} failed: {e}\n", method.name()),
        });
    }
    Ok(t)
}

/// ROAD (MoRF + LeRF at 10..90, combined) for all 14 labels of the first
/// `road_images` images, chestcam against pytorch-grad-cam's ROADCombined
/// on the same Grad-CAM maps, noise off on both sides; one timed run each.
fn road_row(o: &BenchOptions, model: &Model, x: &Tensor, init: &Path) -> Result<String> {
    use crate::trust::road::{road, RoadSettings};
    let n = (o.road_images as i64).min(x.size()[0]);
    let xr = x.f_narrow(0, 0, n)?;
    let maps = crate::cam::compute(
        model,
        &xr,
        crate::cam::Method::GradCam,
        Stage::Layer4,
        &[],
        64,
    )?
    .maps;
    let labels: Vec<usize> = (0..crate::data::registry::NUM_LABELS).collect();
    let t = Instant::now();
    // pytorch-grad-cam's settings with the noise off, for parity.
    let settings = RoadSettings {
        noise: 0.0,
        ..RoadSettings::default()
    };
    let ours = road(
        model,
        &xr,
        &maps,
        &labels,
        &settings,
        crate::trust::Forwards::fp32(256),
    )?;
    let secs = t.elapsed().as_secs_f64();
    let path = o.out.join("road_maps.safetensors");
    Tensor::write_safetensors(&[("input", &xr), ("maps", &maps)], &path)
        .map_err(|e| Error::bad_file(&path, e.to_string()))?;
    let script = o.script.with_file_name("bench_road.py");
    let out = std::process::Command::new(&o.python)
        .arg(&script)
        .args(["--weights", &init.display().to_string()])
        .args(["--maps", &path.display().to_string()])
        .args(["--threads", &o.threads.to_string()])
        .output()
        .map_err(|e| Error::io(&script, e))?;
    let mut row = format!(
        "\nROAD (MoRF + LeRF, percentiles 10..90, combined), 14 labels x {n} images, Grad-CAM maps:\n{:<40} {:>9.1} s\n",
        "chestcam, one batched call", secs
    );
    let py: Option<serde_json::Value> = out
        .status
        .success()
        .then(|| {
            serde_json::from_str(
                String::from_utf8_lossy(&out.stdout)
                    .lines()
                    .last()
                    .unwrap_or(""),
            )
            .ok()
        })
        .flatten();
    match py
        .as_ref()
        .and_then(|v| Some((v.get("road_s")?.as_f64()?, v.get("combined")?)))
    {
        Some((ref_s, comb)) => {
            let want: Vec<f32> = serde_json::from_value::<Vec<Vec<f32>>>(comb.clone())
                .map_err(|e| Error::invalid("ROAD benchmark output", e.to_string()))?
                .concat();
            let got: Vec<f32> = Vec::try_from(ours.combined.f_flatten(0, -1)?)?;
            let diff = got
                .iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            row.push_str(&format!(
                "{:<40} {:>9.1} s   (chestcam is {:.1}x faster)\nparity: max |ROADCombined difference| over {} scores = {diff:.2e}\n",
                "pytorch-grad-cam, 14 calls",
                ref_s,
                ref_s / secs,
                want.len()
            ));
        }
        None => row.push_str(&format!(
            "pytorch-grad-cam ROAD: skipped ({})\n",
            String::from_utf8_lossy(&out.stderr)
                .lines()
                .last()
                .unwrap_or("no output")
        )),
    }
    Ok(row)
}

fn run_python(
    o: &BenchOptions,
    init: &Path,
    logits: &Path,
    batch: usize,
    stem: Stem,
) -> Result<serde_json::Value> {
    let out = std::process::Command::new(&o.python)
        .arg(&o.script)
        .args([
            "--weights",
            &init.display().to_string(),
            "--data",
            &bench_npz(o).display().to_string(),
        ])
        .args([
            "--batch",
            &batch.to_string(),
            "--threads",
            &o.threads.to_string(),
        ])
        .args([
            "--warmup",
            &o.warmup.to_string(),
            "--reps",
            &o.reps.to_string(),
        ])
        .args(["--rust-logits", &logits.display().to_string()])
        .args(["--device", &o.device, "--stem", &stem.to_string()])
        .args(["--cam-reps", &o.reps.min(3).to_string()])
        .args(if o.all_methods {
            // Every method but Grad-CAM (timed above) and the two that run a
            // forward per channel, named as the method table names them.
            let timed: Vec<crate::cam::Method> = crate::cam::Method::ALL
                .into_iter()
                .filter(|m| {
                    !matches!(
                        m,
                        crate::cam::Method::GradCam
                            | crate::cam::Method::ScoreCam
                            | crate::cam::Method::AblationCam
                    )
                })
                .collect();
            vec![
                "--methods".to_string(),
                crate::cam::Method::reference_list(&timed),
            ]
        } else {
            vec![]
        })
        .output()
        .map_err(|e| Error::io(&o.script, e))?;
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        return Err(Error::invalid(
            "PyTorch benchmark",
            format!(
                "{} failed: {}",
                o.script.display(),
                err.lines().last().unwrap_or("")
            ),
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.lines().last().unwrap_or(""))
        .map_err(|e| Error::invalid("PyTorch benchmark output", e.to_string()))
}

#[cfg(test)]
mod data_tests {
    use super::*;

    #[test]
    fn prepare_data_writes_the_batch_at_the_asked_size() {
        let dir = tempfile::tempdir().unwrap();
        let o = BenchOptions {
            data: "synthetic:28:40,20,10:3".into(),
            size: Some(64),
            batch: 16,
            threads: 1,
            warmup: 0,
            reps: 1,
            out: dir.path().join("bench"),
            python: "python".into(),
            script: "scripts/bench_pytorch.py".into(),
            score_batch: 1,
            road_images: 0,
            device: "cpu".into(),
            all_methods: false,
        };
        let written = prepare_data(&o).unwrap();
        let d = Dataset::from_npz(bench_npz(&o)).unwrap();
        // The file holds what the bench times.
        assert_eq!(
            (&d.train, &d.val, &d.test),
            (&written.train, &written.val, &written.test)
        );
        let src: crate::data::source::DataSource = o.data.parse().unwrap();
        let src = src.load(&mut crate::progress::Silent).unwrap();
        assert_eq!(d.size, 64);
        assert_eq!((d.train.len(), d.val.len(), d.test.len()), (16, 16, 10));
        assert_eq!(d.train, src.train.tiled_resized(16, 64).unwrap());
        // No --size: the source's own pixels; a batch larger than the
        // split takes all of it.
        let o = BenchOptions {
            size: None,
            batch: 1000,
            ..o
        };
        prepare_data(&o).unwrap();
        let d = Dataset::from_npz(bench_npz(&o)).unwrap();
        assert_eq!(d.train, src.train);
        // The CUDA-against-CPU map check, run here CPU against CPU: every
        // method's row, each with no difference.
        let m = Model::new(Stem::default_for(28), 28, Device::Cpu).unwrap();
        m.save(o.out.join("init.safetensors")).unwrap();
        let rows = cam_parity(&o, Device::Cpu, Device::Cpu, 3).unwrap();
        let rows: Vec<&str> = rows.trim().lines().skip(1).collect();
        assert_eq!(rows.len(), crate::cam::Method::ALL.len() - 3, "{rows:?}");
        for r in rows {
            assert!(r.contains("max |difference| 0.00e0, 0 of 42 maps"), "{r}");
        }
        // The CUDA-graph rows, emulated here: the maps are the eager ones.
        let small = BenchOptions {
            batch: 4,
            ..o.clone()
        };
        let rows = cam_graphs(
            &small,
            Device::Cpu,
            &[crate::cam::Method::GradCam, crate::cam::Method::EigenCam],
        )
        .unwrap();
        let rows: Vec<&str> = rows.trim().lines().collect();
        assert!(
            rows[0].contains("all 14 labels of 4 images")
                && rows[0].contains("max |logits - eager logits| 0.0e0"),
            "{rows:?}"
        );
        assert_eq!(rows.len(), 3, "{rows:?}");
        for (r, name) in rows[1..].iter().zip(["GradCAM", "EigenCAM"]) {
            assert!(
                r.starts_with(name) && r.contains("max |maps - eager maps| 0.0e0 (two batches)"),
                "{r}"
            );
        }
        for size in [Some(4), Some(5000)] {
            let o = BenchOptions { size, ..o.clone() };
            let e = prepare_data(&o).unwrap_err().to_string();
            assert!(e.contains("--size") && e.contains("8 to 1024"), "{e}");
        }
    }
}
