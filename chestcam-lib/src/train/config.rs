//! A training run's configuration: MedMNIST's protocol as defaults, saved
//! as `config.json` in the run folder before any work starts.
use crate::model::{check_stem, Stem};
use crate::{Error, Result};
use std::path::PathBuf;

/// The arithmetic of the training step's forward pass.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// The fastest measured choice for the device and image size
    /// ([`Precision::resolve_for`]): fp16 on CUDA (in `train`'s default
    /// CUDA graph at every size; eager from 64 px), bf16 on a CPU with
    /// bfloat16 arithmetic, else fp32. A run's `config.json`
    /// records what it resolved to.
    #[default]
    Auto,
    /// float32 throughout: MedMNIST's protocol, bit for bit reproducible.
    Fp32,
    /// bfloat16 autocast (convolutions and matmuls), float32 weights,
    /// optimiser and loss: `torch.autocast(dtype=torch.bfloat16)`.
    Bf16,
    /// float16 autocast with a gradient scaler (`torch.amp.GradScaler`),
    /// for GPUs without bfloat16 such as Colab's T4. On a CPU without
    /// float16 arithmetic it is about 20 times slower than fp32.
    Fp16,
}

crate::choices!(Precision, "precision" {
    Auto => "auto",
    Fp32 => "fp32" | "float32",
    Bf16 => "bf16" | "bfloat16",
    Fp16 => "fp16" | "float16" | "half",
});

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Precision::Auto => "auto",
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

impl Precision {
    /// Runs `f` on `device` in this precision's arithmetic: under bf16 or
    /// fp16 autocast, or as it is for fp32 (and an unresolved `Auto`,
    /// which callers resolve first).
    pub fn run<T>(
        self,
        device: tch::Device,
        f: impl FnOnce() -> crate::Result<T>,
    ) -> crate::Result<T> {
        match self {
            Precision::Fp32 | Precision::Auto => f(),
            Precision::Bf16 => crate::shim::autocast(device, false, f),
            Precision::Fp16 => crate::shim::autocast(device, true, f),
        }
    }

    /// `Auto` made concrete for an eager step (no CUDA graph) on `device`
    /// with `size` px images on this machine: [`Precision::resolve_for`]
    /// with [`cpu_has_bf16`]. `train` resolves its whole configuration
    /// instead ([`TrainConfig::resolved`]), graph included.
    pub fn resolve(self, device: tch::Device, size: usize) -> Precision {
        self.resolve_for(device, size, cpu_has_bf16(), false)
    }

    /// `Auto` made concrete for `device`, `size` px images, a CPU with or
    /// without bfloat16 arithmetic (`cpu_bf16`) and a step replayed from a
    /// CUDA graph or not (`graph`). From `chestcam bench` (batch 128,
    /// channels-last, img/s) on an H100 in three runs (2026-11-27) and on
    /// this CPU:
    /// - CUDA in a graph, any size: fp16 with its gradient scaler. In the
    ///   graph fp16 beat fp32 by 1.54-1.57x at 28 px (44,001-44,825 against
    ///   28,542-28,777 img/s) and beat fp16 eager by 3-6% at 64 and 224 px,
    ///   the fastest rows of all three runs. fp16 trained phantoms to fp32's
    ///   test AUC (0.978 against 0.979 at 28 px, 0.987 against 0.988 at 64
    ///   px), and unlike bf16 it runs on cards such as Colab's T4.
    /// - CUDA eager: fp16 from 64 px (1.73x fp32 at 64 px, 1.44x at 224 px;
    ///   bf16 1.49x and 1.24x); fp32 at 28 px, where an eager step waits
    ///   for kernel launches and mixed precision only adds casts (bf16
    ///   0.85x, fp16 0.94x).
    /// - A CPU with AVX512-BF16: bf16 autocast, 1.7-1.9x fp32 at 28 px and
    ///   1.88x at 64 px on this 2-core machine, trained to fp32's test AUC
    ///   within 0.01 on phantoms (tested).
    /// - Any other CPU: fp32. There bf16 is emulated and slower, and fp16
    ///   about 20 times slower.
    ///
    /// Other values are returned as they are. fp32 is MedMNIST's protocol:
    /// `train` says so whenever `auto` picked something else.
    pub fn resolve_for(
        self,
        device: tch::Device,
        size: usize,
        cpu_bf16: bool,
        graph: bool,
    ) -> Precision {
        match self {
            Precision::Auto if device.is_cuda() && (graph || size >= 64) => Precision::Fp16,
            Precision::Auto if device == tch::Device::Cpu && cpu_bf16 => Precision::Bf16,
            Precision::Auto => Precision::Fp32,
            p => p,
        }
    }
}

