//! ImageNet initialisation from a safetensors file with torchvision's names
//! (`conv1.weight`, `layer1.0.bn1.running_mean`, ...). The first conv's RGB
//! kernels are summed into one grey channel; the 14-way `head` keeps its
//! fresh initialisation (torchvision's 1000-way `fc` is ignored).
//!
//! tch cannot read torchvision's pickled `resnet18-f37072fd.pth`: convert it
//! once with `scripts/convert_torchvision_resnet18.py` (the venv's torch).
use super::Model;
use crate::{Error, Result};
use std::path::Path;

/// What an ImageNet load did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Our parameter names filled from the file.
    pub loaded: Vec<String>,
    /// Our names left as initialised, with why.
    pub skipped: Vec<(String, String)>,
}

impl Model {
    /// Copies torchvision-named ImageNet weights into this model.
    pub fn load_imagenet(&mut self, path: impl AsRef<Path>) -> Result<LoadReport> {
        let path = path.as_ref();
        let file: std::collections::HashMap<String, tch::Tensor> = crate::tensors_file::read(path)?
            .tensors
            .into_iter()
            .collect();
        let mut report = LoadReport {
            loaded: vec![],
            skipped: vec![],
        };
        let mut vars: Vec<(String, tch::Tensor)> = self.vs.variables().into_iter().collect();
        vars.sort_by(|a, b| a.0.cmp(&b.0));
        tch::no_grad(|| -> Result<()> {
            for (name, mut var) in vars {
                if name.starts_with("head.") {
                    report
                        .skipped
                        .push((name, "14-way head: freshly initialised".into()));
                    continue;
                }
                let Some(src) = file.get(&name) else {
                    return Err(Error::bad_file(
                        path,
                        format!("missing tensor {name:?} (expected torchvision resnet18 names)"),
                    ));
                };
                let mut src = src.to_kind(var.kind());
                if name == "conv1.weight" && src.size().get(1) == Some(&3) {
                    src = src.f_sum_dim_intlist(1i64, true, var.kind())?;
                }
                if src.size() != var.size() {
                    report.skipped.push((
                        name,
                        format!("shape {:?} in the file, {:?} here", src.size(), var.size()),
                    ));
                    continue;
                }
                var.f_copy_(&src.f_to_device(var.device())?)?;
                report.loaded.push(name);
            }
            Ok(())
        })?;
        Ok(report)
    }
}
