//! `chestcam eval`: a run's checkpoint on a split.
use super::{print_json, same_data, split_record};
use crate::emit;
use chestcam::choice::ChoiceParser;
use chestcam::data::SplitName;
use chestcam::model::parse_device;
use chestcam::train::Checkpoint;
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    /// The run folder of `chestcam train`.
    #[arg(long)]
    run: PathBuf,
    /// The data to read instead of the source recorded in the run's
    /// config.json: another copy of that file (after it was moved), or any
    /// source with the run's image size.
    #[arg(long)]
    source: Option<String>,
    /// The split to evaluate on.
    #[arg(long, default_value = "test", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
    /// best (the epoch of the highest validation AUC) or last (the last finished epoch).
    #[arg(long, default_value = "best", value_parser = ChoiceParser::<Checkpoint>::new())]
    checkpoint: Checkpoint,
    /// auto (CUDA when present), cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = parse_device)]
    device: tch::Device,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `chestcam eval`.
pub(crate) fn run(a: EvalArgs) -> chestcam::Result<()> {
    let cfg = chestcam::train::load_config(&a.run)?;
    let split = a.split;
    let (model, meta) = chestcam::train::load_model(&a.run, a.checkpoint, a.device)?;
    let mut progress = chestcam::progress::auto();
    let data = chestcam::train::run_source(&a.run, &cfg.source, a.source.as_deref())?
        .load(progress.as_mut())?;
    let check = same_data(&a.run, &data, &meta, split)?;
    let label = format!("{split} split");
    let e = chestcam::train::evaluate_split_with(
        &model,
        data.split(split),
        256,
        &label,
        chestcam::progress::patient_images().as_mut(),
    )?;
    if a.json {
        // The evaluation, with what was evaluated on what.
        let mut v = serde_json::to_value(&e)
            .map_err(|e| chestcam::Error::invalid("json", e.to_string()))?;
        if let Some(o) = v.as_object_mut() {
            for (k, val) in [
                ("checkpoint", serde_json::json!(a.checkpoint.to_string())),
                ("epoch", serde_json::json!(meta.epoch)),
            ]
            .into_iter()
            .chain(split_record(&data, &check))
            {
                o.insert(k.to_string(), val);
            }
        }
        print_json(&v)?;
    } else {
        say!(
            "{} checkpoint (epoch {}) on the {split} split of {}:",
            a.checkpoint,
            meta.epoch,
            data.provenance
        );
        emit(&e.to_string())?;
    }
    Ok(())
}