/// Whether this CPU computes in bfloat16 natively (x86-64's AVX512-BF16:
/// Intel Cooper Lake and Sapphire Rapids onwards, AMD Zen 4 onwards),
/// which makes bf16 autocast the fastest CPU precision. `false` on other
/// architectures: no bf16 speed was measured there.
pub fn cpu_has_bf16() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("avx512bf16")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct TrainConfig {
    /// `chestmnist[:size]`, `synthetic[:size]` or a path to an npz.
    pub source: String,
    /// Stem; `None` picks the default for the image size.
    pub stem: Option<Stem>,
    pub epochs: usize,
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// Fractions of `epochs` after which the rate is multiplied by `gamma`.
    pub milestones: Vec<f64>,
    pub gamma: f64,
    pub seed: u64,
    /// Use only the first `n` training images (quick runs).
    pub train_subset: Option<usize>,
    /// Random shifts, brightness and contrast (MedMNIST's protocol has none).
    pub augment: bool,
    /// The data-randomisation sanity check (Adebayo et al. 2018): train on
    /// the training labels permuted across images (one permutation from
    /// `seed`, the same every epoch); validation and test keep the true
    /// labels. Such a run's maps should owe nothing to the findings.
    pub shuffle_labels: bool,
    /// `auto`, `cpu`, `cuda`, `cuda:N`.
    pub device: String,
    /// libtorch intra-op threads (`None`: libtorch's default).
    pub threads: Option<i32>,
    /// torchvision-named ImageNet weights (safetensors) to start from.
    pub imagenet: Option<PathBuf>,
    /// Channels-last (NHWC) weights and batches; `None`: on (measured
    /// faster on every device: 7% on this 2-core CPU; on an H100 1.15x at
    /// 28 px, 1.50x at 64 px, fp32, `chestcam bench`, 2026-11-27).
    pub channels_last: Option<bool>,
    /// `auto` (the default: see [`TrainConfig::resolved`]), fp32 (MedMNIST's
    /// protocol), bf16 autocast or fp16 autocast with a gradient scaler.
    pub precision: Precision,
    /// CUDA only: each full batch's step (forward, loss, backward, Adam)
    /// replayed from one captured CUDA graph (`train::graph`); the last
    /// partial batch of an epoch runs eagerly. Same steps, fewer launches.
    /// `None`: on for CUDA at every size. At 28 px the card waits for
    /// launches (1.42x the eager step in fp32, and a ChestMNIST-28 epoch
    /// in 3.9 s instead of 5.1 s on an H100); in the graph fp16 is faster
    /// still (1.55x fp32's graph), and at 64 and 224 px the fp16 graph is
    /// 3-6% faster than fp16 eager. The graph keeps its step's memory in
    /// its own pool between batches. A graph that cannot be captured does
    /// not stop the run: it goes on eagerly, says so on stderr, and the
    /// epoch records name the step that ran (`train::graph::Steps`).
    pub cuda_graph: Option<bool>,
    /// CUDA only: cuDNN autotunes each convolution's algorithm for the
    /// shapes it meets (`torch.backends.cudnn.benchmark`), at the cost of a
    /// few slow first steps and run-to-run bitwise differences. PyTorch's
    /// fastest recipe in `chestcam bench` uses it.
    pub cudnn_benchmark: bool,
    /// CUDA only: where the uint8 training split lives. `Some(true)`: on
    /// the device, copied once (the fastest); `Some(false)`: in host
    /// memory, each batch gathered there and copied through pinned memory
    /// as it is needed; `None` (auto): on the device when it takes at most
    /// half of the memory the device has free as training starts (the rest
    /// is for the step), else in host memory. The batches are the same
    /// either way.
    pub data_on_device: Option<bool>,
}

