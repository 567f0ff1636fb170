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
/// uses 3): they initialise cuDNN's and the allocator's state. They are
/// real training steps on the first batch, counted by the optimiser.
pub const WARMUP_STEPS: usize = 3;

pub struct GraphStep {
    graph: CudaGraph,
    x: Tensor,
    y: Tensor,
    loss: Tensor,
    /// The learning rate baked into the captured Adam step.
    pub lr: f64,
}

impl GraphStep {
    /// Runs [`WARMUP_STEPS`] eager steps on (`x`, `y`), then captures one
    /// step for batches of `x`'s shape and layout at learning rate `lr`.
    pub fn capture(
        model: &Model,
        opt: &mut Adam,
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
        let mut graph = CudaGraph::new(index)?;
        // Static copies in the same layout (`zeros_like` keeps channels-last).
        let copy = |t: &Tensor| -> Result<Tensor> {
            let mut c = t.f_zeros_like()?;
            c.f_copy_(t)?;
            Ok(c)
        };
        let (sx, sy) = (copy(x)?, copy(y)?);
        let loss = graph.on_side_stream(|g| {
            for _ in 0..WARMUP_STEPS {
                let _ = train_step(model, opt, &sx, &sy, lr, precision)?;
            }
            opt.zero_grad()?;
            // The capture runs nothing, but the host counts a step: undo it.
            let counts = opt.counts();
            let loss = g.capture(|| train_step(model, opt, &sx, &sy, lr, precision));
            opt.restore_counts(counts);
            loss
        })?;
        Ok(GraphStep {
            graph,
            x: sx,
            y: sy,
            loss,
            lr,
        })
    }

    /// One training step on (`x`, `y`), which must have the captured shape:
    /// the batch's mean loss, a device scalar that the next step overwrites.
    pub fn step(&mut self, opt: &mut Adam, x: &Tensor, y: &Tensor) -> Result<Tensor> {
        for (what, got, want) in [("images", x, &self.x), ("labels", y, &self.y)] {
            if got.size() != want.size() {
                return Err(Error::invalid(
                    "CUDA graph",
                    format!(
                        "a batch of {what} of shape {:?}, but the step was captured for {:?} (drop or pad the last partial batch)",
                        got.size(),
                        want.size()
                    ),
                ));
            }
        }
        self.x.f_copy_(x)?;
        self.y.f_copy_(y)?;
        self.graph.replay()?;
        opt.replayed();
        Ok(self.loss.shallow_clone())
    }
}
