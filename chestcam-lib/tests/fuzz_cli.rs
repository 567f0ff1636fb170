//! Every subcommand fed a table of bad arguments: each must exit non-zero
//! with exactly one line on stderr, `error: ...`, free of panics, Rust debug
//! text and C++ traces, and leave the run folder byte for byte as it was.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

mod common;
use common::{chestcam, ok, phantom_npz};

/// `head` followed by `rest`: a subcommand's fixed arguments, then a case's.
fn with<'a>(head: &[&'a str], rest: &[&'a str]) -> Vec<&'a str> {
    [head, rest].concat()
}

/// Every file under `dir` (hidden ones too) with its bytes.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut m = BTreeMap::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            m.extend(snapshot(&p));
        } else {
            m.insert(p.clone(), std::fs::read(&p).unwrap());
        }
    }
    m
}

#[test]
fn bad_arguments_to_every_subcommand_fail_in_one_clean_line_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let npz = phantom_npz(&d.join("data"), "64,32,8", "2")
        .display()
        .to_string();
    let run = d.join("run");
    let out = chestcam()
        .args([
            "train",
            "--epochs",
            "1",
            "--batch-size",
            "32",
            "--device",
            "cpu",
        ])
        .args(["--source", &npz, "--run"])
        .arg(&run)
        .output()
        .unwrap();
    ok(&out);
    let before = snapshot(&run);
    let empty = d.join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let text = d.join("text.npz");
    std::fs::write(&text, b"not a zip").unwrap();
    let a_file = d.join("a-file");
    std::fs::write(&a_file, b"x").unwrap();
    let (r, o, e, t, f) = (
        run.display().to_string(),
        d.join("out").display().to_string(),
        empty.display().to_string(),
        text.display().to_string(),
        a_file.display().to_string(),
    );
    let dirs = d.display().to_string();
    let under_file = format!("{f}/m.png");
    let ex = ["explain", "--run", &r, "--out", &o];
    let tr = ["trust", "--run", &r, "--out", &o];
    let cases: Vec<Vec<&str>> = vec![
        // an unknown subcommand, unknown options (no subcommand at all
        // prints the help, as git does)
        vec!["bogus"],
        vec!["info", "--bogus"],
        // data
        vec!["data", "--source", ""],
        vec!["data", "--source", "/nope/x.npz"],
        vec!["data", "--source", &dirs],
        vec!["data", "--source", &t],
        vec!["data", "--source", &e],
        vec!["data", "--source", "chestmnist:27"],
        vec!["data", "--source", "synthetic:9"],
        vec!["data", "--source", "synthetic:28:1,2"],
        vec!["data", "--source", "synthetic:28:99999999999,1,1"],
        vec!["data", "--source", &npz, "--split", "nonsense"],
        vec!["data", "--source", &npz, "--montage", &under_file],
        vec!["data", "--source", &npz, "--montage", &f],
        // phantoms
        vec!["phantoms", "--counts", "1,2", "--out", &o],
        vec!["phantoms", "--counts", "99999999999,1,1", "--out", &o],
        vec!["phantoms", "--size", "5", "--out", &o],
        vec!["phantoms", "--out", &f],
        // train: every one aimed at the existing run
        vec!["train", "--source", &npz, "--run", &r],
        vec!["train", "--run", &r, "--resume", "--epochs", "3"],
        vec!["train", "--run", &r, "--resume", "--device", "tpu"],
        vec!["train", "--run", &r, "--resume", "--threads", "0"],
        vec!["train", "--run", &r, "--resume", "--source", "/nope/x.npz"],
        vec!["train", "--run", &r, "--resume", "--source", "synthetic:64"],
        vec!["train", "--run", &r, "--resume", "--precision", "fp64"],
        vec!["train", "--source", &npz, "--lr", "-1", "--run", &r],
        vec!["train", "--source", &npz, "--lr", "NaN", "--run", &r],
        vec!["train", "--source", &npz, "--batch-size", "0", "--run", &r],
        vec!["train", "--source", &npz, "--epochs", "0", "--run", &r],
        vec!["train", "--source", &npz, "--threads", "0", "--run", &r],
        vec![
            "train",
            "--source",
            &npz,
            "--threads",
            "100000",
            "--run",
            &r,
        ],
        vec!["train", "--source", &npz, "--device", "tpu", "--run", &r],
        vec!["train", "--source", &npz, "--stem", "bogus", "--run", &r],
        vec!["train", "--source", &npz, "--subset", "0", "--run", &r],
        vec!["train", "--source", "/nope/x.npz", "--run", &r],
        vec![
            "train",
            "--source",
            &npz,
            "--imagenet",
            "/nope/w.safetensors",
            "--run",
            &r,
        ],
        vec!["train", "--source", &npz, "--run", &f],
        // eval
        vec!["eval", "--run", &r, "--split", "dev"],
        vec!["eval", "--run", &r, "--checkpoint", "middle"],
        vec!["eval", "--run", &r, "--device", "tpu"],
        vec!["eval", "--run", "/nope/run"],
        vec!["eval", "--run", &f],
        // bench
        vec!["bench", "--data", "/nope/x.npz", "--out", &o],
        vec!["bench", "--data", &npz, "--threads", "0", "--out", &o],
        vec!["bench", "--data", &npz, "--batch", "0", "--out", &o],
        vec!["bench", "--data", &npz, "--reps", "0", "--out", &o],
        // explain
        ex.to_vec(),
        with(&ex, &["--image", "/nope/x.png"]),
        with(&ex, &["--image", &e]),
        with(&ex, &["--image", &t]),
        with(&ex, &["--split", "test", "--index", "0", "--labels", "flu"]),
        with(
            &ex,
            &["--split", "test", "--index", "0", "--method", "bogus"],
        ),
        with(
            &ex,
            &["--split", "test", "--index", "0", "--stage", "layer9"],
        ),
        with(
            &ex,
            &["--split", "test", "--index", "0", "--colormap", "pink"],
        ),
        with(
            &ex,
            &[
                "--split",
                "test",
                "--index",
                "0",
                "--aug-smooth",
                "sideways",
            ],
        ),
        with(
            &ex,
            &[
                "--split",
                "test",
                "--index",
                "0",
                "--stage",
                "layer4,layer9",
            ],
        ),
        with(&ex, &["--split", "test", "--first", "0"]),
        with(&ex, &["--labels", "top3"]),
        with(&ex, &["--split", "dev", "--index", "0"]),
        with(&ex, &["--split", "test", "--index", "999"]),
        with(
            &ex,
            &["--split", "test", "--index", "0", "--checkpoint", "middle"],
        ),
        vec![
            "explain", "--run", &r, "--out", &f, "--split", "test", "--index", "0",
        ],
        // trust
        with(&tr, &["--methods", "bogus"]),
        with(&tr, &["--stage", "layer9"]),
        with(&tr, &["--images", "0"]),
        with(&tr, &["--labels", "flu"]),
        with(&tr, &["--metrics", "bogus"]),
        with(&tr, &["--steps", "0"]),
        with(&tr, &["--precision", "fp64"]),
        with(&tr, &["--noise", "-1"]),
        with(&tr, &["--tolerance", "-5"]),
        with(&tr, &["--masks", "/nope/m.npz"]),
        with(&tr, &["--split", "dev"]),
        // a run not trained on permuted labels is no data randomisation
        with(&tr, &["--shuffled-run", &r]),
        with(&tr, &["--shuffled-run", "/nope/run"]),
        vec!["trust", "--run", &r, "--out", &f],
    ];
    let mut failures = Vec::new();
    for args in &cases {
        let out = chestcam()
            .args(args)
            .current_dir(d)
            .env("CHESTCAM_OFFLINE", "1")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        let code = out.status.code();
        let clean = matches!(code, Some(1) | Some(2))
            && err.trim().lines().count() == 1
            && err.starts_with("error: ")
            && [
                "panicked",
                "Os {",
                "os error",
                "Exception raised",
                "frame #",
                "libtorch:",
                "RUST_BACKTRACE",
            ]
            .iter()
            .all(|bad| !err.contains(bad));
        if !clean {
            failures.push(format!("{args:?}: exit {code:?}: {err}"));
        }
        if snapshot(&run) != before {
            failures.push(format!("{args:?} changed the run folder"));
            break;
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
    // Nothing was written where outputs were refused.
    assert!(
        !d.join("out").exists(),
        "a refused command created its output folder"
    );
}