impl Default for TrainConfig {
    /// MedMNIST v2's protocol: Adam, lr 1e-3, batch 128, BCE with logits,
    /// lr x0.1 at 50% and 75% of 100 epochs.
    fn default() -> Self {
        TrainConfig {
            source: "chestmnist".into(),
            stem: None,
            epochs: 100,
            batch_size: 128,
            lr: 1e-3,
            milestones: vec![0.5, 0.75],
            gamma: 0.1,
            seed: 0,
            train_subset: None,
            augment: false,
            shuffle_labels: false,
            device: "auto".into(),
            threads: None,
            imagenet: None,
            channels_last: None,
            cuda_graph: None,
            cudnn_benchmark: false,
            data_on_device: None,
            precision: Precision::Auto,
        }
    }
}

/// What a resume may change: how a run computes, never what it trains.
/// The data, model, schedule and seed stay as `config.json` saved them;
/// the device, its threads and the step's speed settings may differ (a run
/// started on a GPU continued on a CPU, or on another card), and `source`
/// gives the same data's new place after a move.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ResumeChanges {
    /// The run's data at a new place (the same data: its image size is
    /// checked against the checkpoint's).
    pub source: Option<String>,
    pub device: Option<String>,
    pub threads: Option<i32>,
    pub precision: Option<Precision>,
    pub channels_last: Option<bool>,
    pub cuda_graph: Option<bool>,
    pub cudnn_benchmark: Option<bool>,
    pub data_on_device: Option<bool>,
}

impl ResumeChanges {
    /// The command-line options (without `--`) that `train --resume` takes.
    pub const OPTIONS: [&'static str; 8] = [
        "source",
        "device",
        "threads",
        "precision",
        "channels-last",
        "cuda-graph",
        "cudnn-benchmark",
        "data-on-device",
    ];

    pub fn is_empty(&self) -> bool {
        *self == ResumeChanges::default()
    }
}

/// The device a recorded `device` string names, as `cpu` or `cuda`, or
/// `None` for `auto` (whatever the machine had).
fn device_kind(s: &str) -> Option<&'static str> {
    match s.trim().to_ascii_lowercase().as_str() {
        "cpu" => Some("cpu"),
        "cuda" | "gpu" => Some("cuda"),
        d if d.starts_with("cuda:") => Some("cuda"),
        _ => None,
    }
}

/// `cpu` or `cuda:N`, as `config.json` records the device a run ran on.
pub fn device_string(d: tch::Device) -> String {
    match d {
        tch::Device::Cpu => "cpu".into(),
        tch::Device::Cuda(i) => format!("cuda:{i}"),
        other => format!("{other:?}").to_ascii_lowercase(),
    }
}

impl TrainConfig {
    /// Refuses a bad configuration before any work starts.
    pub fn validate(&self, image_size: Option<usize>) -> Result<()> {
        if self.batch_size == 0 {
            return Err(Error::invalid("batch size", "0 (must be at least 1)"));
        }
        if self.epochs == 0 {
            return Err(Error::invalid("epochs", "0 (must be at least 1)"));
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(Error::invalid(
                "learning rate",
                format!("{} (must be a positive number)", self.lr),
            ));
        }
        if !(self.gamma > 0.0 && self.gamma <= 1.0) {
            return Err(Error::invalid(
                "gamma",
                format!("{} (must be in (0, 1])", self.gamma),
            ));
        }
        if let Some(m) = self.milestones.iter().find(|m| !(**m > 0.0 && **m < 1.0)) {
            return Err(Error::invalid(
                "milestones",
                format!("{m} (fractions of the epochs, in (0, 1))"),
            ));
        }
        if self.train_subset == Some(0) {
            return Err(Error::invalid("train subset", "0 images"));
        }
        if let Some(t) = self.threads {
            crate::util::check_threads("threads", t as i64)?;
        }
        let device = crate::model::parse_device(&self.device)?;
        // The CUDA-only choices are refused on any other device.
        for (asked, option, why) in [
            (
                self.cuda_graph == Some(true),
                "--cuda-graph",
                "CUDA graphs need a CUDA device",
            ),
            (
                self.data_on_device == Some(true),
                "--data-on-device",
                "the data is in host memory already",
            ),
            (
                self.cudnn_benchmark,
                "--cudnn-benchmark",
                "cuDNN autotuning needs a CUDA device",
            ),
        ] {
            if asked && !device.is_cuda() {
                return Err(Error::invalid(
                    option,
                    format!("the run is on {}: {why}", device_string(device)),
                ));
            }
        }
        self.source.parse::<crate::data::source::DataSource>()?;
        if let Some(size) = image_size {
            check_stem(self.stem_for(size), size)?;
        }
        Ok(())
    }

