//! Grad-CAM and its family for a multi-label ResNet-18, all labels and a
//! whole batch at once.
//!
//! The engine (this file) owns what every method shares, as
//! pytorch-grad-cam's `BaseCAM` does: one forward pass keeping the chosen
//! stage's activation (the stages below it run without an autograd graph),
//! gradients of each label's logit with respect to that
//! activation only (not back through the backbone), the ReLU, the min-max
//! scaling per map, the bilinear upsampling to the input size and the final
//! scaling. A method (one small file each) only says how the map at the
//! activation's resolution is made from activations and gradients.
mod ablation_cam;
pub mod aug_smooth;
mod eigen_cam;
mod eigen_grad_cam;
pub mod explain;
mod finer_cam;
mod full_grad;
mod grad_cam;
mod grad_cam_elementwise;
mod grad_cam_plusplus;
pub mod graph;
mod hires_cam;
mod kpca_cam;
mod layer_cam;
pub mod phases;
mod random_cam;
mod score_cam;
mod shapley_cam;
mod xgrad_cam;

pub use eigen_cam::{top_algebraic_eigenpair_by_squaring, top_eigenpair_by_squaring};

use crate::data::registry::NUM_LABELS;
use crate::model::{Model, Stage};
use crate::{Error, Result};
use tch::{Kind, Tensor};

/// What a method sees: the input, the kept activation and, for gradient
/// methods, the gradient of each requested label's logit with respect to it.
pub struct CamContext<'a> {
    pub model: &'a Model,
    pub stage: Stage,
    /// `[b, 1, H, W]`.
    pub input: &'a Tensor,
    /// `[b, c, h, w]`, detached.
    pub activations: Tensor,
    /// `[b, L, c, h, w]` for the `labels`, when the method uses gradients.
    pub grads: Option<Tensor>,
    /// `[b, L, c, h, w]`: the Hessian of each label's score at the
    /// activation times the activation, when the method asks for it.
    pub hvp: Option<Tensor>,
    /// Logits `[b, 14]` of the forward pass.
    pub logits: Tensor,
    /// The labels asked for, in order (L of them).
    pub labels: &'a [usize],
    /// Masked or ablated inputs per forward pass (ScoreCAM, AblationCAM).
    pub chunk: usize,
}

impl CamContext<'_> {
    /// `[b, L, c, h, w]` gradients, or an error for a gradient-free context.
    pub fn grads(&self) -> Result<&Tensor> {
        self.grads
            .as_ref()
            .ok_or_else(|| Error::invalid("CAM", "this method needs gradients"))
    }

    /// The activations broadcast against per-label tensors: `[b, 1, c, h, w]`.
    pub fn acts5(&self) -> Result<Tensor> {
        Ok(self.activations.f_unsqueeze(1)?)
    }

    /// `weights[b, L, c] * activations[b, c, h, w]` -> `[b, L, c, h, w]`
    /// (pytorch-grad-cam's `weighted_activations`).
    pub fn weighted_terms(&self, weights: &Tensor) -> Result<Tensor> {
        Ok(weights
            .f_unsqueeze(-1)?
            .f_unsqueeze(-1)?
            .f_mul(&self.acts5()?)?)
    }
}

