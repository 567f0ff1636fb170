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
        let usage =
            "use chestmnist[:size], synthetic[:size[:train,val,test[:seed]]] or a path to an .npz";
        let mut parts = s.splitn(4, ':');
        let head = parts.next().unwrap_or_default();
        if !matches!(head, "chestmnist" | "synthetic") {
            if s.is_empty() {
                return Err(Error::invalid("data source", format!("empty ({usage})")));
            }
            return Ok(DataSource::Path(PathBuf::from(s)));
        }
        let size = match parts.next() {
            None => None,
            Some(n) => Some(n.parse::<usize>().map_err(|_| {
                Error::invalid("data source", format!("{s:?}: size {n:?} is not a number"))
            })?),
        };
        match head {
            "chestmnist" => {
                if parts.next().is_some() {
                    return Err(Error::invalid("data source", format!("{s:?}: {usage}")));
                }
                let size = size.unwrap_or(28);
                super::registry::chestmnist(size)?;
                Ok(DataSource::ChestMnist { size })
            }
            _ => {
                let mut cfg = PhantomConfig {
                    size: size.unwrap_or(28),
                    ..PhantomConfig::default()
                };
                if !(28..=224).contains(&cfg.size) {
                    return Err(Error::invalid(
                        "data source",
                        format!("{s:?}: synthetic size must be 28 to 224"),
                    ));
                }
                if let Some(c) = parts.next() {
                    let counts: Vec<usize> = c
                        .split(',')
                        .map(|v| v.trim().parse::<usize>())
                        .collect::<std::result::Result<_, _>>()
                        .map_err(|_| {
                            Error::invalid(
                                "data source",
                                format!("{s:?}: counts {c:?} are not three numbers train,val,test"),
                            )
                        })?;
                    let [tr, va, te] = counts[..] else {
                        return Err(Error::invalid(
                            "data source",
                            format!("{s:?}: counts {c:?} are not three numbers train,val,test"),
                        ));
                    };
                    cfg.counts = [tr, va, te];
                }
                if let Some(seed) = parts.next() {
                    cfg.seed = seed.parse().map_err(|_| {
                        Error::invalid(
                            "data source",
                            format!("{s:?}: seed {seed:?} is not a number"),
                        )
                    })?;
                }
                cfg.check()?;
                Ok(DataSource::Synthetic(cfg))
            }
        }
    }
}

impl std::fmt::Display for DataSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataSource::ChestMnist { size } => write!(f, "chestmnist:{size}"),
            DataSource::Path(p) => write!(f, "{}", p.display()),
            DataSource::Synthetic(c) => {
                let d = PhantomConfig::default();
                if (c.counts, c.seed) == (d.counts, d.seed) {
                    write!(f, "synthetic:{}", c.size)
                } else {
                    let [a, b, t] = c.counts;
                    write!(f, "synthetic:{}:{a},{b},{t}:{}", c.size, c.seed)
                }
            }
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
    fn a_phantom_source_keeps_its_counts_and_seed() {
        let s: DataSource = "synthetic:32:40,20,10:7".parse().unwrap();
        let DataSource::Synthetic(c) = &s else {
            panic!("{s:?}")
        };
        assert_eq!((c.size, c.counts, c.seed), (32, [40, 20, 10], 7));
        assert_eq!(s.to_string(), "synthetic:32:40,20,10:7");
        let d = c.generate().unwrap().0;
        // The data set names the source that rebuilds it exactly.
        assert_eq!(d.provenance.source, "synthetic:32:40,20,10:7");
        let again = d.provenance.source.parse::<DataSource>().unwrap();
        assert_eq!(again.load(&mut crate::progress::Silent).unwrap(), d);
        assert_eq!(
            "synthetic:64".parse::<DataSource>().unwrap().to_string(),
            "synthetic:64"
        );
        for (bad, needle) in [
            ("synthetic:28:1,2", "three numbers"),
            ("synthetic:28:1,2,x", "three numbers"),
            ("synthetic:28:1,2,3:z", "seed"),
            ("synthetic:28:99999999999,1,1", "GiB"),
            ("chestmnist:28:1", "synthetic[:size"),
        ] {
            let e = bad.parse::<DataSource>().unwrap_err().to_string();
            assert!(e.contains(needle), "{bad}: {e}");
        }
    }

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
