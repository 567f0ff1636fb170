//! Helpers shared by the command-line test files (each `mod common;`).
#![allow(dead_code)]
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The `chestcam` binary under test.
pub fn chestcam() -> Command {
    Command::new(env!("CARGO_BIN_EXE_chestcam"))
}

/// Asserts a run succeeded, showing its stderr when it did not.
pub fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Writes a phantom set with `counts` (train,val,test) and `seed` into
/// `dir` with `chestcam phantoms`; returns the data npz (the first line it
/// prints; the second is the masks file).
pub fn phantom_npz(dir: &Path, counts: &str, seed: &str) -> PathBuf {
    let out = chestcam()
        .args(["phantoms", "--counts", counts, "--seed", seed, "--out"])
        .arg(dir)
        .output()
        .unwrap();
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    let p = PathBuf::from(stdout.lines().next().unwrap());
    assert!(p.is_file(), "{stdout}");
    p
}