    /// The configuration with its device- and size-dependent defaults made
    /// concrete (device, precision, CUDA graph), as a run records it: the
    /// device it runs on (`auto` becomes `cpu` or `cuda:N`), the graph on
    /// CUDA unless turned off (see `cuda_graph`), and `auto` precision for
    /// the device, size, this CPU and the graph ([`Precision::resolve_for`]).
    pub fn resolved(&self, device: tch::Device, size: usize) -> TrainConfig {
        let graph = self.cuda_graph.unwrap_or(device.is_cuda());
        TrainConfig {
            device: device_string(device),
            precision: self
                .precision
                .resolve_for(device, size, cpu_has_bf16(), graph),
            cuda_graph: Some(graph),
            ..self.clone()
        }
    }

    /// The saved configuration with a resume's `changes`. Moving to
    /// another kind of device (CPU and CUDA) decides the device-dependent
    /// choices afresh (precision `auto`, the CUDA graph's and cuDNN
    /// autotuning's defaults, where the data lives) unless `changes` names
    /// them: a CUDA run's fp16 graph would not run, or run 20 times slower,
    /// on a CPU.
    pub fn with_changes(&self, changes: &ResumeChanges) -> Result<TrainConfig> {
        let mut c = self.clone();
        if let Some(s) = &changes.source {
            s.parse::<crate::data::source::DataSource>()?;
            c.source = s.clone();
        }
        if let Some(d) = &changes.device {
            let new = crate::model::parse_device(d)?;
            let new_kind = if new.is_cuda() { "cuda" } else { "cpu" };
            if device_kind(&self.device) != Some(new_kind) {
                c.precision = Precision::Auto;
                c.cuda_graph = None;
                c.cudnn_benchmark = false;
                c.data_on_device = None;
            }
            c.device = d.clone();
        }
        if let Some(t) = changes.threads {
            c.threads = Some(t);
        }
        if let Some(p) = changes.precision {
            c.precision = p;
        }
        if let Some(v) = changes.channels_last {
            c.channels_last = Some(v);
        }
        if let Some(v) = changes.cuda_graph {
            c.cuda_graph = Some(v);
        }
        if let Some(v) = changes.cudnn_benchmark {
            c.cudnn_benchmark = v;
        }
        if let Some(v) = changes.data_on_device {
            c.data_on_device = Some(v);
        }
        Ok(c)
    }

    /// Whether full batches replay a captured CUDA graph (after
    /// [`TrainConfig::resolved`]; `None` counts as off).
    pub fn uses_cuda_graph(&self) -> bool {
        self.cuda_graph.unwrap_or(false)
    }

    /// The step in words, as `train` and `chestcam bench` print it:
    /// `fp16, channels-last, CUDA graph` (after [`TrainConfig::resolved`]).
    pub fn step_summary(&self) -> String {
        format!(
            "{}, {}{}",
            self.precision,
            if self.uses_channels_last() {
                "channels-last"
            } else {
                "NCHW"
            },
            if self.uses_cuda_graph() {
                ", CUDA graph"
            } else {
                ""
            },
        )
    }

    /// Where and how the step runs, as each epoch's record keeps it:
    /// `cpu: bf16, channels-last` (after [`TrainConfig::resolved`]).
    pub fn step_label(&self) -> String {
        format!("{}: {}", self.device, self.step_summary())
    }

    /// Whether training runs channels-last (the default on every device).
    pub fn uses_channels_last(&self) -> bool {
        self.channels_last.unwrap_or(true)
    }

    /// The stem used for `size` px images.
    pub fn stem_for(&self, size: usize) -> Stem {
        self.stem.unwrap_or(Stem::default_for(size))
    }