/// A CAM method: how the map at the activation's resolution is made.
pub trait CamMethod {
    fn name(&self) -> &'static str;
    /// Whether the engine must compute gradients for it.
    fn uses_gradients(&self) -> bool {
        true
    }
    /// The per-channel terms `[b, L, c, h, w]` whose sum over channels is
    /// the map, for the methods whose map is such a sum (all but EigenCAM
    /// and EigenGradCAM): `eigen_smooth` projects them on their first
    /// principal component instead of summing them.
    fn terms(&self, _ctx: &CamContext) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// A method that reads the whole network rather than one stage
    /// (FullGrad) returns its raw maps at the input's resolution
    /// (`[b, L, H, W]`, before the final scaling) and the logits here; the
    /// engine then skips the stage machinery.
    fn whole_network(
        &self,
        _model: &Model,
        _x: &Tensor,
        _labels: &[usize],
    ) -> Result<Option<(Tensor, Tensor)>> {
        Ok(None)
    }
    /// Whether the engine must also compute each label's Hessian-vector
    /// product `H a` at the activation (ShapleyCAM).
    fn uses_hvp(&self) -> bool {
        false
    }
    /// The score whose gradient a gradient method reads, per requested
    /// label, as coefficients over the 14 logits (`[b, L, 14]`, taken at
    /// the current logits): `None` (the default) is each label's own logit.
    /// FinerCAM's comparison target is its derivative here.
    fn targets(&self, _logits: &Tensor, _labels: &[usize]) -> Result<Option<Tensor>> {
        Ok(None)
    }
    /// The raw map `[b, L, h, w]` (before ReLU and scaling): by default the
    /// channel sum of `terms`.
    fn cam(&self, ctx: &CamContext) -> Result<Tensor> {
        match self.terms(ctx)? {
            Some(t) => Ok(t.f_sum_dim_intlist(2i64, false, Kind::Float)?),
            None => Err(Error::invalid(
                "CAM",
                format!("{} defines neither terms nor a map", self.name()),
            )),
        }
    }
}

/// pytorch-grad-cam's two smoothing options.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Smooth {
    /// Each map is the first principal component of its per-channel terms
    /// instead of their sum (EigenCAM's sign convention).
    pub eigen: bool,
    /// Test-time augmentation (`aug_smooth.rs`).
    pub aug: aug_smooth::AugSmooth,
}

/// pytorch-grad-cam's `eigen_smooth`: `[b, L, c, h, w]` terms projected on
/// their first principal component (with EigenCAM's sign convention) ->
/// `[b, L, h, w]`.
fn eigen_smooth(terms: &Tensor) -> Result<Tensor> {
    let s = terms.size();
    let (b, l, c, h, w) = (s[0], s[1], s[2], s[3], s[4]);
    let m = terms.f_reshape([b * l, c, h * w])?.f_transpose(1, 2)?;
    Ok(eigen_cam::first_component(&m)?.f_view([b, l, h, w])?)
}

/// The table of methods: each row is the variant, its implementation (one
/// file under `src/cam/`), the name it is parsed from on the command line
/// (with aliases), pytorch-grad-cam's class of the same method and its cost
/// for all 14 labels of a batch. `Method`, `Method::ALL`, the parser, its
/// error text, its command-line values (with the cost as help), and the
/// method lists of the parity fixture script and the benchmark script all
/// come from it: a new method is one file and one row.
macro_rules! methods {
    ($($(#[$doc:meta])* $variant:ident => $imp:expr, $cli:literal $(| $alias:literal)*, $pgc:literal, $cost:literal;)*) => {
        /// The methods, as pytorch-grad-cam defines them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(rename_all = "lowercase")]
        pub enum Method {
            $($(#[$doc])* $variant,)*
        }

        impl Method {
            pub const ALL: [Method; [$($cli),*].len()] = [$(Method::$variant),*];

            fn imp(self) -> Box<dyn CamMethod> {
                match self {
                    $(Method::$variant => Box::new($imp),)*
                }
            }

            /// pytorch-grad-cam 1.5.7's class of the same method (the parity
            /// fixture and the benchmark take their lists from this).
            pub fn pytorch_grad_cam_class(self) -> &'static str {
                match self {
                    $(Method::$variant => $pgc,)*
                }
            }

            /// What it costs for all 14 labels of a batch, in passes.
            pub fn cost(self) -> &'static str {
                match self {
                    $(Method::$variant => $cost,)*
                }
            }

        }

        impl $crate::choice::Choice for Method {
            const WHAT: &'static str = "CAM method";
            fn all() -> &'static [Method] {
                &Method::ALL
            }
            fn names(self) -> &'static [&'static str] {
                match self {
                    $(Method::$variant => &[$cli $(, $alias)*],)*
                }
            }
            /// The cost, beside the name in `--help`.
            fn help(self) -> Option<&'static str> {
                Some(self.cost())
            }
        }
    };
}

