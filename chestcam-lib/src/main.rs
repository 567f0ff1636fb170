//! The `chestcam` command line.
use clap::{Parser, Subcommand};
use std::process::ExitCode;

/// Writes to standard output: a reader that went away (`| head`) ends the
/// program quietly with success; any other failure (`> /dev/full`) is an
/// error that says so, never a panic.
fn emit(text: &str) -> chestcam::Result<()> {
    use std::io::Write;
    let mut so = std::io::stdout().lock();
    so.write_all(text.as_bytes())
        .and_then(|_| so.flush())
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::BrokenPipe {
                std::process::exit(0);
            }
            chestcam::Error::io("standard output", e)
        })
}

/// `println!` through [`emit`], returning its error from the function.
macro_rules! say {
    ($($arg:tt)*) => {
        emit(&format!("{}\n", format_args!($($arg)*)))?
    };
}

mod cli;

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
    Data(cli::data::DataArgs),
    /// Write a synthetic phantom data set (npz + masks npz) to a folder.
    Phantoms(cli::data::PhantomArgs),
    /// Show the libtorch build and the device chestcam would use.
    Info,
    /// Train a ResNet-18 (MedMNIST's protocol by default) into a run folder.
    Train(cli::train::TrainArgs),
    /// Evaluate a run's checkpoint on a split: the per-label table.
    Eval(cli::eval::EvalArgs),
    /// Benchmark training and inference against PyTorch (same libtorch, weights, data).
    Bench(cli::bench::BenchArgs),
    /// Heatmaps for a run's predictions: panel PNG, GIFs and a JSON per image.
    Explain(cli::explain::ExplainArgs),
    /// Can the heatmaps be trusted? Localisation, faithfulness and sanity
    /// checks per method and label, beside RandomCAM and a centre prior.
    Trust(cli::trust::TrustArgs),
}

fn run(cli: Cli) -> chestcam::Result<()> {
    match cli.cmd {
        Cmd::Data(a) => cli::data::run(a),
        Cmd::Phantoms(a) => cli::data::phantoms(a),
        Cmd::Info => cli::info(),
        Cmd::Train(a) => cli::train::run(a),
        Cmd::Eval(a) => cli::eval::run(a),
        Cmd::Bench(a) => cli::bench::run(a),
        Cmd::Explain(a) => cli::explain::run(a),
        Cmd::Trust(a) => cli::trust::run(a),
    }
}

/// A usage error on one line (clap's own spans several): what is wrong,
/// and where help is. `--help` and `--version` print as clap prints them.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind as K;
    if matches!(
        e.kind(),
        K::DisplayHelp | K::DisplayVersion | K::DisplayHelpOnMissingArgumentOrSubcommand
    ) {
        e.exit()
    }
    let text = e.render().to_string();
    let mut lines = text.lines().map(str::trim).filter(|l| !l.is_empty());
    let first = lines
        .next()
        .unwrap_or("error: invalid arguments")
        .to_string();
    // Missing arguments are listed on the lines after the first, and so
    // are the possible values of a bad choice and clap's "did you mean".
    let rest: Vec<&str> = lines
        .take_while(|l| !l.starts_with("Usage:") && !l.starts_with("For more"))
        .collect();
    let listed: Vec<&str> = rest
        .iter()
        .filter(|l| l.starts_with('-') || l.starts_with('<'))
        .copied()
        .collect();
    let notes: Vec<&str> = rest
        .iter()
        .filter_map(|l| {
            l.strip_prefix('[')
                .and_then(|l| l.strip_suffix(']'))
                .or_else(|| l.strip_prefix("tip: "))
        })
        .collect();
    let first = first.trim_end_matches(':');
    let first = if notes.is_empty() {
        first.to_string()
    } else {
        format!("{first}; {}", notes.join("; "))
    };
    let sub = std::env::args().nth(1).filter(|a| !a.starts_with('-'));
    let help = match sub {
        Some(s) if Cli::command_for_help(&s) => format!("chestcam {s} --help"),
        _ => "chestcam --help".to_string(),
    };
    if listed.is_empty() {
        chestcam::note!("{first} (see {help})");
    } else {
        chestcam::note!("{first}: {} (see {help})", listed.join(", "));
    }
    std::process::exit(2)
}

impl Cli {
    /// Whether `name` is a subcommand (its help is then the one to name).
    fn command_for_help(name: &str) -> bool {
        use clap::CommandFactory;
        Cli::command().find_subcommand(name).is_some()
    }
}

fn main() -> ExitCode {
    use clap::{CommandFactory, FromArgMatches};
    let matches = match Cli::command().try_get_matches() {
        Ok(m) => m,
        Err(e) => usage_error(e),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(c) => c,
        Err(e) => usage_error(e),
    };
    // `train --resume` takes what the run trains from its config.json: an
    // option that would change it is refused (ignoring it would be silent);
    // the options of how it runs are passed on as typed.
    if let Some(("train", m)) = matches.subcommand() {
        let cmd = Cli::command();
        let options: Vec<String> = cmd
            .find_subcommand("train")
            .map(|c| c.get_arguments().map(|a| a.get_id().to_string()).collect())
            .unwrap_or_default();
        let typed: Vec<String> = m
            .ids()
            .map(|id| id.as_str())
            .filter(|id| options.iter().any(|o| o == id))
            .filter(|id| !matches!(*id, "run" | "resume" | "json"))
            .filter(|id| m.value_source(id) == Some(clap::parser::ValueSource::CommandLine))
            .map(|id| id.to_string())
            .collect();
        let fixed: Vec<String> = typed
            .iter()
            .map(|id| id.replace('_', "-"))
            .filter(|o| !chestcam::train::ResumeChanges::OPTIONS.contains(&o.as_str()))
            .map(|o| format!("--{o}"))
            .collect();
        if m.get_flag("resume") && !fixed.is_empty() {
            chestcam::note!(
                "error: --resume continues what the run's config.json trains; drop {} (or train into a new --run). Only how it runs may change: {}",
                fixed.join(", "),
                chestcam::train::ResumeChanges::OPTIONS
                    .iter()
                    .map(|o| format!("--{o}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            );
            return ExitCode::FAILURE;
        }
        if let Cmd::Train(a) = &mut cli.cmd {
            a.typed = typed;
        }
    }
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            chestcam::note!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Cli;
    use clap::CommandFactory;

    /// clap's own consistency checks, and a line of help for every option
    /// of every subcommand: `chestcam <cmd> -h` never lists a bare option.
    #[test]
    fn every_option_says_what_it_does() {
        let cmd = Cli::command();
        cmd.clone().debug_assert();
        let bare: Vec<String> = cmd
            .get_subcommands()
            .flat_map(|sub| {
                sub.get_arguments()
                    .filter(|a| !a.is_hide_set() && a.get_help().is_none())
                    .map(|a| format!("{} --{}", sub.get_name(), a.get_id()))
                    .collect::<Vec<_>>()
            })
            .collect();
        assert!(bare.is_empty(), "options without help: {bare:?}");
        // The check sees options: `eval --json` is one of those it covers.
        let eval = cmd.find_subcommand("eval").unwrap();
        assert!(eval
            .get_arguments()
            .any(|a| a.get_id() == "json" && a.get_help().is_some()));
    }
}