    /// Learning rate of (0-based) `epoch`, as MedMNIST's
    /// `MultiStepLR(milestones=[0.5 * E, 0.75 * E], gamma=0.1)`: PyTorch
    /// fires a milestone only when the epoch counter equals it, so a
    /// fractional milestone (0.75 * 2 = 1.5) never fires.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let passed = self
            .milestones
            .iter()
            .map(|m| m * self.epochs as f64)
            .filter(|at| at.fract() == 0.0 && epoch as f64 >= *at)
            .count();
        self.lr * self.gamma.powi(passed as i32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_resume_changes_how_a_run_computes() {
        let cuda_run = TrainConfig {
            device: "cuda:0".into(),
            precision: Precision::Fp16,
            cuda_graph: Some(true),
            cudnn_benchmark: true,
            data_on_device: Some(false),
            ..TrainConfig::default()
        };
        assert_eq!(
            cuda_run.with_changes(&ResumeChanges::default()).unwrap(),
            cuda_run
        );
        // To the CPU: the device-dependent choices start again from auto.
        let to_cpu = ResumeChanges {
            device: Some("cpu".into()),
            ..Default::default()
        };
        let c = cuda_run.with_changes(&to_cpu).unwrap();
        assert_eq!(
            (
                c.device.as_str(),
                c.precision,
                c.cuda_graph,
                c.cudnn_benchmark,
                c.data_on_device
            ),
            ("cpu", Precision::Auto, None, false, None)
        );
        assert_eq!((c.epochs, c.lr, &c.source), (100, 1e-3, &cuda_run.source));
        // ... unless the resume names them.
        let c = cuda_run
            .with_changes(&ResumeChanges {
                precision: Some(Precision::Bf16),
                threads: Some(2),
                channels_last: Some(false),
                ..to_cpu.clone()
            })
            .unwrap();
        assert_eq!(
            (c.precision, c.threads, c.channels_last),
            (Precision::Bf16, Some(2), Some(false))
        );
        // The same kind of device keeps them; a recorded `auto` (an older
        // run) is decided afresh.
        let cpu_run = TrainConfig {
            device: "cpu".into(),
            precision: Precision::Fp32,
            ..TrainConfig::default()
        };
        assert_eq!(cpu_run.with_changes(&to_cpu).unwrap(), cpu_run);
        let old = TrainConfig {
            device: "auto".into(),
            precision: Precision::Fp32,
            ..TrainConfig::default()
        };
        assert_eq!(
            old.with_changes(&to_cpu).unwrap().precision,
            Precision::Auto
        );
        // Bad values are refused in words.
        for bad in [
            ResumeChanges {
                device: Some("tpu".into()),
                ..Default::default()
            },
            ResumeChanges {
                source: Some("synthetic:abc".into()),
                ..Default::default()
            },
        ] {
            assert!(cpu_run.with_changes(&bad).is_err(), "{bad:?}");
        }
        assert!(ResumeChanges::default().is_empty() && !to_cpu.is_empty());
    }

    #[test]
    fn medmnist_schedule() {
        let c = TrainConfig::default();
        assert_eq!(c.lr_at(0), 1e-3);
        assert_eq!(c.lr_at(49), 1e-3);
        assert!((c.lr_at(50) - 1e-4).abs() < 1e-12);
        assert!((c.lr_at(75) - 1e-5).abs() < 1e-12);
        // epochs 2: milestones [1.0, 1.5]; only 1.0 is ever hit.
        let two = TrainConfig {
            epochs: 2,
            ..c.clone()
        };
        assert!((two.lr_at(1) - 1e-4).abs() < 1e-12);
        let ten = TrainConfig {
            epochs: 10,
            ..c.clone()
        };
        assert_eq!((ten.lr_at(4), ten.lr_at(5)), (1e-3, 1e-3 * 0.1));
        assert!((ten.lr_at(9) - 1e-4).abs() < 1e-12, "7.5 never fires");
        assert!(c.validate(Some(28)).is_ok());
        let bad = TrainConfig {
            batch_size: 0,
            ..c.clone()
        };
        assert!(bad
            .validate(None)
            .unwrap_err()
            .to_string()
            .contains("batch size"));
        let bad = TrainConfig {
            stem: Some(Stem::Imagenet),
            ..c.clone()
        };
        assert!(bad
            .validate(Some(28))
            .unwrap_err()
            .to_string()
            .contains("1x1"));
        let bad = TrainConfig { lr: f64::NAN, ..c };
        assert!(bad.validate(None).is_err());
    }
}
