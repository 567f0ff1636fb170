//! A function of fixed-shape tensors run as one CUDA graph: the first
//! [`WARMUP_CALLS`] calls run it eagerly on a side stream, the next
//! captures it on static copies of its inputs and replays it, every later
//! call copies its inputs in, replays, and copies the outputs out. One
//! launch replaces the function's kernels one by one, which is what bounds
//! a small network on a fast GPU (PyTorch's `torch.cuda.graph`; a whole
//! training step, which also carries optimizer state, has its own type,
//! [`crate::train::graph::GraphStep`]).
//!
//! What the function may do is what a capture allows: no reads of device
//! values on the host, no copies from host memory, the same shapes and the
//! same work on every call. Its outputs are allocated once, in the graph's
//! memory pool, and overwritten by every replay: [`Graphed::call`] returns
//! copies, so a caller may keep them.
//!
//! Off CUDA there are no graphs; the same sequence is emulated (eager
//! calls, then static inputs and outputs that are overwritten in place by
//! each "replay"), so that the copies in and out, the shape checks and the
//! results are tested on any machine.
use crate::shim::CudaGraph;
use crate::{Error, Result};
use tch::{Device, Tensor};

/// Eager calls before the capture (PyTorch's recipe uses 3): they set up
/// cuDNN's, cuBLAS's and the allocator's state on the side stream.
pub const WARMUP_CALLS: usize = 3;

/// A function of tensors of fixed shapes, run through a CUDA graph on a
/// CUDA device (emulated elsewhere).
pub struct Graphed {
    /// `None`: emulated (not on CUDA).
    graph: Option<CudaGraph>,
    /// Static inputs: each call's inputs are copied into them.
    inputs: Vec<Tensor>,
    /// Static outputs, once captured.
    outputs: Option<Vec<Tensor>>,
    warmed: usize,
}

/// A copy of `t` in its own memory, with the same shape and layout.
fn copy_of(t: &Tensor) -> Result<Tensor> {
    let mut c = t.f_empty_like()?;
    c.f_copy_(t)?;
    Ok(c)
}

impl Graphed {
    /// A graph for inputs shaped, typed and placed as `examples` (at least
    /// one; all on one device); nothing is run or captured yet.
    pub fn new(examples: &[&Tensor]) -> Result<Graphed> {
        let Some(first) = examples.first() else {
            return Err(Error::invalid("CUDA graph", "no inputs given"));
        };
        let device = first.device();
        if let Some(t) = examples.iter().find(|t| t.device() != device) {
            return Err(Error::invalid(
                "CUDA graph",
                format!(
                    "inputs on {:?} and {:?}: a graph runs on one device",
                    device,
                    t.device()
                ),
            ));
        }
        let graph = match device {
            Device::Cuda(i) => Some(CudaGraph::new(i)?),
            _ => None,
        };
        Ok(Graphed {
            graph,
            inputs: examples.iter().map(|t| copy_of(t)).collect::<Result<_>>()?,
            outputs: None,
            warmed: 0,
        })
    }

    /// Whether the function has been captured (after [`WARMUP_CALLS`] calls).
    pub fn captured(&self) -> bool {
        self.outputs.is_some()
    }

    /// Whether a real CUDA graph is replayed (false: emulated).
    pub fn on_cuda(&self) -> bool {
        self.graph.is_some()
    }

    /// `f(inputs)`: eagerly while warming up, then from the graph. `f`
    /// must be the same function on every call (the graph replays what
    /// the capture saw); `inputs` must match the examples' shapes, types
    /// and device. The outputs are the caller's own tensors.
    pub fn call(
        &mut self,
        inputs: &[&Tensor],
        mut f: impl FnMut(&[Tensor]) -> Result<Vec<Tensor>>,
    ) -> Result<Vec<Tensor>> {
        self.check(inputs)?;
        if self.warmed < WARMUP_CALLS {
            self.warmed += 1;
            let owned: Vec<Tensor> = inputs.iter().map(|t| t.shallow_clone()).collect();
            return match self.graph.as_mut() {
                Some(g) => g.on_side_stream(|_| f(&owned)),
                None => f(&owned),
            };
        }
        for (s, t) in self.inputs.iter_mut().zip(inputs) {
            s.f_copy_(t)?;
        }
        let Graphed {
            graph,
            inputs: statics,
            outputs,
            ..
        } = self;
        match graph.as_mut() {
            Some(g) => {
                if outputs.is_none() {
                    let captured = g.on_side_stream(|g| g.capture(|| f(statics)))?;
                    *outputs = Some(captured);
                }
                g.replay()?;
            }
            None => {
                // Emulation: the "capture" fixes the output tensors, each
                // "replay" writes a fresh evaluation into them in place.
                let fresh = f(statics)?;
                match outputs.as_mut() {
                    None => *outputs = Some(fresh),
                    Some(outs) => {
                        if outs.len() != fresh.len() {
                            return Err(Error::invalid(
                                "CUDA graph",
                                format!(
                                    "the function returned {} outputs, but {} when it was captured",
                                    fresh.len(),
                                    outs.len()
                                ),
                            ));
                        }
                        for (o, n) in outs.iter_mut().zip(&fresh) {
                            o.f_copy_(n)?;
                        }
                    }
                }
            }
        }
        match outputs.as_ref() {
            Some(outs) => outs.iter().map(copy_of).collect(),
            None => Err(Error::invalid("CUDA graph", "nothing was captured")),
        }
    }

