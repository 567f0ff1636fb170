//! A CAM call replayed as one CUDA graph ([`crate::graphed::Graphed`]) for
//! batches of one shape: at 28 px a GradCAM call for all 14 labels of 128
//! images is about 106 small kernels (`chestcam bench`'s kernel count),
//! and an H100 spends the call waiting for their launches; replayed, the
//! call is one launch. The maps are [`super::compute_stages_with`]'s for
//! the same model, method, stages, labels and input.
//!
//! Methods whose work depends on values read back on the host or made on
//! the host are refused (AblationCAM picks its ablation value there,
//! RandomCAM draws its weights there), and so is ScoreCAM, whose time is
//! its forward per channel and image, not their launches. `aug_smooth`
//! (a fixed set of shifts, flips and brightness factors per image size)
//! and `eigen_smooth` are captured with the rest.
//! The model's weights are read where they live at each replay: updated in
//! place (an optimizer step), the replay sees the new values; a model
//! loaded anew needs a new graph, which the borrow enforces.
use super::{compute_stages_with, CamResult, Method, Smooth};
use crate::graphed::Graphed;
use crate::model::{Model, Stage};
use crate::{Error, Result};
use tch::Tensor;

/// One method's maps for batches of one shape, from a CUDA graph on a CUDA
/// device (emulated elsewhere, where it only costs the copies).
pub struct CamGraph<'m> {
    model: &'m Model,
    graphed: Graphed,
    method: Method,
    stages: Vec<Stage>,
    labels: Vec<usize>,
    chunk: usize,
    smooth: Smooth,
    /// The result's stage and labels, from the last call that ran on the host.
    meta: Option<(Stage, Vec<usize>)>,
}

impl<'m> CamGraph<'m> {
    /// A graph for `method`'s maps of batches shaped as `example`
    /// (`[b, 1, H, W]`, moved to the model's device), from `stages`, for
    /// `labels` (all 14 when empty). Nothing runs yet: the first
    /// [`crate::graphed::WARMUP_CALLS`] calls of [`CamGraph::compute`]
    /// run eagerly, the next captures.
    pub fn new(
        model: &'m Model,
        example: &Tensor,
        method: Method,
        stages: &[Stage],
        labels: &[usize],
        chunk: usize,
        smooth: Smooth,
    ) -> Result<CamGraph<'m>> {
        if let Some(why) = not_capturable(method) {
            return Err(Error::invalid(
                "CUDA graph",
                format!("{} cannot be captured: {why}", method.name()),
            ));
        }
        let x = example.f_to_device(model.device())?;
        Ok(CamGraph {
            model,
            graphed: Graphed::new(&[&x])?,
            method,
            stages: stages.to_vec(),
            labels: labels.to_vec(),
            chunk,
            smooth,
            meta: None,
        })
    }

    /// The maps of `input` (the example's shape; moved to the model's
    /// device), the caller's own tensors.
    pub fn compute(&mut self, input: &Tensor) -> Result<CamResult> {
        let x = input.f_to_device(self.model.device())?;
        let (model, method, stages, labels, chunk, smooth) = (
            self.model,
            self.method,
            &self.stages,
            &self.labels,
            self.chunk,
            self.smooth,
        );
        // The result's stage and labels are host values: noted whenever the
        // call runs on the host (every warm-up call and the capture) and
        // reused by the replays, which run none of its host code.
        let mut meta = None;
        let out = self.graphed.call(&[&x], |ins| {
            let r = compute_stages_with(model, &ins[0], method, stages, labels, chunk, smooth)?;
            meta = Some((r.stage, r.labels.clone()));
            Ok(vec![r.probs, r.raw, r.low, r.maps])
        })?;
        if meta.is_some() {
            self.meta = meta;
        }
        let Some((stage, labels)) = self.meta.clone() else {
            return Err(Error::invalid(
                "CUDA graph",
                "a replay before any eager call",
            ));
        };
        let [probs, raw, low, maps]: [Tensor; 4] = out
            .try_into()
            .map_err(|_| Error::invalid("CUDA graph", "a CAM call returned other outputs"))?;
        Ok(CamResult {
            method,
            stage,
            labels,
            probs,
            raw,
            low,
            maps,
        })
    }

    /// Whether the call has been captured (it replays from now on).
    pub fn captured(&self) -> bool {
        self.graphed.captured()
    }
}

/// Why `method` cannot run as a graph, or `None` when it can.
pub fn not_capturable(method: Method) -> Option<&'static str> {
    match method {
        Method::ScoreCam => Some(
            "its time is one forward per channel and image (512 at layer4), which a graph does not shorten; run it eagerly",
        ),
        Method::AblationCam => Some("it picks its ablation value on the host from the activations"),
        Method::RandomCam => Some("it draws its weights on the host"),
        _ => None,
    }
}
