//! Adam as `torch.optim.Adam` computes it (no weight decay, no amsgrad),
//! with its state in plain tensors so checkpoints can save and restore it
//! exactly (tch's optimiser state cannot be saved).
use crate::{Error, Result};
use std::collections::BTreeMap;
use std::path::Path;
use tch::{nn, Tensor};

pub struct Adam {
    params: Vec<(String, Tensor)>,
    m: BTreeMap<String, Tensor>,
    v: BTreeMap<String, Tensor>,
    pub step: i64,
    pub beta1: f64,
    pub beta2: f64,
    pub eps: f64,
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
        }
    }

    pub fn zero_grad(&mut self) {
        for (_, p) in self.params.iter_mut() {
            p.zero_grad();
        }
    }

    /// One update with learning rate `lr`.
    pub fn step(&mut self, lr: f64) -> Result<()> {
        self.step += 1;
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

    /// Saves the moments (safetensors, atomically); the step goes in the
    /// checkpoint's JSON.
    pub fn save(&self, path: &Path) -> Result<()> {
        let mut named: Vec<(String, &Tensor)> = Vec::new();
        for (n, t) in &self.m {
            named.push((format!("m.{n}"), t));
        }
        for (n, t) in &self.v {
            named.push((format!("v.{n}"), t));
        }
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = path.with_file_name(format!(".{name}.{}.tmp", std::process::id()));
        Tensor::write_safetensors(
            &named
                .iter()
                .map(|(n, t)| (n.as_str(), *t))
                .collect::<Vec<_>>(),
            &tmp,
        )
        .map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::bad_file(path, format!("cannot save optimiser state: {e}"))
        })?;
        std::fs::rename(&tmp, path).map_err(|e| Error::io(path, e))
    }

    /// Restores moments saved by [`Adam::save`] and the step count.
    pub fn load(&mut self, path: &Path, step: i64) -> Result<()> {
        let file: BTreeMap<String, Tensor> = Tensor::read_safetensors(path)
            .map_err(|e| Error::bad_file(path, format!("cannot read optimiser state: {e}")))?
            .into_iter()
            .collect();
        tch::no_grad(|| -> Result<()> {
            for (prefix, map) in [("m.", &mut self.m), ("v.", &mut self.v)] {
                for (n, t) in map.iter_mut() {
                    let src = file
                        .get(&format!("{prefix}{n}"))
                        .ok_or_else(|| Error::bad_file(path, format!("missing {prefix}{n}")))?;
                    t.f_copy_(src)?;
                }
            }
            Ok(())
        })?;
        self.step = step;
        Ok(())
    }
}
