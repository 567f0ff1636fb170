//! The whole training step (forward, loss, backward, fused Adam) captured
//! once as a CUDA graph and replayed for every batch of the same shape: one
//! launch instead of several hundred, which is what bounds a small model on
//! a fast GPU (PyTorch's `torch.cuda.graph` recipe for whole-network
//! capture). The batch is copied into static input tensors before each
//! replay; the loss comes back in a static output tensor.
//!
//! `Steps` is how the training loop uses it: full batches through the
//! graph, the last partial batch eagerly, and eager steps for the rest of
//! the run when a graph cannot be made or captured.
use super::{adam::Adam, train_step, Precision};
use crate::model::Model;
use crate::shim::CudaGraph;
use crate::{Error, Result};
use tch::{Device, Tensor};

/// Eager steps on the side stream before the capture (PyTorch's recipe
/// uses 3): they initialise cuDNN's, cuBLAS's and the allocator's state
/// for that stream. They are ordinary training steps on real batches.
pub const WARMUP_STEPS: usize = 3;

/// How a [`GraphStep::step`] failed, and what that left behind.
#[derive(Debug)]
pub enum StepFailure {
    /// The graph could not be captured. A capture runs nothing, so the
    /// model and the optimiser are as they were before the step, and the
    /// same batch can be trained on eagerly instead.
    Capture(Error),
    /// A warm-up step or a replay failed: the update may have run in part.
    Step(Error),
}

impl From<StepFailure> for Error {
    fn from(f: StepFailure) -> Error {
        match f {
            StepFailure::Capture(e) | StepFailure::Step(e) => e,
        }
    }
}

