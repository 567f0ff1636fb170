//! The data-source choice shared by notebooks and the CLI: ChestMNIST at a
//! size (the default), a path to any MedMNIST-format npz, or `synthetic`.
use super::phantom::PhantomConfig;
use super::Dataset;
use crate::progress::Progress;
use crate::{Error, Result};
use std::path::PathBuf;

#[derive(Debug, Clone, PartialEq)]
pub enum DataSource {
    /// ChestMNIST from the cache or Zenodo at 28, 64, 128 or 224 px.
    ChestMnist { size: usize },
    /// Any npz in the MedMNIST layout.
    Path(PathBuf),
    /// Synthetic phantoms.
    Synthetic(PhantomConfig),
}

impl Default for DataSource {
    fn default() -> Self {
        DataSource::ChestMnist { size: 28 }
    }
}

impl std::str::FromStr for DataSource {
    type Err = Error;

    /// `chestmnist`, `chestmnist:64`, `synthetic`, `synthetic:64`, or a path.
    fn from_str(s: &str) -> Result<Self> {
        let s = s.trim();
        let (head, size) = match s.split_once(':') {
            Some((h, n)) if matches!(h, "chestmnist" | "synthetic") => {
                let size = n.parse::<usize>().map_err(|_| {
                    Error::invalid("data source", format!("{s:?}: size {n:?} is not a number"))
                })?;
                (h, Some(size))
            }
            _ => (s, None),
        };
        match head {
            "" => Err(Error::invalid(
                "data source",
                "empty (use chestmnist[:size], synthetic[:size] or a path to an .npz)",
            )),
            "chestmnist" => {
                let size = size.unwrap_or(28);
                super::registry::chestmnist(size)?;
                Ok(DataSource::ChestMnist { size })
            }
            "synthetic" => {
                let cfg = PhantomConfig {
                    size: size.unwrap_or(28),
                    ..PhantomConfig::default()
                };
                if !(28..=224).contains(&cfg.size) {
                    return Err(Error::invalid(
                        "data source",
                        format!("{s:?}: synthetic size must be 28 to 224"),
                    ));
                }
                Ok(DataSource::Synthetic(cfg))
            }
            path => Ok(DataSource::Path(PathBuf::from(path))),
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::ChestMnist { size } => write!(f, "chestmnist:{size}"),
            DataSource::Path(p) => write!(f, "{}", p.display()),
            DataSource::Synthetic(c) => write!(f, "synthetic:{}", c.size),
        }
    }
}

impl DataSource {
    /// Loads the data set; errors when a download is impossible (CLI use).
    pub fn load(&self, progress: &mut dyn Progress) -> Result<Dataset> {
        match self {
            DataSource::ChestMnist { size } => Dataset::chestmnist(*size, progress),
            DataSource::Path(p) => Dataset::from_npz(p),
            DataSource::Synthetic(cfg) => Ok(cfg.generate()?.0),
        }
    }

    /// Loads the data set, falling back to phantoms (at the same size) when
    /// ChestMNIST cannot be had. The banner says why (notebook use).
    pub fn load_or_synthetic(
        &self,
        progress: &mut dyn Progress,
    ) -> Result<(Dataset, Option<String>)> {
        match (self, self.load(progress)) {
            (_, Ok(d)) => Ok((d, None)),
            (DataSource::ChestMnist { size }, Err(e)) => {
                let cfg = PhantomConfig {
                    size: *size,
                    ..PhantomConfig::default()
                };
                let banner = format!(
                    "ChestMNIST could not be loaded ({e}).\nContinuing on SYNTHETIC phantoms ({size} px): every number and picture below is from synthetic images, not X-rays."
                );
                Ok((cfg.generate()?.0, Some(banner)))
            }
            (_, Err(e)) => Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse() {
        assert_eq!(
            "chestmnist".parse::<DataSource>().unwrap(),
            DataSource::ChestMnist { size: 28 }
        );
        assert_eq!(
            "chestmnist:64".parse::<DataSource>().unwrap(),
            DataSource::ChestMnist { size: 64 }
        );
        assert!(
            matches!("synthetic:64".parse::<DataSource>().unwrap(), DataSource::Synthetic(c) if c.size == 64)
        );
        assert_eq!(
            "x/y.npz".parse::<DataSource>().unwrap(),
            DataSource::Path("x/y.npz".into())
        );
        assert!("chestmnist:32"
            .parse::<DataSource>()
            .unwrap_err()
            .to_string()
            .contains("32"));
        assert!("synthetic:abc".parse::<DataSource>().is_err());
        assert!("synthetic:300".parse::<DataSource>().is_err());
    }
}
