//! Adam as `torch.optim.Adam` computes it (no weight decay, no amsgrad),
//! with its state in plain tensors so checkpoints can save and restore it
//! exactly (tch's optimiser state cannot be saved).
//!
//! Two ways to update, same state: `fused` (the default) calls ATen's
//! `_fused_adam_` through a small C++ shim (csrc/shim.cpp), one kernel over
//! every parameter as `torch.optim.Adam(fused=True)`; otherwise a loop of
//! tensor ops per parameter (as `foreach=False`). They agree to float
//! rounding (tested).
use crate::Result;
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Tensor};

/// PyTorch's `torch.amp.GradScaler` with its defaults (initial scale
/// 2^16, growth x2 after 2000 steps without inf/NaN, backoff x0.5), for
/// fp16 training: the loss is multiplied by `scale` before backward; the
/// fused Adam divides the gradients by it and skips the update when any
/// gradient overflowed; then the scale is updated. All of it on the device,
/// so no step waits for the host.
pub struct GradScaler {
    /// The current loss scale, a one-element float tensor.
    pub scale: Tensor,
    growth_tracker: Tensor,
    found_inf: Tensor,
    one: Tensor,
    pub growth_factor: f64,
    pub backoff_factor: f64,
    pub growth_interval: i64,
}

impl GradScaler {
    fn new(device: tch::Device) -> Result<GradScaler> {
        let f = (tch::Kind::Float, device);
        Ok(GradScaler {
            scale: Tensor::f_full([1], 65536.0, f)?,
            growth_tracker: Tensor::f_zeros([1], (tch::Kind::Int, device))?,
            found_inf: Tensor::f_zeros([1], f)?,
            one: Tensor::f_ones([1], f)?,
            growth_factor: 2.0,
            backoff_factor: 0.5,
            growth_interval: 2000,
        })
    }
}

pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
    pub step: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
    /// One fused kernel for all parameters (see the module's note).
    pub fused: bool,
    /// The fused kernel's step count, a float scalar on the parameters'
    /// device shared by every parameter (one `add_` per step instead of a
    /// new tensor per parameter), with the count it holds.
    step_tensor: Option<(Tensor, i64)>,
    /// fp16 training's gradient scaler (see [`Adam::enable_grad_scaler`]).
    scaler: Option<GradScaler>,
}

impl Adam {
    /// Adam over the trainable variables of `vs`.
    pub fn new(vs: &nn::VarStore) -> Adam {
        let mut params: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .filter(|(_, t)| t.requires_grad())
            .collect();
        params.sort_by(|a, b| a.0.cmp(&b.0));
        let zeros =
            |p: &[(String, Tensor)]| p.iter().map(|(n, t)| (n.clone(), t.zeros_like())).collect();
        Adam {
            m: zeros(&params),
            v: zeros(&params),
            params,
            step: 0,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            fused: true,
            step_tensor: None,
            scaler: None,
        }
    }

    /// Scales the loss for fp16 training from now on (a [`GradScaler`] on
    /// the parameters' device); the fused update is then skipped for any
    /// step whose gradients overflowed.
    pub fn enable_grad_scaler(&mut self) -> Result<()> {
        let device = self
            .params
            .first()
            .map_or(tch::Device::Cpu, |(_, p)| p.device());
        self.scaler = Some(GradScaler::new(device)?);
        Ok(())
    }

    /// The gradient scaler, when fp16 training enabled one.
    pub fn grad_scaler(&self) -> Option<&GradScaler> {
        self.scaler.as_ref()
    }

    /// The host's step count from the device's (a sync): with a gradient
    /// scaler, skipped steps are uncounted on the device only. Call before
    /// saving a checkpoint.
    pub fn sync_step(&mut self) -> Result<()> {
        if self.scaler.is_none() {
            return Ok(());
        }
        if let Some((t, n)) = &mut self.step_tensor {
            let v = t.f_double_value(&[])?.round() as i64;
            *n = v;
            self.step = v;
        }
        Ok(())
    }

    /// Drops every gradient (PyTorch's default `zero_grad(set_to_none=True)`):
    /// the next backward writes them afresh, one kernel per parameter fewer.
    pub fn zero_grad(&mut self) -> Result<()> {
        crate::shim::grads_to_none(self.params.iter_mut().map(|(_, p)| p))
    }

    /// The host step count and the device's agree again after a captured
    /// step was replayed (see `train::GraphStep`): the replay incremented the
    /// device's count, this increments the host's.
    pub(crate) fn replayed(&mut self) {
        self.step += 1;
        if let Some((_, n)) = &mut self.step_tensor {
            *n += 1;
        }
    }

    /// The step count and what the device's step tensor holds, to restore
    /// after a capture (which runs nothing but counts on the host).
    pub(crate) fn counts(&self) -> (i64, Option<i64>) {
        (self.step, self.step_tensor.as_ref().map(|(_, n)| *n))
    }