/// Training steps for batches of one shape: the first [`WARMUP_STEPS`]
/// run eagerly on a side stream, the next captures the step and replays it,
/// every later one only replays. Every call is one real training step on
/// its batch, so a run with and without the graph takes the same steps.
pub struct GraphStep {
    /// `None`: emulated off CUDA (tests only): the "capture" and every
    /// "replay" are eager steps on the static inputs.
    graph: Option<CudaGraph>,
    x: Tensor,
    y: Tensor,
    /// The captured step's loss (a static output), once captured.
    loss: Option<Tensor>,
    warmed: usize,
    /// The learning rate baked into the captured Adam step.
    pub lr: f64,
    precision: Precision,
    /// Tests: the capture fails as a real one can (nothing has run).
    #[cfg(test)]
    fail_capture: bool,
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
                    "the model is on {}: CUDA graphs need a CUDA device",
                    super::config::device_string(model.device())
                ),
            ));
        };
        GraphStep::with_graph(Some(CudaGraph::new(index)?), opt, x, y, lr, precision)
    }

    /// The same sequence off CUDA, for tests of what uses it.
    #[cfg(test)]
    fn emulated(
        opt: &Adam,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        precision: Precision,
        fail_capture: bool,
    ) -> Result<GraphStep> {
        let mut g = GraphStep::with_graph(None, opt, x, y, lr, precision)?;
        g.fail_capture = fail_capture;
        Ok(g)
    }

    fn with_graph(
        graph: Option<CudaGraph>,
        opt: &Adam,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        precision: Precision,
    ) -> Result<GraphStep> {
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
            graph,
            x: copy(x)?,
            y: copy(y)?,
            loss: None,
            warmed: 0,
            lr,
            precision,
            #[cfg(test)]
            fail_capture: false,
        })
    }

    /// Whether the step has been captured (after [`WARMUP_STEPS`] calls).
    pub fn captured(&self) -> bool {
        self.loss.is_some()
    }

    /// One training step on (`x`, `y`), which must have the graph's shape:
    /// the batch's mean loss, a device scalar that the next step may
    /// overwrite (read or copy it first). A failed capture says so
    /// ([`StepFailure::Capture`]): the step did not run and may run eagerly.
    pub fn step(
        &mut self,
        model: &Model,
        opt: &mut Adam,
        x: &Tensor,
        y: &Tensor,
    ) -> std::result::Result<Tensor, StepFailure> {
        for (what, got, want) in [("images", x, &self.x), ("labels", y, &self.y)] {
            if got.size() != want.size() {
                return Err(StepFailure::Step(Error::invalid(
                    "CUDA graph",
                    format!(
                        "a batch of {what} of shape {:?}, but the graph is for {:?} (run the last partial batch eagerly)",
                        got.size(),
                        want.size()
                    ),
                )));
            }
        }
        let (lr, precision) = (self.lr, self.precision);
        let step = StepFailure::Step;
        if self.warmed < WARMUP_STEPS {
            self.warmed += 1;
            let mut eager = || train_step(model, opt, x, y, lr, precision);
            return match self.graph.as_mut() {
                Some(g) => g.on_side_stream(|_| eager()),
                None => eager(),
            }
            .map_err(step);
        }
        self.x.f_copy_(x).map_err(|e| step(e.into()))?;
        self.y.f_copy_(y).map_err(|e| step(e.into()))?;
        let (sx, sy) = (&self.x, &self.y);
        let Some(g) = self.graph.as_mut() else {
            // Emulation: the "capture" fixes the loss tensor, each "replay"
            // is an eager step on the static inputs that writes into it.
            #[cfg(test)]
            if self.fail_capture && self.loss.is_none() {
                return Err(StepFailure::Capture(Error::invalid(
                    "CUDA graph capture",
                    "operation not permitted when stream is capturing (emulated)",
                )));
            }
            let fresh = train_step(model, opt, sx, sy, lr, precision).map_err(step)?;
            return match &mut self.loss {
                Some(l) => {
                    l.f_copy_(&fresh).map_err(|e| step(e.into()))?;
                    Ok(l.shallow_clone())
                }
                None => Ok(self.loss.insert(fresh).shallow_clone()),
            };
        };
        if self.loss.is_none() {
            let loss = g
                .on_side_stream(|g| {
                    opt.zero_grad()?;
                    // The capture runs nothing, but the host counts a step: undo it.
                    let counts = opt.counts();
                    let loss = g.capture(|| train_step(model, opt, sx, sy, lr, precision));
                    opt.restore_counts(counts);
                    loss
                })
                .map_err(StepFailure::Capture)?;
            self.loss = Some(loss);
        }
        g.replay().map_err(step)?;
        opt.replayed();
        match &self.loss {
            Some(l) => Ok(l.shallow_clone()),
            None => Err(step(Error::invalid("CUDA graph", "no captured loss"))),
        }
    }
}

/// A training step that failed, and whether it was a graphed one.
#[derive(Debug)]
pub(crate) struct Failed {
    graphed: bool,
    error: Error,
}

impl Failed {
    /// The error a user sees: the step that failed, where (`at`: "epoch 2,
    /// batch 7"), why, what the run folder keeps (`kept`), and for a graphed
    /// step the way around it.
    pub(crate) fn stopped(self, at: &str, kept: &str) -> Error {
        let Failed { graphed, error } = self;
        Error::Training(match graphed {
            true => format!(
                "the CUDA graph step failed in {at}: {error}; {kept}. --cuda-graph false \
                 (in a notebook: cfg.cuda_graph = Some(false)) trains without the graph."
            ),
            false => format!("the training step failed in {at}: {error}; {kept}."),
        })
    }
}

/// Makes the graph for a batch shape (the model, the optimiser, the batch's
/// images and labels, the learning rate, the precision).
type MakeGraph = fn(&Model, &Adam, &Tensor, &Tensor, f64, Precision) -> Result<GraphStep>;