methods! {
    GradCam => grad_cam::GradCam, "gradcam", "GradCAM", "1 forward, 1 backward (one per label below layer4)";
    GradCamPlusPlus => grad_cam_plusplus::GradCamPlusPlus, "gradcam++" | "gradcamplusplus" | "gradcampp",
        "GradCAMPlusPlus", "1 forward, 1 backward (one per label below layer4)";
    XGradCam => xgrad_cam::XGradCam, "xgradcam", "XGradCAM", "1 forward, 1 backward (one per label below layer4)";
    HiResCam => hires_cam::HiResCam, "hirescam", "HiResCAM", "1 forward, 1 backward (one per label below layer4)";
    LayerCam => layer_cam::LayerCam, "layercam", "LayerCAM", "1 forward, 1 backward (one per label below layer4)";
    EigenCam => eigen_cam::EigenCam, "eigencam", "EigenCAM", "1 forward and one small eigendecomposition per image";
    ScoreCam => score_cam::ScoreCam, "scorecam", "ScoreCAM", "1 forward per channel and image (512 at layer4)";
    AblationCam => ablation_cam::AblationCam, "ablationcam", "AblationCAM", "1 forward per channel and image (512 at layer4)";
    EigenGradCam => eigen_grad_cam::EigenGradCam, "eigengradcam",
        "EigenGradCAM", "1 forward, 1 backward (one per label below layer4), a small eigendecomposition per label";
    GradCamElementWise => grad_cam_elementwise::GradCamElementWise, "gradcamelementwise" | "elementwise",
        "GradCAMElementWise", "1 forward, 1 backward (one per label below layer4)";
    /// Random channel weights: the baseline of the trust checks.
    RandomCam => random_cam::RandomCam { seed: 0 }, "randomcam" | "random", "RandomCAM", "1 forward";
    /// Grad-CAM of a comparison with the labels nearest in score.
    FinerCam => finer_cam::FinerCam { alpha: 1.0 }, "finercam" | "finer", "FinerCAM", "1 forward, 1 backward (one per label below layer4)";
    KpcaCam => kpca_cam::KpcaCam, "kpcacam" | "kpca",
        "KPCA_CAM", "1 forward and one small kernel eigendecomposition per image";
    /// Input gradient x input plus every bias x its gradient (the whole network; the stage is ignored).
    FullGrad => full_grad::FullGrad, "fullgrad", "FullGrad", "1 forward, 1 backward per label through the whole network";
    /// Gradient minus half the Hessian-vector product (Grad-CAM's maps on a ReLU network).
    ShapleyCam => shapley_cam::ShapleyCam, "shapleycam" | "shapley", "ShapleyCAM", "1 forward, 2 backwards per label";
}

impl Method {
    pub fn name(self) -> &'static str {
        self.imp().name()
    }

    /// `GradCAM=GradCAM,GradCAM++=GradCAMPlusPlus,...`: each method's name
    /// and its pytorch-grad-cam class, the form the reference scripts
    /// (`tests/fixtures/make_cam_fixture.py`, `scripts/bench_pytorch.py`)
    /// take their method list in.
    pub fn reference_list(methods: &[Method]) -> String {
        methods
            .iter()
            .map(|m| format!("{}={}", m.name(), m.pytorch_grad_cam_class()))
            .collect::<Vec<_>>()
            .join(",")
    }
}

// One of the table's names or an alias (`gradcamplusplus`, `elementwise`,
// `random`, `finer`, `kpca`, `shapley`); case, `-`, `_` and spaces are
// ignored. The CLI's values carry the cost as help.
crate::choice_parsing!(Method);

/// Whether every label's gradient comes from one small backward
/// ([`grads_in_one_backward`]): at layer4, for more than one label (one
/// label takes the per-label backward, which the tests compare it with).
fn one_backward_fits(stage: Stage, labels: &[usize]) -> bool {
    stage == Stage::Layer4 && labels.len() > 1
}

