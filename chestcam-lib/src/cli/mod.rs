//! The subcommands of the `chestcam` command line, a module each, and what
//! several of them share.
use crate::emit;
use chestcam::choice::ChoiceParser;
use chestcam::model::parse_device;
use chestcam::train::Checkpoint;
use std::path::PathBuf;

pub(crate) mod bench;
pub(crate) mod data;
pub(crate) mod eval;
pub(crate) mod explain;
pub(crate) mod train;
pub(crate) mod trust;

/// The options that pick a trained model and its data, the same for
/// `eval`, `explain` and `trust`.
#[derive(clap::Args)]
pub(crate) struct TrainedRun {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// The data to read instead of the source recorded in the run's
    /// config.json: another copy of that file (after it was moved), or any
    /// source with the run's image size.
    #[arg(long)]
    source: Option<String>,
    /// best (the epoch of the highest validation AUC) or last (the last finished epoch).
    #[arg(long, default_value = "best", value_parser = ChoiceParser::<Checkpoint>::new())]
    checkpoint: Checkpoint,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: tch::Device,
}

impl TrainedRun {
    /// The run's model at `--checkpoint` on `--device`, with its metadata.
    fn model(&self) -> chestcam::Result<(chestcam::model::Model, chestcam::train::CheckpointMeta)> {
        chestcam::train::load_model(&self.run, self.checkpoint, self.device)
    }

    /// The data the run's commands read: `--source`, else the one the
    /// run's config.json records.
    fn data_source(&self) -> chestcam::Result<chestcam::data::source::DataSource> {
        let cfg = chestcam::train::load_config(&self.run)?;
        chestcam::train::run_source(&self.run, &cfg.source, self.source.as_deref())
    }
}

/// Refuses data of another size than the model was trained on, and says
/// so when `split` holds other images than the run recorded for it (the
/// check is returned for outputs that record it).
fn same_data(
    run: &std::path::Path,
    data: &chestcam::data::Dataset,
    meta: &chestcam::train::CheckpointMeta,
    split: chestcam::data::SplitName,
) -> chestcam::Result<chestcam::train::SplitCheck> {
    if data.size != meta.size {
        return Err(chestcam::Error::invalid(
            "data",
            format!(
                "{} has {} px images but the model was trained on {} px",
                data.provenance, data.size, meta.size
            ),
        ));
    }
    let check = chestcam::train::SplitCheck::of(meta, data, split);
    if let Some(note) = check.note(run, data) {
        chestcam::note!("{note}");
    }
    Ok(check)
}

/// What `eval --json` and `explain`'s JSON record of the split they read:
/// the source, the split, its fingerprint and whether the run recorded it.
fn split_record(
    data: &chestcam::data::Dataset,
    check: &chestcam::train::SplitCheck,
) -> [(&'static str, serde_json::Value); 4] {
    [
        ("data", serde_json::json!(data.provenance.source)),
        ("split", serde_json::json!(check.split)),
        ("split_fingerprint", serde_json::json!(check.now)),
        ("same_split_as_run", serde_json::json!(check.same_as_run())),
    ]
}

/// `p` as an absolute path without `..` or links, for the records.
fn full_path(p: &std::path::Path) -> chestcam::Result<String> {
    Ok(std::fs::canonicalize(p)
        .map_err(|e| chestcam::Error::io(p, e))?
        .display()
        .to_string())
}

/// Prints `v` as pretty JSON on stdout.
fn print_json<T: serde::Serialize>(v: &T) -> chestcam::Result<()> {
    let text = serde_json::to_string_pretty(v)
        .map_err(|e| chestcam::Error::invalid("json", e.to_string()))?;
    say!("{text}");
    Ok(())
}

/// Runs `chestcam info`: the libtorch build and the device.
pub(crate) fn info() -> chestcam::Result<()> {
    let cuda = tch::Cuda::is_available();
    say!("chestcam {}", env!("CARGO_PKG_VERSION"));
    say!(
        "cuda available: {cuda} ({} device(s))",
        tch::Cuda::device_count()
    );
    say!("cudnn available: {}", tch::Cuda::cudnn_is_available());
    say!(
        "device: {}",
        chestcam::train::device_string(tch::Device::cuda_if_available())
    );
    say!("cpu threads: {}", tch::get_num_threads());
    Ok(())
}