/// The training loop's steps. Without graphs every step is [`train_step`].
/// With them (`--cuda-graph`), each full batch goes through a
/// [`GraphStep`] (a new one when the learning rate changes) and the last
/// partial batch runs eagerly. A graph that cannot be made or captured does
/// not stop the run: that batch and every later one train eagerly (the
/// same steps, only slower), and [`Steps::gave_up`] says why. A failed
/// warm-up step or replay stops it: the update may have run in part.
pub(crate) struct Steps {
    graphs: bool,
    graph: Option<GraphStep>,
    gave_up: Option<String>,
    make: MakeGraph,
}

impl Steps {
    pub(crate) fn new(graphs: bool) -> Steps {
        Steps {
            graphs,
            graph: None,
            gave_up: None,
            make: GraphStep::new,
        }
    }

    /// Why the graph was given up (the run went on eagerly), if it was.
    pub(crate) fn gave_up(&self) -> Option<&str> {
        self.gave_up.as_deref()
    }

    /// One training step on (`x`, `y`); `full`: the batch has the run's
    /// batch size. A failed step says whether it was a graphed one
    /// ([`Failed::stopped`] words it).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn step(
        &mut self,
        model: &Model,
        opt: &mut Adam,
        x: &Tensor,
        y: &Tensor,
        lr: f64,
        precision: Precision,
        full: bool,
    ) -> std::result::Result<Tensor, Failed> {
        if full && self.graphs && self.gave_up.is_none() {
            if self.graph.as_ref().is_some_and(|g| g.lr != lr) {
                // Drop the old graph (and its memory pool) first.
                self.graph = None;
            }
            let made = match self.graph.take() {
                Some(g) => Ok(g),
                None => (self.make)(model, opt, x, y, lr, precision),
            };
            let done = match made {
                Ok(g) => self.graph.insert(g).step(model, opt, x, y),
                Err(e) => Err(StepFailure::Capture(e)),
            };
            match done {
                Ok(loss) => return Ok(loss),
                Err(StepFailure::Step(error)) => {
                    return Err(Failed {
                        graphed: true,
                        error,
                    })
                }
                Err(StepFailure::Capture(e)) => {
                    self.graph = None;
                    self.gave_up = Some(e.to_string());
                }
            }
        }
        train_step(model, opt, x, y, lr, precision).map_err(|error| Failed {
            graphed: false,
            error,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Stem;
    use tch::Kind;

    /// `batches` (images, labels) pairs of `n` images each, of 28 px.
    fn batches(count: usize, n: i64) -> Vec<(Tensor, Tensor)> {
        tch::manual_seed(7);
        (0..count)
            .map(|_| {
                (
                    Tensor::randn([n, 1, 28, 28], (Kind::Float, Device::Cpu)),
                    Tensor::rand([n, 14], (Kind::Float, Device::Cpu))
                        .f_gt(0.7)
                        .unwrap()
                        .to_kind(Kind::Float),
                )
            })
            .collect()
    }

    /// A model with `init`'s weights and a fresh fused Adam (tests run in
    /// parallel and share torch's generator: the weights are copied).
    fn fresh(init: &Model) -> (Model, Adam) {
        let mut model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
        model.vs.copy(&init.vs).unwrap();
        let opt = Adam::new(&model.vs);
        (model, opt)
    }

    /// Trains on `data` (the last batch may be partial) with `steps`, the
    /// learning rate dropping before `lr_drop`; the losses and the weights.
    fn run(
        init: &Model,
        steps: &mut Steps,
        data: &[(Tensor, Tensor)],
        lr_drop: usize,
    ) -> (Vec<f64>, Model) {
        let (model, mut opt) = fresh(init);
        let full = data[0].0.size()[0];
        let losses = data
            .iter()
            .enumerate()
            .map(|(i, (x, y))| {
                let lr = if i < lr_drop { 1e-3 } else { 1e-4 };
                let is_full = x.size()[0] == full;
                let loss = steps
                    .step(&model, &mut opt, x, y, lr, Precision::Fp32, is_full)
                    .unwrap();
                loss.double_value(&[])
            })
            .collect();
        (losses, model)
    }

    fn same_weights(a: &Model, b: &Model, what: &str) {
        let theirs = b.vs.variables();
        for (name, p) in a.vs.variables() {
            let d = (&p - &theirs[&name]).abs().max().double_value(&[]);
            assert!(d == 0.0, "{what}: {name} differs by {d}");
        }
    }

    fn emulated(fail: bool) -> MakeGraph {
        if fail {
            |_, opt, x, y, lr, p| GraphStep::emulated(opt, x, y, lr, p, true)
        } else {
            |_, opt, x, y, lr, p| GraphStep::emulated(opt, x, y, lr, p, false)
        }
    }

    #[test]
    fn graphed_steps_equal_eager_ones_and_a_failed_capture_goes_on_eagerly() {
        // 10 full batches and a partial one; the learning rate drops at the
        // 6th, which makes a new graph: each graph warms up on 3 batches,
        // captures on the 4th and replays on the 5th.
        let init = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
        let mut data = batches(10, 4);
        data.extend(batches(1, 3));
        let (eager_losses, eager) = run(&init, &mut Steps::new(false), &data, 5);
        // Graphs made by `make`: the same losses and weights as eager steps.
        let same_as_eager = |make: MakeGraph, what: &str| -> Steps {
            let mut steps = Steps {
                make,
                ..Steps::new(true)
            };
            let (losses, model) = run(&init, &mut steps, &data, 5);
            assert_eq!(losses, eager_losses, "{what}: losses");
            same_weights(&model, &eager, what);
            steps
        };

        let graphed = same_as_eager(emulated(false), "graphed");
        assert!(graphed.gave_up().is_none());
        assert!(graphed
            .graph
            .as_ref()
            .is_some_and(|g| g.captured() && g.lr == 1e-4));

        // The capture (the 4th full batch) fails: that batch and every
        // later one train eagerly, to the same weights, and no new graph is
        // tried when the learning rate changes.
        let failing = same_as_eager(emulated(true), "after a failed capture");
        let why = failing.gave_up().expect("the graph was given up");
        assert!(why.contains("stream is capturing"), "{why}");
        assert!(failing.graph.is_none(), "the failed graph was dropped");

        // A graph that cannot even be made: eager from the first batch.
        let unmade = same_as_eager(
            |_, _, _, _, _, _| Err(Error::invalid("CUDA graph", "out of memory (test)")),
            "without a graph",
        );
        assert!(unmade
            .gave_up()
            .is_some_and(|w| w.contains("out of memory")));
    }

    #[test]
    fn a_failed_graphed_step_stops_with_the_way_around_it() {
        // A graph for another batch shape: the step is refused, not
        // trained eagerly (a replay of the wrong shape is a bug).
        let data = batches(2, 4);
        let (model, mut opt) = fresh(&Model::new(Stem::Small, 28, Device::Cpu).unwrap());
        let mut steps = Steps {
            make: |_, opt, _, _, lr, p| {
                let (x, y) = (
                    Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu)),
                    Tensor::zeros([2, 14], (Kind::Float, Device::Cpu)),
                );
                GraphStep::emulated(opt, &x, &y, lr, p, false)
            },
            ..Steps::new(true)
        };
        let (x, y) = &data[0];
        let e = steps
            .step(&model, &mut opt, x, y, 1e-3, Precision::Fp32, true)
            .unwrap_err()
            .stopped("epoch 1, batch 1", "nothing was kept")
            .to_string();
        assert!(
            e.contains("the CUDA graph step failed in epoch 1, batch 1")
                && e.contains("graph is for [2, 1, 28, 28]")
                && e.contains("--cuda-graph false"),
            "{e}"
        );
        assert_eq!(e.matches("training stopped").count(), 1, "{e}");
        assert!(steps.gave_up().is_none());
    }
}
