//! The model: ResNet-18 with a chosen stem, its VarStore and device, weight
//! files (safetensors) and optional ImageNet initialisation.
pub mod resnet;
pub mod weights;

pub use resnet::{check_stem, feature_sizes, ResNet18, Stage, Stem};

use crate::data::registry::NUM_LABELS;
use crate::{Error, Result};
use std::path::Path;
use tch::{nn, Device, Tensor};

/// `auto` (CUDA when available, else CPU), `cpu`, `cuda` or `cuda:N`.
pub fn parse_device(s: &str) -> Result<Device> {
    match s.trim().to_ascii_lowercase().as_str() {
        "auto" | "" => Ok(Device::cuda_if_available()),
        "cpu" => Ok(Device::Cpu),
        "cuda" | "gpu" => {
            if tch::Cuda::is_available() {
                Ok(Device::Cuda(0))
            } else {
                Err(Error::invalid(
                    "device",
                    "cuda requested but libtorch sees no CUDA device",
                ))
            }
        }
        other => match other
            .strip_prefix("cuda:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            Some(i) if (i as i64) < tch::Cuda::device_count() => Ok(Device::Cuda(i)),
            Some(i) => Err(Error::invalid(
                "device",
                format!(
                    "cuda:{i} but only {} CUDA device(s)",
                    tch::Cuda::device_count()
                ),
            )),
            None => Err(Error::invalid(
                "device",
                format!("{s:?} (expected auto, cpu, cuda or cuda:N)"),
            )),
        },
    }
}

/// A ResNet-18 with its parameters.
pub struct Model {
    pub vs: nn::VarStore,
    pub net: ResNet18,
    pub stem: Stem,
    /// The input side it was built for.
    pub size: usize,
}

impl Model {
    /// A freshly initialised model for `size` px inputs; refuses a stem that
    /// leaves layer4 at 1x1.
    pub fn new(stem: Stem, size: usize, device: Device) -> Result<Model> {
        check_stem(stem, size)?;
        let vs = nn::VarStore::new(device);
        let net = ResNet18::new(&vs.root(), stem, NUM_LABELS as i64);
        Ok(Model {
            vs,
            net,
            stem,
            size,
        })
    }

    pub fn device(&self) -> Device {
        self.vs.device()
    }

    /// Logits `[b, 14]` in evaluation mode, without gradients.
    pub fn logits(&self, xs: &Tensor) -> Tensor {
        tch::no_grad(|| self.net.forward_stage(xs, Stage::Layer4, false).0)
    }

    /// Batches [`Model::logits_chunked`] queues on a GPU before it waits
    /// for them.
    const BATCHES_IN_FLIGHT: usize = 8;

    /// Logits `[n, 14]` on the CPU for `n` images, `batch_size` at a time
    /// on the model's device: `chunk(start, len)` gives images
    /// `start..start + len` as `[len, 1, S, S]` on any device, so no caller
    /// needs all `n` in memory at once. The logits stay on the device until
    /// the last batch is done and come back in one copy (`[n, 14]` floats,
    /// 1.3 MB for ChestMNIST's test split): on a GPU the host waits for the
    /// device every 8 batches, not after each.
    pub fn logits_chunked(
        &self,
        n: usize,
        batch_size: usize,
        mut chunk: impl FnMut(usize, usize) -> Result<Tensor>,
    ) -> Result<Tensor> {
        let b = batch_size.max(1);
        let mut out = Vec::with_capacity(n.div_ceil(b));
        let mut start = 0;
        while start < n {
            let len = b.min(n - start);
            let x = chunk(start, len)?.f_to_device(self.device())?;
            out.push(self.logits(&x));
            start += len;
            // A GPU is not waited for between batches, so the host would run
            // ahead by as many batches as the launch queue holds, each
            // keeping its pinned copy; a wait every few batches bounds that.
            if out.len() % Self::BATCHES_IN_FLIGHT == 0 {
                crate::util::sync(self.device());
            }
        }
        if out.is_empty() {
            return Ok(Tensor::f_zeros(
                [0, NUM_LABELS as i64],
                (tch::Kind::Float, Device::Cpu),
            )?);
        }
        Ok(Tensor::f_cat(&out, 0)?.f_to_device(Device::Cpu)?)
    }

    /// Lays every 4-d parameter (the convolutions' weights) out
    /// channels-last, as `model.to(memory_format=torch.channels_last)`;
    /// feed it inputs made with [`crate::shim::channels_last`].
    pub fn to_channels_last(&mut self) -> Result<()> {
        for (_, mut t) in self.vs.variables() {
            if t.dim() == 4 {
                crate::shim::set_channels_last(&mut t)?;
            }
        }
        Ok(())
    }

    /// The parameters and buffers by name, sorted.
    pub fn named_tensors(&self) -> Vec<(String, Tensor)> {
        let mut v: Vec<(String, Tensor)> = self.vs.variables().into_iter().collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Saves the parameters as safetensors, atomically.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let named = self.named_tensors();
        let refs: Vec<(&str, &Tensor)> = named.iter().map(|(n, t)| (n.as_str(), t)).collect();
        crate::tensors_file::write(path.as_ref(), &refs, Default::default())
    }

    /// Loads parameters saved by [`Model::save`] (or a checkpoint, whose
    /// other tensors are ignored); every name and shape must match.
    pub fn load(&mut self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let file = crate::tensors_file::read(path)?;
        self.load_from(&file, path)
    }

    /// Copies this model's tensors out of an already read file.
    pub fn load_from(
        &mut self,
        file: &crate::tensors_file::TensorsFile,
        path: &Path,
    ) -> Result<()> {
        let whose = format!("the weights of a {} ResNet-18 at this size", self.stem);
        for (name, mut var) in self.named_tensors() {
            file.copy_to(path, &name, &mut var, &whose)?;
        }
        Ok(())
    }
}