    pub(crate) fn restore_counts(&mut self, (step, device): (i64, Option<i64>)) {
        self.step = step;
        if let (Some((_, n)), Some(d)) = (&mut self.step_tensor, device) {
            *n = d;
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        self.step += 1;
        if self.fused {
            return self.fused_step(lr);
        }
        if self.scaler.is_some() {
            return Err(crate::Error::invalid(
                "Adam",
                "the gradient scaler (fp16) needs the fused Adam",
            ));
        }
        let bc1 = 1.0 - self.beta1.powi(self.step as i32);
        let bc2 = 1.0 - self.beta2.powi(self.step as i32);
        tch::no_grad(|| -> Result<()> {
            for (name, p) in self.params.iter_mut() {
                let g = p.grad();
                if !g.defined() {
                    continue;
                }
                let (Some(m), Some(v)) = (self.m.get_mut(name), self.v.get_mut(name)) else {
                    continue;
                };
                // As torch's Adam: exp_avg.lerp_(grad, 1 - beta1), fewer temporaries.
                let _ = m.f_lerp_(&g, 1.0 - self.beta1)?;
                let _ = v.f_lerp_(&g.f_square()?, 1.0 - self.beta2)?;
                let mut denom = v.f_sqrt()?;
                let _ = denom.f_div_scalar_(bc2.sqrt())?.f_add_scalar_(self.eps)?;
                let mut update = m.f_div(&denom)?;
                let _ = update.f_mul_scalar_(lr / bc1)?;
                let _ = p.f_sub_(&update)?;
            }
            Ok(())
        })
    }

    /// `_fused_adam_` over every parameter with a gradient.
    fn fused_step(&mut self, lr: f64) -> Result<()> {
        let (mut ps, mut gs, mut ms, mut vs, mut ss) = (vec![], vec![], vec![], vec![], vec![]);
        // `params` is sorted by name, as the moments' maps are: zipped, they
        // pair each parameter with its own moments.
        for ((_, p), (m, v)) in self
            .params
            .iter_mut()
            .zip(self.m.values_mut().zip(self.v.values_mut()))
        {
            let g = p.grad();
            if !g.defined() {
                continue;
            }
            gs.push(g);
            ps.push(p);
            ms.push(m);
            vs.push(v);
        }
        let Some(device) = ps.first().map(|p| p.device()) else {
            return Ok(());
        };
        // The step count as one float scalar on the device, incremented in
        // place (made afresh when the host's count moved without it).
        let step = match &mut self.step_tensor {
            Some((t, n)) if *n == self.step - 1 && t.device() == device => {
                let _ = tch::no_grad(|| t.f_add_scalar_(1.0))?;
                *n += 1;
                t.shallow_clone()
            }
            slot => {
                let t = Tensor::f_full([], self.step as f64, (tch::Kind::Float, device))?;
                *slot = Some((t.shallow_clone(), self.step));
                t
            }
        };
        ss.extend(std::iter::repeat_with(|| step.shallow_clone()).take(ps.len()));
        // With a scaler, as GradScaler.step with a fused optimiser: the
        // inf/NaN check alone (inverse scale 1), the kernel unscales and
        // skips on found_inf, the step count is taken back where it
        // skipped, then the scale moves.
        if let Some(sc) = &self.scaler {
            let _ = sc.found_inf.shallow_clone().f_zero_()?;
            crate::shim::amp_check_and_unscale(&mut gs, &sc.found_inf, &sc.one)?;
        }
        crate::shim::fused_adam(
            &mut ps,
            &mut gs,
            &mut ms,
            &mut vs,
            &mut ss,
            lr,
            (self.beta1, self.beta2),
            self.eps,
            self.scaler.as_ref().map(|sc| (&sc.scale, &sc.found_inf)),
        )?;
        let Some(sc) = &mut self.scaler else {
            return Ok(());
        };
        tch::no_grad(|| -> Result<()> {
            let _ = step.shallow_clone().f_sub_(&sc.found_inf.f_view([])?)?;
            let _ = sc.scale.f_internal_amp_update_scale_(
                &sc.growth_tracker,
                &sc.found_inf,
                sc.growth_factor,
                sc.backoff_factor,
                sc.growth_interval,
            )?;
            Ok(())
        })
    }

    /// The moments as named tensors (`optim.m.NAME`, `optim.v.NAME`), for a
    /// checkpoint; the step count goes in its metadata.
    pub fn state_tensors(&self) -> Vec<(String, Tensor)> {
        let mut named = Vec::new();
        for (prefix, map) in [("optim.m.", &self.m), ("optim.v.", &self.v)] {
            for (n, t) in map {
                named.push((format!("{prefix}{n}"), t.shallow_clone()));
            }
        }
        if let Some(sc) = &self.scaler {
            named.push(("optim.scaler.scale".into(), sc.scale.shallow_clone()));
            named.push((
                "optim.scaler.growth_tracker".into(),
                sc.growth_tracker.shallow_clone(),
            ));
        }
        named
    }

    /// Restores moments saved by [`Adam::state_tensors`] from a read
    /// checkpoint, and the step count.
    pub fn load_state(
        &mut self,
        file: &crate::tensors_file::TensorsFile,
        path: &Path,
        step: i64,
    ) -> Result<()> {
        for (prefix, map) in [("optim.m.", &mut self.m), ("optim.v.", &mut self.v)] {
            for (n, t) in map.iter_mut() {
                let name = format!("{prefix}{n}");
                file.copy_to(path, &name, t, "a checkpoint to resume this model from")?;
            }
        }
        // A checkpoint written without a scaler (the notebook's epoch by
        // hand in fp32, continued by the library in fp16) has none to
        // restore: the scaler starts fresh, as a new GradScaler does. One
        // that has half of it is refused by `copy_to`.
        let saved = ["optim.scaler.scale", "optim.scaler.growth_tracker"]
            .iter()
            .any(|k| file.get(k).is_some());
        if let (Some(sc), true) = (&mut self.scaler, saved) {
            for (name, t) in [
                ("optim.scaler.scale", &mut sc.scale),
                ("optim.scaler.growth_tracker", &mut sc.growth_tracker),
            ] {
                file.copy_to(path, name, t, "a checkpoint to resume this model from")?;
            }
        }
        self.step = step;
        self.step_tensor = None;
        Ok(())
    }
}