    /// `inputs` against the static inputs: count, shape, type and device.
    fn check(&self, inputs: &[&Tensor]) -> Result<()> {
        if inputs.len() != self.inputs.len() {
            return Err(Error::invalid(
                "CUDA graph",
                format!(
                    "{} inputs, but the graph is for {}",
                    inputs.len(),
                    self.inputs.len()
                ),
            ));
        }
        for (i, (got, want)) in inputs.iter().zip(&self.inputs).enumerate() {
            let (g, w) = (
                (got.size(), got.kind(), got.device()),
                (want.size(), want.kind(), want.device()),
            );
            if g != w {
                return Err(Error::invalid(
                    "CUDA graph",
                    format!(
                        "input {} is {:?} {:?} on {:?}, but the graph is for {:?} {:?} on {:?} (a graph replays fixed shapes: run other shapes eagerly)",
                        i + 1,
                        g.0,
                        g.1,
                        g.2,
                        w.0,
                        w.1,
                        w.2
                    ),
                ));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Kind;

    fn square_plus(ins: &[Tensor]) -> Result<Vec<Tensor>> {
        Ok(vec![
            ins[0].f_square()?.f_add(&ins[1])?,
            ins[1].f_sum(Kind::Float)?,
        ])
    }

    #[test]
    fn emulated_calls_give_each_inputs_own_result_and_outputs_stay_the_callers() {
        let a = Tensor::from_slice(&[1.0f32, 2.0, 3.0]);
        let b = Tensor::from_slice(&[10.0f32, 20.0, 30.0]);
        let mut g = Graphed::new(&[&a, &b]).unwrap();
        assert!(!g.on_cuda());
        let mut kept = Vec::new();
        for step in 0..(WARMUP_CALLS + 3) {
            let k = step as f64;
            let x = a.f_add_scalar(k).unwrap();
            let y = b.f_mul_scalar(k).unwrap();
            let out = g.call(&[&x, &y], square_plus).unwrap();
            assert_eq!(g.captured(), step >= WARMUP_CALLS, "step {step}");
            let want = square_plus(&[x, y]).unwrap();
            assert_eq!(out[0], want[0], "step {step}");
            assert_eq!(out[1], want[1], "step {step}");
            kept.push(out);
        }
        // Results returned before a later call are not overwritten by it.
        for (step, out) in kept.iter().enumerate() {
            let k = step as f64;
            let want =
                square_plus(&[a.f_add_scalar(k).unwrap(), b.f_mul_scalar(k).unwrap()]).unwrap();
            assert_eq!(out[0], want[0], "kept result of step {step}");
        }
        // The callers' inputs are not the graph's.
        assert_eq!(a, Tensor::from_slice(&[1.0f32, 2.0, 3.0]));
    }

    #[test]
    fn other_shapes_types_and_counts_are_refused_in_words() {
        let a = Tensor::zeros([2, 3], (Kind::Float, Device::Cpu));
        let mut g = Graphed::new(&[&a]).unwrap();
        let id = |ins: &[Tensor]| -> Result<Vec<Tensor>> { Ok(vec![ins[0].f_add_scalar(1.0)?]) };
        let e = g
            .call(&[&Tensor::zeros([3, 3], (Kind::Float, Device::Cpu))], id)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("input 1 is [3, 3]") && e.contains("graph is for [2, 3]"),
            "{e}"
        );
        let e = g
            .call(&[&a.to_kind(Kind::Double)], id)
            .unwrap_err()
            .to_string();
        assert!(e.contains("Double") && e.contains("Float"), "{e}");
        let e = g.call(&[&a, &a], id).unwrap_err().to_string();
        assert!(e.contains("2 inputs, but the graph is for 1"), "{e}");
        let Err(e) = Graphed::new(&[]) else {
            panic!("a graph of no inputs was made")
        };
        assert!(e.to_string().contains("no inputs"), "{e}");
        // A refused call counts for nothing: the warm-up still has its 3.
        assert!(!g.captured());
    }
}
