//! ResNet-18 (BasicBlock, [2, 2, 2, 2]) for grey X-rays and 14 labels.
//!
//! Parameter names follow torchvision (`conv1`, `bn1`, `layer1.0.conv1`,
//! `layer2.0.downsample.0`, ...) so ImageNet weights load by name; the
//! 14-way head is `head`, apart from torchvision's 1000-way `fc`.
use crate::{Error, Result};
use tch::nn::{self, ModuleT};
use tch::Tensor;

/// The first layers: MedMNIST's 3x3 stride-1 conv without max-pool for small
/// images, or torchvision's 7x7 stride-2 conv plus max-pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stem {
    Small,
    Imagenet,
}

impl Stem {
    /// `small` below 96 px (28 and 64), `imagenet` from 96 px (128, 224).
    pub fn default_for(size: usize) -> Stem {
        if size < 96 {
            Stem::Small
        } else {
            Stem::Imagenet
        }
    }
}

crate::choices!(Stem, "stem" { Small => "small", Imagenet => "imagenet" });

impl std::fmt::Display for Stem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Stem::Small => "small",
            Stem::Imagenet => "imagenet",
        })
    }
}

/// A residual stage whose output can be kept for Grad-CAM.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Layer1,
    Layer2,
    Layer3,
    Layer4,
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "layer{}", self.index() + 1)
    }
}

crate::choices!(Stage, "stage" {
    Layer1 => "layer1",
    Layer2 => "layer2",
    Layer3 => "layer3",
    Layer4 => "layer4",
});

impl Stage {
    pub const ALL: [Stage; 4] = [Stage::Layer1, Stage::Layer2, Stage::Layer3, Stage::Layer4];
    fn index(self) -> usize {
        self as usize
    }
}

/// Spatial side of each stage's output (layer1..layer4) for a square input.
pub fn feature_sizes(stem: Stem, input: usize) -> [usize; 4] {
    let half = |s: usize| s.div_ceil(2);
    let s1 = match stem {
        Stem::Small => input,
        Stem::Imagenet => half(half(input)),
    };
    [s1, half(s1), half(half(s1)), half(half(half(s1)))]
}

/// Refuses a stem and size that leave layer4 at 1x1: every Grad-CAM map
/// would be a constant.
pub fn check_stem(stem: Stem, size: usize) -> Result<()> {
    if size < 8 {
        return Err(Error::invalid(
            "input size",
            format!("{size} px (at least 8)"),
        ));
    }
    let f = feature_sizes(stem, size);
    if f[3] <= 1 {
        return Err(Error::invalid(
            "stem",
            format!(
                "{stem} at {size} px leaves layer4 at {0}x{0}: every heatmap would be a constant; use --stem small (layer4 {1}x{1})",
                f[3],
                feature_sizes(Stem::Small, size)[3]
            ),
        ));
    }
    Ok(())
}

fn conv(p: nn::Path, c_in: i64, c_out: i64, k: i64, stride: i64, padding: i64) -> nn::Conv2D {
    let cfg = nn::ConvConfig {
        stride,
        padding,
        bias: false,
        ..Default::default()
    };
    nn::conv2d(p, c_in, c_out, k, cfg)
}

#[derive(Debug)]
struct BasicBlock {
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    conv2: nn::Conv2D,
    bn2: nn::BatchNorm,
    downsample: Option<(nn::Conv2D, nn::BatchNorm)>,
}

impl BasicBlock {
    fn new(p: nn::Path, c_in: i64, c_out: i64, stride: i64) -> Self {
        let downsample = (stride != 1 || c_in != c_out).then(|| {
            let d = &p / "downsample";
            (
                conv(&d / 0, c_in, c_out, 1, stride, 0),
                nn::batch_norm2d(&d / 1, c_out, Default::default()),
            )
        });
        BasicBlock {
            conv1: conv(&p / "conv1", c_in, c_out, 3, stride, 1),
            bn1: nn::batch_norm2d(&p / "bn1", c_out, Default::default()),
            conv2: conv(&p / "conv2", c_out, c_out, 3, 1, 1),
            bn2: nn::batch_norm2d(&p / "bn2", c_out, Default::default()),
            downsample,
        }
    }

    /// In place where torchvision's block is (`ReLU(inplace=True)`,
    /// `out += identity`): only on batch norms' fresh outputs, which their
    /// backward does not read, so autograd is unchanged and a pass writes
    /// three fewer full-size tensors per block.
    fn forward(&self, xs: &Tensor, train: bool) -> Tensor {
        let mut ys = xs.apply(&self.conv1).apply_t(&self.bn1, train);
        let _ = ys.relu_();
        let mut ys = ys.apply(&self.conv2).apply_t(&self.bn2, train);
        match &self.downsample {
            Some((c, b)) => ys += xs.apply(c).apply_t(b, train),
            None => ys += xs,
        };
        let _ = ys.relu_();
        ys
    }

    /// Eval-mode `forward`, keeping each batch norm's output (bn1, bn2,
    /// then the shortcut's) with its effective bias in `kept`.
    fn forward_keeping(&self, xs: &Tensor, kept: &mut Vec<(Tensor, Tensor)>) -> Tensor {
        let a = xs.apply(&self.conv1).apply_t(&self.bn1, false);
        kept.push((a.shallow_clone(), bn_bias(&self.bn1)));
        let b = a.relu().apply(&self.conv2).apply_t(&self.bn2, false);
        kept.push((b.shallow_clone(), bn_bias(&self.bn2)));
        let short = match &self.downsample {
            Some((c, bn)) => {
                let s = xs.apply(c).apply_t(bn, false);
                kept.push((s.shallow_clone(), bn_bias(bn)));
                s
            }
            None => xs.shallow_clone(),
        };
        (b + short).relu()
    }
}