/// Every label's gradient with respect to layer4's activation `act`
/// (`[b, c, h, w]`) without a backward per label. After layer4 the network
/// is the mean over positions and one linear layer, so the gradient of
/// logit k at the activation, `W[k, c] / (h w)` at every position, is the
/// same for every image and every activation. One backward through the
/// network's own head from a zero probe `[14, c, h, w]`, scoring probe row
/// k by logit k, gives all 14 (`J`). Label l's gradient for every image is
/// then `J[l]`, broadcast over the batch (no copy); a method's target
/// coefficients `coef[i, l, k]` (FinerCAM) give `sum_k coef[i, l, k] J[k]`,
/// one matrix product. The per-label loop computes the same numbers with a
/// backward per label; an earlier version of this path repeated the
/// activation per label (`[b L, c, h, w]`, 235 MB at 64 px) through the
/// head and back. `[b, L, c, h, w]`.
fn grads_in_one_backward(
    model: &Model,
    stage: Stage,
    act: &Tensor,
    labels: &[usize],
    targets: Option<&Tensor>,
) -> Result<Tensor> {
    let s = act.size();
    let (b, l, n) = (s[0], labels.len() as i64, NUM_LABELS as i64);
    let probe = Tensor::f_zeros([n, s[1], s[2], s[3]], (act.kind(), act.device()))?
        .f_set_requires_grad(true)?;
    let logits = model.net.forward_from(stage, &probe); // [14, 14]
    let eye = Tensor::f_eye(n, (logits.kind(), logits.device()))?;
    let score = logits.f_mul(&eye)?.f_sum(Kind::Float)?;
    let j = Tensor::f_run_backward(&[score], &[&probe], false, false)?
        .into_iter()
        .next()
        .ok_or_else(|| Error::invalid("CAM", "no gradient returned"))?; // [14, c, h, w]
    Ok(match targets {
        None => j
            .f_index_select(0, &crate::util::label_indices(labels, act.device())?)?
            .f_unsqueeze(0)?
            .f_expand([b, l, s[1], s[2], s[3]], false)?,
        Some(c) => c
            .f_reshape([b * l, n])?
            .f_to_kind(j.kind())?
            .f_mm(&j.f_reshape([n, s[1] * s[2] * s[3]])?)?
            .f_view([b, l, s[1], s[2], s[3]])?,
    })
}

/// Heatmaps for a batch: one per image and requested label.
pub struct CamResult {
    pub method: Method,
    pub stage: Stage,
    /// The labels of the second axis of `low` and `maps`.
    pub labels: Vec<usize>,
    /// Sigmoid probabilities `[b, 14]`.
    pub probs: Tensor,
    /// `[b, L, h, w]` at the activation's resolution before the ReLU (the
    /// signed map: the sanity checks compare it with and without sign).
    pub raw: Tensor,
    /// `[b, L, h, w]` at the activation's resolution, ReLU'd and scaled to [0, 1].
    pub low: Tensor,
    /// `[b, L, H, W]` upsampled (bilinear) to the input and scaled to [0, 1],
    /// as pytorch-grad-cam returns them.
    pub maps: Tensor,
}

/// Bilinear upsampling of maps `[b, L, h, w]` to `[b, L, H, W]` (half-pixel
/// centres: `upsample_bilinear2d` without aligned corners). On CUDA the
/// maps go through as the channels of one channels-last image
/// ([`upsample_maps_as_channels`]): ATen's NCHW kernel there runs a thread
/// per output pixel that loops over every map, so 1,792 maps (128 images x
/// 14 labels) took 0.8-1 ms at 28, 64 and 224 px alike on an H100 (a GradCAM
/// call's phases, `chestcam bench`, 2026-11-27), while its channels-last
/// kernel (used from 16 channels) runs a thread per output value. On the
/// CPU, where the NCHW kernel runs the maps in parallel, the plain path stays.
pub fn upsample_maps(m: &Tensor, size: [i64; 2]) -> Result<Tensor> {
    if m.device().is_cuda() {
        return upsample_maps_as_channels(m, size);
    }
    let s = m.size();
    let (b, l, h, w) = four_dims(&s)?;
    Ok(m.f_reshape([b * l, 1, h, w])?
        .f_upsample_bilinear2d(size, false, None, None)?
        .f_view([b, l, size[0], size[1]])?)
}

