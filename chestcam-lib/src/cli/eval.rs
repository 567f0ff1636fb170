//! `chestcam eval`: a run's checkpoint on a split.
use super::{print_json, same_data, split_record, TrainedRun};
use crate::emit;
use chestcam::choice::ChoiceParser;
use chestcam::data::SplitName;

#[derive(clap::Args)]
pub(crate) struct EvalArgs {
    #[command(flatten)]
    trained: TrainedRun,
    /// The split to evaluate on.
    #[arg(long, default_value = "test", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
    /// Print the evaluation as JSON.
    #[arg(long)]
    json: bool,
}

/// Runs `chestcam eval`.
pub(crate) fn run(a: EvalArgs) -> chestcam::Result<()> {
    let split = a.split;
    let (model, meta) = a.trained.model()?;
    let mut progress = chestcam::progress::auto();
    let data = a.trained.data_source()?.load(progress.as_mut())?;
    let check = same_data(&a.trained.run, &data, &meta, split)?;
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
                (
                    "checkpoint",
                    serde_json::json!(a.trained.checkpoint.to_string()),
                ),
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
            a.trained.checkpoint,
            meta.epoch,
            data.provenance
        );
        emit(&e.to_string())?;
    }
    Ok(())
}
