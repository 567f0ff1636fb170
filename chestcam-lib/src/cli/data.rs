//! `chestcam data` and `chestcam phantoms`.
use super::print_json;
use crate::emit;
use chestcam::choice::ChoiceParser;
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::source::DataSource;
use chestcam::data::summary::Summary;
use chestcam::data::SplitName;
use chestcam::viz::montage::{Montage, MontageOptions};
use std::path::PathBuf;

#[derive(clap::Args)]
pub(crate) struct DataArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size[:train,val,test[:seed]]], or a MedMNIST-format npz.
    #[arg(long, default_value = "chestmnist")]
    source: String,
    /// Print the summary table (the default when nothing else is asked).
    #[arg(long)]
    summary: bool,
    /// Print the summary as JSON instead of a table.
    #[arg(long)]
    json: bool,
    /// Write a montage of sample images per label to this PNG.
    #[arg(long)]
    montage: Option<PathBuf>,
    /// Which split the montage shows.
    #[arg(long, default_value = "train", value_parser = ChoiceParser::<SplitName>::new())]
    split: SplitName,
}

#[derive(clap::Args)]
pub(crate) struct PhantomArgs {
    /// Image side in pixels (28, 64, 128, 224, ...).
    #[arg(long, default_value_t = 28)]
    size: usize,
    /// The generator's seed: the same seed, size and counts write the same files.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per split: train,val,test.
    #[arg(long, default_value = "2000,300,500")]
    counts: String,
    /// The folder to write into (made if missing): phantom_<size>_seed<seed>.npz and its _masks.npz.
    #[arg(long)]
    out: PathBuf,
}

/// Runs `chestcam data`: a summary, its JSON or a montage.
pub(crate) fn run(a: DataArgs) -> chestcam::Result<()> {
    let source: DataSource = a.source.parse()?;
    let split = a.split;
    if let Some(m) = a
        .montage
        .as_ref()
        .filter(|m| !m.extension().is_some_and(|e| e.eq_ignore_ascii_case("png")))
    {
        return Err(chestcam::Error::invalid(
            "--montage",
            format!(
                "{}: a montage is written as PNG; give a .png name",
                m.display()
            ),
        ));
    }
    let mut progress = chestcam::progress::auto();
    let data = source.load(progress.as_mut())?;
    let summary = Summary::of(&data);
    if a.json {
        print_json(&summary)?;
    } else if a.summary || a.montage.is_none() {
        emit(&summary.to_string())?;
    }
    if let Some(path) = a.montage {
        let opt = MontageOptions {
            split,
            ..Default::default()
        };
        Montage::new(&data, opt).save(&path)?;
        chestcam::note!("montage written to {}", path.display());
    }
    Ok(())
}

/// Runs `chestcam phantoms`: a phantom data set and its masks.
pub(crate) fn phantoms(a: PhantomArgs) -> chestcam::Result<()> {
    let counts: Vec<usize> = a
        .counts
        .split(',')
        .map(|c| c.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| {
            chestcam::Error::invalid(
                "--counts",
                format!("{:?} (expected three numbers: train,val,test)", a.counts),
            )
        })?;
    let [tr, va, te] = counts[..] else {
        return Err(chestcam::Error::invalid(
            "--counts",
            format!("{:?} (expected three numbers: train,val,test)", a.counts),
        ));
    };
    let cfg = PhantomConfig {
        size: a.size,
        seed: a.seed,
        counts: [tr, va, te],
        ..Default::default()
    };
    let (d, m) = cfg.write(&a.out)?;
    say!("{}\n{}", d.display(), m.display());
    Ok(())
}