/// [`upsample_maps`] with the `b L` maps as the channels of one
/// channels-last image (the same arithmetic per value; the CUDA path,
/// public so that the CPU tests can check it against the plain one).
pub fn upsample_maps_as_channels(m: &Tensor, size: [i64; 2]) -> Result<Tensor> {
    let s = m.size();
    let (b, l, h, w) = four_dims(&s)?;
    // [h, w, b L] in memory, seen as a [1, b L, h, w] image in NHWC strides.
    let image = m
        .f_reshape([b * l, h, w])?
        .f_permute([1, 2, 0])?
        .f_contiguous()?
        .f_unsqueeze(0)?
        .f_permute([0, 3, 1, 2])?;
    Ok(image
        .f_upsample_bilinear2d(size, false, None, None)?
        .f_contiguous()?
        .f_view([b, l, size[0], size[1]])?)
}

fn four_dims(s: &[i64]) -> Result<(i64, i64, i64, i64)> {
    match *s {
        [b, l, h, w] => Ok((b, l, h, w)),
        _ => Err(Error::invalid(
            "maps",
            format!("shape {s:?}; expected [batch, labels, h, w]"),
        )),
    }
}

/// pytorch-grad-cam's `scale_cam_image`: per map, `(m - min) / (1e-7 + max(m - min))`.
/// Minimum and maximum come from one pass (`aminmax`): rounding is
/// monotone, so `max(m - min)` is exactly `max - min`. At full resolution
/// the maps are the largest tensors of a CAM call (14 labels x 224 x 224
/// per image), so each pass over them counts.
pub fn scale_maps(m: &Tensor) -> Result<Tensor> {
    let s = m.size();
    let flat = m.f_flatten(-2, -1)?;
    let (min, max) = flat.f_aminmax(-1, true)?;
    let mut shifted = flat.f_sub(&min)?;
    let _ = shifted.f_div_(&max.f_sub(&min)?.f_add_scalar(1e-7)?)?;
    Ok(shifted.f_view(s.as_slice())?)
}

/// Computes `method`'s maps for `labels` (all 14 when empty) of a batch
/// `[b, 1, H, W]`, from `stage` (layer4 for the usual Grad-CAM).
pub fn compute(
    model: &Model,
    input: &Tensor,
    method: Method,
    stage: Stage,
    labels: &[usize],
    chunk: usize,
) -> Result<CamResult> {
    compute_stages_with(
        model,
        input,
        method,
        &[stage],
        labels,
        chunk,
        Smooth::default(),
    )
}

/// Maps from several stages at once, as pytorch-grad-cam computes them for
/// several target layers: each stage's map is ReLU'd, scaled and upsampled
/// to the input, and the mean of those is ReLU'd and scaled again. Costs
/// one `compute` per stage. The result's `stage`, `raw` and `low` are the
/// first stage's; one stage gives exactly `compute`'s maps.
pub fn compute_stages(
    model: &Model,
    input: &Tensor,
    method: Method,
    stages: &[Stage],
    labels: &[usize],
    chunk: usize,
) -> Result<CamResult> {
    compute_stages_with(
        model,
        input,
        method,
        stages,
        labels,
        chunk,
        Smooth::default(),
    )
}

