//! The `chestcam` command line.
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::source::DataSource;
use chestcam::data::summary::Summary;
use chestcam::viz::montage::{Montage, MontageOptions};
use clap::{Parser, Subcommand};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "chestcam",
    version,
    about = "ResNet-18 on ChestMNIST with Grad-CAM explanations"
)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Load a data source and summarise it (counts and prevalence per label).
    Data(DataArgs),
    /// Write a synthetic phantom data set (npz + masks npz) to a folder.
    Phantoms(PhantomArgs),
    /// Show the libtorch build and the device chestcam would use.
    Info,
}

#[derive(clap::Args)]
struct DataArgs {
    /// chestmnist[:28|64|128|224], synthetic[:size], or a path to a MedMNIST-format npz.
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
    #[arg(long, default_value = "train")]
    split: String,
}

#[derive(clap::Args)]
struct PhantomArgs {
    #[arg(long, default_value_t = 28)]
    size: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Images per split: train,val,test.
    #[arg(long, default_value = "2000,300,500")]
    counts: String,
    #[arg(long)]
    out: PathBuf,
}

fn run(cli: Cli) -> chestcam::Result<()> {
    match cli.cmd {
        Cmd::Data(a) => {
            let source: DataSource = a.source.parse()?;
            let mut progress = chestcam::progress::auto();
            let data = source.load(progress.as_mut())?;
            let summary = Summary::of(&data);
            if a.json {
                let s = serde_json::to_string_pretty(&summary)
                    .map_err(|e| chestcam::Error::invalid("summary", e.to_string()))?;
                println!("{s}");
            } else if a.summary || a.montage.is_none() {
                print!("{summary}");
            }
            if let Some(path) = a.montage {
                let opt = MontageOptions {
                    split: a.split.parse()?,
                    ..Default::default()
                };
                Montage::new(&data, opt).save(&path)?;
                eprintln!("montage written to {}", path.display());
            }
        }
        Cmd::Info => {
            let cuda = tch::Cuda::is_available();
            println!("chestcam {}", env!("CARGO_PKG_VERSION"));
            println!(
                "cuda available: {cuda} ({} device(s))",
                tch::Cuda::device_count()
            );
            println!("cudnn available: {}", tch::Cuda::cudnn_is_available());
            println!("device: {:?}", tch::Device::cuda_if_available());
            println!("cpu threads: {}", tch::get_num_threads());
        }
        Cmd::Phantoms(a) => {
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
            println!("{}\n{}", d.display(), m.display());
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}