/// A batch norm's bias in eval mode, `beta - mean * gamma / sqrt(var + eps)`
/// (what it adds whatever the input; FullGrad's bias term), detached.
fn bn_bias(bn: &nn::BatchNorm) -> Tensor {
    // tch's default BatchNormConfig, which every batch norm here uses.
    const EPS: f64 = 1e-5;
    tch::no_grad(|| {
        let scale = match &bn.ws {
            Some(w) => w / (&bn.running_var + EPS).sqrt(),
            None => (&bn.running_var + EPS).sqrt().reciprocal(),
        };
        let shift = -(&bn.running_mean * scale);
        match &bn.bs {
            Some(b) => shift + b,
            None => shift,
        }
    })
}

/// ResNet-18 with one input channel and `num_labels` logits.
#[derive(Debug)]
pub struct ResNet18 {
    pub stem: Stem,
    conv1: nn::Conv2D,
    bn1: nn::BatchNorm,
    layers: [Vec<BasicBlock>; 4],
    head: nn::Linear,
}

impl ResNet18 {
    /// Builds the network under `p` (usually the VarStore's root).
    pub fn new(p: &nn::Path, stem: Stem, num_labels: i64) -> ResNet18 {
        let conv1 = match stem {
            Stem::Small => conv(p / "conv1", 1, 64, 3, 1, 1),
            Stem::Imagenet => conv(p / "conv1", 1, 64, 7, 2, 3),
        };
        let widths = [64, 128, 256, 512];
        let layers = std::array::from_fn(|i| {
            let lp = p / format!("layer{}", i + 1);
            let c_in = if i == 0 { 64 } else { widths[i - 1] };
            let stride = if i == 0 { 1 } else { 2 };
            vec![
                BasicBlock::new(&lp / 0, c_in, widths[i], stride),
                BasicBlock::new(&lp / 1, widths[i], widths[i], 1),
            ]
        });
        ResNet18 {
            stem,
            conv1,
            bn1: nn::batch_norm2d(p / "bn1", 64, Default::default()),
            layers,
            head: nn::linear(p / "head", 512, num_labels, Default::default()),
        }
    }

    /// Logits `[b, labels]` and the output of `stage` (`[b, c, h, w]`, in
    /// the autograd graph: Grad-CAM takes gradients with respect to it).
    pub fn forward_stage(&self, xs: &Tensor, stage: Stage, train: bool) -> (Tensor, Tensor) {
        let kept = self.forward_to(xs, stage, train);
        (self.forward_from_t(stage, &kept, train), kept)
    }

    /// The output of `stage`: the stem and the stages up to it.
    pub fn forward_to(&self, xs: &Tensor, stage: Stage, train: bool) -> Tensor {
        let mut x = xs.apply(&self.conv1).apply_t(&self.bn1, train);
        let _ = x.relu_();
        if self.stem == Stem::Imagenet {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for layer in &self.layers[..=stage.index()] {
            for b in layer {
                x = b.forward(&x, train);
            }
        }
        x
    }

    /// Logits from a stage's output: the later stages, pooling and head
    /// (eval mode). Ablation-CAM runs modified activations through it.
    pub fn forward_from(&self, stage: Stage, act: &Tensor) -> Tensor {
        self.forward_from_t(stage, act, false)
    }

    fn forward_from_t(&self, stage: Stage, act: &Tensor, train: bool) -> Tensor {
        let mut x = act.shallow_clone();
        for layer in &self.layers[stage.index() + 1..] {
            for b in layer {
                x = b.forward(&x, train);
            }
        }
        x.adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.head)
    }

    /// Eval-mode logits with every batch norm's output (in the autograd
    /// graph) and its effective bias, in module order (FullGrad reads the
    /// gradient at each).
    pub fn forward_keeping_batch_norms(&self, xs: &Tensor) -> (Tensor, Vec<(Tensor, Tensor)>) {
        let mut kept = Vec::new();
        let a = xs.apply(&self.conv1).apply_t(&self.bn1, false);
        kept.push((a.shallow_clone(), bn_bias(&self.bn1)));
        let mut x = a.relu();
        if self.stem == Stem::Imagenet {
            x = x.max_pool2d([3, 3], [2, 2], [1, 1], [1, 1], false);
        }
        for layer in &self.layers {
            for b in layer {
                x = b.forward_keeping(&x, &mut kept);
            }
        }
        let logits = x
            .adaptive_avg_pool2d([1, 1])
            .flatten(1, -1)
            .apply(&self.head);
        (logits, kept)
    }

    /// Parameters per stage: stem, layer1..layer4, head.
    pub fn parameter_counts(vs: &nn::VarStore) -> Vec<(String, i64)> {
        let mut groups: Vec<(String, i64)> =
            ["stem", "layer1", "layer2", "layer3", "layer4", "head"]
                .iter()
                .map(|g| (g.to_string(), 0))
                .collect();
        for (name, t) in vs.variables() {
            if name.ends_with("running_mean")
                || name.ends_with("running_var")
                || name.ends_with("num_batches_tracked")
            {
                continue;
            }
            let g = if name.starts_with("layer") {
                name[..6].to_string()
            } else if name.starts_with("head") {
                "head".to_string()
            } else {
                "stem".to_string()
            };
            if let Some(e) = groups.iter_mut().find(|(n, _)| *n == g) {
                e.1 += t.numel() as i64;
            }
        }
        groups
    }
}

impl ModuleT for ResNet18 {
    fn forward_t(&self, xs: &Tensor, train: bool) -> Tensor {
        self.forward_stage(xs, Stage::Layer4, train).0
    }
}