/// `compute_stages` with pytorch-grad-cam's smoothing options.
/// `smooth.eigen`: each map is the first principal component of its
/// per-channel terms instead of their sum (EigenCAM and EigenGradCAM,
/// projections already, ignore it, as in pytorch-grad-cam); the component's
/// sign follows EigenCAM's convention. `smooth.aug`: the maps of each
/// augmented input, mapped back and averaged (the result's `raw` and `low`
/// are the unaugmented input's); costs one pass per augmentation.
pub fn compute_stages_with(
    model: &Model,
    input: &Tensor,
    method: Method,
    stages: &[Stage],
    labels: &[usize],
    chunk: usize,
    smooth: Smooth,
) -> Result<CamResult> {
    let augs = smooth
        .aug
        .augmentations(input.size().last().copied().unwrap_or(0));
    if augs.is_empty() {
        return compute_stages_once(model, input, method, stages, labels, chunk, smooth.eigen);
    }
    let x = input.f_to_device(model.device())?;
    let mut sum: Option<Tensor> = None;
    let mut plain = None;
    for a in &augs {
        let r = compute_stages_once(
            model,
            &a.apply(&x)?,
            method,
            stages,
            labels,
            chunk,
            smooth.eigen,
        )?;
        sum = add_to(sum, a.undo(&r.maps)?)?;
        if a.is_identity() {
            plain = Some(r);
        }
    }
    let (Some(mut r), Some(sum)) = (plain, sum) else {
        return Err(Error::invalid("aug smooth", "no unaugmented pass"));
    };
    r.maps = sum.f_div_scalar(augs.len() as f64)?;
    Ok(r)
}

/// `t` added to a running sum (the first term starts it).
fn add_to(sum: Option<Tensor>, t: Tensor) -> Result<Option<Tensor>> {
    Ok(Some(match sum {
        None => t,
        Some(s) => s.f_add(&t)?,
    }))
}

fn compute_stages_once(
    model: &Model,
    input: &Tensor,
    method: Method,
    stages: &[Stage],
    labels: &[usize],
    chunk: usize,
    eigen_smooth: bool,
) -> Result<CamResult> {
    if stages.is_empty() {
        return Err(Error::invalid("stages", "none given"));
    }
    if let Some((i, s)) = stages
        .iter()
        .enumerate()
        .find(|(i, s)| stages[..*i].contains(s))
    {
        return Err(Error::invalid(
            "stages",
            format!("{s} named twice (position {})", i + 1),
        ));
    }
    // pytorch-grad-cam ReLUs each stage's upsampled map and their mean
    // before scaling; both are no-ops here (each map is scaled to [0, 1]
    // before a bilinear upsampling, whose weights are non-negative), and
    // one stage's mean is itself, so the full-size maps are read and
    // written as few times as the final scaling needs.
    let mut first = None;
    let mut sum: Option<Tensor> = None;
    for &stage in stages {
        let (r, up) = compute_upsampled(model, input, method, stage, labels, chunk, eigen_smooth)?;
        sum = add_to(sum, up)?;
        first.get_or_insert(r);
    }
    let (Some(mut r), Some(sum)) = (first, sum) else {
        return Err(Error::invalid("stages", "none given"));
    };
    r.maps = match stages.len() {
        1 => scale_maps(&sum)?,
        n => scale_maps(&sum.f_div_scalar(n as f64)?)?,
    };
    phases::mark("final scaling", model.device());
    Ok(r)
}

