//! chestcam: a ResNet-18 that reads chest X-rays (ChestMNIST, 14 findings,
//! multi-label) and explains itself with Grad-CAM.
//!
//! Table of contents:
//! - [`bench`](mod@bench): the benchmark against PyTorch on the same libtorch.
//! - [`cam`]: Grad-CAM and its family, all labels of a batch at once.
//! - [`choice`]: named choices (method, stage, colormap, ...): one table of
//!   names each, for `FromStr`, errors and the command line's values.
//! - [`data`]: the ChestMNIST registry, downloader, npz reader/writer,
//!   datasets as tch tensors, synthetic phantoms, data-source choice.
//! - [`model`]: ResNet-18 (two stems), weights, ImageNet initialisation.
//! - [`metrics`]: AUC, ACC (MedMNIST), AP, ROC.
//! - [`train`]: config, Adam, the loop, run folders and checkpoints.
//! - [`trust`]: can a heatmap be trusted? Localisation, faithfulness and
//!   sanity checks for every method and label, beside their baselines.
//! - [`viz`]: pictures (montages) and inline notebook display.
//! - [`notebook`]: helpers that keep notebook cells short.
//! - [`progress`]: progress reporting that never prints unless asked.
//! - [`error`]: the one error type.

pub mod bench;
pub mod cam;
pub mod choice;
pub mod data;
pub mod error;
pub mod graphed;
pub mod metrics;
pub mod model;
pub mod notebook;
pub mod progress;
pub mod shim;
pub mod tensors_file;
pub mod train;
pub mod trust;
pub mod util;
pub mod viz;

pub use error::{Error, Result};
/// The tch version chestcam is built on, for notebooks and examples that
/// write tensor code next to the library's.
pub use tch;

/// The common imports for notebooks and examples.
pub mod prelude {
    pub use crate::cam::explain::{ExplainOptions, LabelChoice};
    pub use crate::cam::Method;
    pub use crate::data::summary::Summary;
    pub use crate::data::{
        phantom::PhantomConfig, registry::LABELS, source::DataSource, Dataset, Split, SplitName,
    };
    pub use crate::error::{Error, Result};
    pub use crate::model::Stem;
    pub use crate::notebook::*;
    pub use crate::viz::heatmap::Colormap;
    pub use crate::viz::montage::{Montage, MontageOptions};
}
