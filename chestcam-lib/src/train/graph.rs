//! The whole training step (forward, loss, backward, fused Adam) captured
//! once as a CUDA graph and replayed for every batch of the same shape: one
//! launch instead of several hundred, which is what bounds a small model on
//! a fast GPU (PyTorch's `torch.cuda.graph` recipe for whole-network
//! capture). The batch is copied into static input tensors before each
//! replay; the loss comes back in a static output tensor.
use super::{adam::Adam, train_step, Precision};
use crate::model::Model;
use crate::shim::CudaGraph;
use crate::{Error, Result};
use tch::{Device, Tensor};

/// Eager steps on the side stream before the capture (PyTorch's recipe
/// uses 3): they initialise cuDNN's, cuBLAS's and the allocator's state
/// for that stream. They are ordinary training steps on real batches.
pub const WARMUP_STEPS: usize = 3;

/// Training steps for batches of one shape: the first [`WARMUP_STEPS`]
/// run eagerly on a side stream, the next captures the step and replays it,
/// every later one only replays. Every call is one real training step on
/// its batch, so a run with and without the graph takes the same steps.
pub struct GraphStep {
    graph: CudaGraph,
    x: Tensor,
    y: Tensor,
    /// The captured step's loss (a static output), once captured.
    loss: Option<Tensor>,
    warmed: usize,
    /// The learning rate baked into the captured Adam step.
    pub lr: f64,
    precision: Precision,
}

impl GraphStep {
    /// A graph for batches shaped and laid out as (`x`, `y`) at learning
    /// rate `lr`; nothing is captured yet.
    pub fn new(
        model: &Model,
        opt: &Adam,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        precision: Precision,
    ) -> Result<GraphStep> {
        let Device::Cuda(index) = model.device() else {
            return Err(Error::invalid(
                "CUDA graph",
                format!(
                    "the model is on {:?}: CUDA graphs need a CUDA device",
                    model.device()
                ),
            ));
        };
        if !opt.fused {
            return Err(Error::invalid(
                "CUDA graph",
                "the per-parameter Adam loop reads its step count on the host; use the fused Adam",
            ));
        }
        // Static copies in the same layout (`zeros_like` keeps channels-last).
        let copy = |t: &Tensor| -> Result<Tensor> {
            let mut c = t.f_zeros_like()?;
            c.f_copy_(t)?;
            Ok(c)
        };
        Ok(GraphStep {
            graph: CudaGraph::new(index)?,
            x: copy(x)?,
            y: copy(y)?,
            loss: None,
            warmed: 0,
            lr,
            precision,
        })
    }

    /// Whether the step has been captured (after [`WARMUP_STEPS`] calls).
    pub fn captured(&self) -> bool {
        self.loss.is_some()
    }

    /// One training step on (`x`, `y`), which must have the graph's shape:
    /// the batch's mean loss, a device scalar that the next step may
    /// overwrite (read or copy it first).
    pub fn step(
        &mut self,
        model: &Model,
        opt: &mut Adam,
        x: &Tensor,
        y: &Tensor,
    ) -> Result<Tensor> {
        for (what, got, want) in [("images", x, &self.x), ("labels", y, &self.y)] {
            if got.size() != want.size() {
                return Err(Error::invalid(
                    "CUDA graph",
                    format!(
                        "a batch of {what} of shape {:?}, but the graph is for {:?} (run the last partial batch eagerly)",
                        got.size(),
                        want.size()
                    ),
                ));
            }
        }
        let (lr, precision) = (self.lr, self.precision);
        if self.warmed < WARMUP_STEPS {
            self.warmed += 1;
            return self
                .graph
                .on_side_stream(|_| train_step(model, opt, x, y, lr, precision));
        }
        self.x.f_copy_(x)?;
        self.y.f_copy_(y)?;
        if self.loss.is_none() {
            let (sx, sy) = (&self.x, &self.y);
            let loss = self.graph.on_side_stream(|g| {
                opt.zero_grad()?;
                // The capture runs nothing, but the host counts a step: undo it.
                let counts = opt.counts();
                let loss = g.capture(|| train_step(model, opt, sx, sy, lr, precision));
                opt.restore_counts(counts);
                loss
            })?;
            self.loss = Some(loss);
        }
        self.graph.replay()?;
        opt.replayed();
        match &self.loss {
            Some(l) => Ok(l.shallow_clone()),
            None => Err(Error::invalid("CUDA graph", "no captured loss")),
        }
    }
}