/// `compute`, with the upsampled maps before their final ReLU and scaling
/// (the result's `maps` are left empty).
fn compute_upsampled(
    model: &Model,
    input: &Tensor,
    method: Method,
    stage: Stage,
    labels: &[usize],
    chunk: usize,
    smooth: bool,
) -> Result<(CamResult, Tensor)> {
    let all: Vec<usize> = (0..NUM_LABELS).collect();
    let labels = if labels.is_empty() { &all[..] } else { labels };
    if let Some(bad) = labels.iter().find(|l| **l >= NUM_LABELS) {
        return Err(Error::invalid(
            "label index",
            format!("{bad} (there are {NUM_LABELS} labels)"),
        ));
    }
    let dims = input.size();
    if dims.len() != 4 || dims[1] != 1 {
        return Err(Error::invalid(
            "CAM input",
            format!("shape {dims:?}; expected [batch, 1, H, W]"),
        ));
    }
    let imp = method.imp();
    let x = input.f_to_device(model.device())?;
    if let Some((raw, logits)) = imp.whole_network(model, &x, labels)? {
        let low = scale_maps(&raw.f_relu()?)?;
        let r = CamResult {
            method,
            stage,
            labels: labels.to_vec(),
            probs: logits.f_sigmoid()?,
            raw,
            low: low.shallow_clone(),
            maps: Tensor::new(),
        };
        return Ok((r, low));
    }
    // The backbone below the stage never needs a graph: it runs without
    // one, and the graph (for gradient methods) starts at the activation.
    let dev = model.device();
    let act = tch::no_grad(|| model.net.forward_to(&x, stage, false));
    phases::mark("backbone to the stage", dev);
    let (logits, act) = if imp.uses_gradients() {
        let act = act.f_detach()?.f_set_requires_grad(true)?;
        (model.net.forward_from(stage, &act), act)
    } else {
        (tch::no_grad(|| model.net.forward_from(stage, &act)), act)
    };
    phases::mark("rest of the network", dev);
    let want_hvp = imp.uses_hvp();
    let mut hvps = Vec::new();
    let targets = if imp.uses_gradients() {
        imp.targets(&logits, labels)?
    } else {
        None
    };
    let grads = if !imp.uses_gradients() {
        None
    } else if !want_hvp && one_backward_fits(stage, labels) {
        Some(grads_in_one_backward(
            model,
            stage,
            &act,
            labels,
            targets.as_ref(),
        )?)
    } else {
        let mut gs = Vec::with_capacity(labels.len());
        for (i, &l) in labels.iter().enumerate() {
            // Each image's score depends on its own activation only (eval
            // mode), so one backward of the summed logits gives every image's gradient.
            let score = match &targets {
                None => logits.f_select(1, l as i64)?.f_sum(Kind::Float)?,
                Some(c) => logits
                    .f_mul(&c.f_select(1, i as i64)?)?
                    .f_sum(Kind::Float)?,
            };
            let keep = i + 1 < labels.len();
            let g = Tensor::f_run_backward(&[score], &[&act], keep || want_hvp, want_hvp)?
                .into_iter()
                .next()
                .ok_or_else(|| Error::invalid("CAM", "no gradient returned"))?;
            if want_hvp {
                // d(g . a)/da with a held fixed in the product: H a. Where
                // g does not depend on a (a linear head), it is zero.
                let h = if g.requires_grad() {
                    let ga = g.f_mul(&act.f_detach()?)?.f_sum(Kind::Float)?;
                    Tensor::f_run_backward(&[ga], &[&act], keep, false)?
                        .into_iter()
                        .next()
                        .filter(|h| h.defined())
                } else {
                    None
                };
                hvps.push(match h {
                    Some(h) => h,
                    None => g.f_zeros_like()?,
                });
            }
            gs.push(g.f_detach()?);
        }
        Some(Tensor::f_stack(&gs, 1)?)
    };
    phases::mark("gradients", dev);
    let ctx = CamContext {
        model,
        stage,
        input: &x,
        activations: act.f_detach()?,
        grads,
        hvp: if want_hvp {
            Some(Tensor::f_stack(&hvps, 1)?)
        } else {
            None
        },
        logits: logits.f_detach()?,
        labels,
        chunk: chunk.max(1),
    };
    let raw = tch::no_grad(|| -> Result<Tensor> {
        match smooth.then(|| imp.terms(&ctx)).transpose()?.flatten() {
            Some(terms) => eigen_smooth(&terms),
            None => imp.cam(&ctx),
        }
    })?; // [b, L, h, w]
    phases::mark("the method's map", dev);
    let low = scale_maps(&raw.f_relu()?)?;
    let up = upsample_maps(&low, [dims[2], dims[3]])?;
    phases::mark("scaling and upsampling", dev);
    let r = CamResult {
        method,
        stage,
        labels: labels.to_vec(),
        probs: ctx.logits.f_sigmoid()?,
        raw,
        low,
        maps: Tensor::new(),
    };
    Ok((r, up))
}
