//! What a run folder guarantees, tested as a user meets it, with the
//! `chestcam` binary: killed (SIGKILL) at every point of a checkpoint
//! write and resumed, it ends exactly as an uninterrupted run; a full disk
//! (a real tmpfs, mounted in a private namespace) leaves the previous epoch
//! intact and resumable; a second training into the folder is refused.
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

mod common;
use common::{chestcam, ok, phantom_npz};

const EPOCHS: &str = "4";

/// A small phantom npz shared by every test here.
fn npz() -> &'static Path {
    static NPZ: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &NPZ.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let p = phantom_npz(dir.path(), "64,32,8", "5");
        (dir, p)
    })
    .1
}

/// `chestcam train` into `run` (fresh, or `--resume`), one thread so that
/// two processes compute bit for bit the same.
fn train(run: &Path, resume: bool, kill_at: Option<&str>) -> std::process::Output {
    let mut c = chestcam();
    c.arg("train").arg("--run").arg(run);
    if resume {
        c.arg("--resume");
    } else {
        c.args(["--epochs", EPOCHS, "--batch-size", "32", "--device", "cpu"])
            .args(["--threads", "1", "--source"])
            .arg(npz());
    }
    match kill_at {
        Some(k) => c.env("CHESTCAM_KILL_AT", k),
        None => c.env_remove("CHESTCAM_KILL_AT"),
    };
    c.output().unwrap()
}

/// metrics.jsonl without the wall-clock fields.
fn records(run: &Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| {
            let mut v: serde_json::Value = serde_json::from_str(l).unwrap();
            let o = v.as_object_mut().unwrap();
            o.remove("seconds");
            o.remove("images_per_sec");
            v
        })
        .collect()
}

/// Asserts two run folders hold the same final state: weights, Adam's
/// moments and step, best epoch, and every epoch's numbers.
fn same_run(a: &Path, b: &Path) {
    assert_eq!(
        records(a),
        records(b),
        "metrics of {} and {}",
        a.display(),
        b.display()
    );
    for which in [
        chestcam::train::Checkpoint::Last,
        chestcam::train::Checkpoint::Best,
    ] {
        let (ma, mb) = (
            chestcam::train::read_meta(a, which).unwrap(),
            chestcam::train::read_meta(b, which).unwrap(),
        );
        assert_eq!(
            (ma.epoch, ma.step, ma.best_epoch, ma.val_auc),
            (mb.epoch, mb.step, mb.best_epoch, mb.val_auc),
            "{which}"
        );
        let f = format!("{which}.safetensors");
        let ta = chestcam::tensors_file::read(&a.join(&f)).unwrap();
        let tb = chestcam::tensors_file::read(&b.join(&f)).unwrap();
        assert_eq!(ta.tensors.len(), tb.tensors.len());
        for ((na, xa), (nb, xb)) in ta.tensors.iter().zip(&tb.tensors) {
            assert_eq!(na, nb);
            assert!(xa.equal(xb), "{which}: {na} differs");
        }
    }
    for d in [a, b] {
        let temps: Vec<_> = std::fs::read_dir(d)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(temps.is_empty(), "{temps:?} left in {}", d.display());
    }
}

/// Whatever the moment of a kill, the folder says one consistent thing:
/// `last` (when present) carries as many records as its epoch, `best`
/// exists beside it and is not older than the best epoch `last` names.
fn consistent(run: &Path) {
    let Ok(last) = chestcam::train::read_meta(run, chestcam::train::Checkpoint::Last) else {
        assert!(!run.join("last.safetensors").exists());
        return;
    };
    assert_eq!(last.records.len(), last.epoch);
    let best = chestcam::train::read_meta(run, chestcam::train::Checkpoint::Best).unwrap();
    assert!(
        best.epoch >= last.best_epoch,
        "{} < {}",
        best.epoch,
        last.best_epoch
    );
}

/// An uninterrupted run, the yardstick.
fn reference() -> &'static Path {
    static REF: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &REF.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let run = dir.path().join("ref");
        ok(&train(&run, false, None));
        (dir, run)
    })
    .1
}

#[test]
fn killed_at_every_point_of_a_checkpoint_write_then_resumed_equals_an_uninterrupted_run() {
    let reference = reference();
    // The epochs that improved val AUC (and so wrote best.safetensors).
    let mut improved = Vec::new();
    let mut best = f64::NEG_INFINITY;
    for r in records(reference) {
        let auc = r["val_auc"].as_f64().unwrap();
        if auc > best || improved.is_empty() {
            best = auc;
            improved.push(r["epoch"].as_u64().unwrap());
        }
    }
    // Kill inside epoch 2 where a file is written then (best: its second
    // write when there is one).
    let best_hit = improved.len().min(2);
    let points = [
        "config.json:tmp:1".to_string(),
        "config.json:done:1".to_string(),
        format!("best.safetensors:tmp:{best_hit}"),
        format!("best.safetensors:done:{best_hit}"),
        "last.safetensors:tmp:2".to_string(),
        "last.safetensors:done:2".to_string(),
        "metrics.jsonl:tmp:2".to_string(),
        "metrics.jsonl:done:2".to_string(),
    ];
    let dir = tempfile::tempdir().unwrap();
    for (i, point) in points.iter().enumerate() {
        let run = dir.path().join(format!("k{i}"));
        let out = train(&run, false, Some(point));
        assert_eq!(out.status.signal(), Some(9), "{point}: not killed");
        consistent(&run);
        if run.join("config.json").exists() {
            // Resume with the saved settings (from scratch when no epoch
            // had finished), as a user would after a crash.
            ok(&train(&run, true, None));
        } else {
            // Killed before config.json was in place: nothing to resume;
            // the folder is reusable for a fresh start.
            let out = train(&run, true, None);
            assert!(String::from_utf8_lossy(&out.stderr).contains("no run to resume"));
            ok(&train(&run, false, None));
        }
        same_run(reference, &run);
    }
}

#[test]
fn a_full_disk_keeps_the_previous_epoch_and_the_run_resumes_once_space_is_free() {
    let reference = reference();
    // Room for epoch 1 (best + last) but not for epoch 2's extra copy.
    let size = |f: &str| std::fs::metadata(reference.join(f)).unwrap().len();
    let (best, last) = (size("best.safetensors"), size("last.safetensors"));
    let tmpfs_kib = (best + last + best / 2) / 1024;
    let dir = tempfile::tempdir().unwrap();
    let (mnt, o) = (dir.path().join("mnt"), dir.path().join("o"));
    std::fs::create_dir_all(&mnt).unwrap();
    std::fs::create_dir_all(&o).unwrap();
    let script = format!(
        r#"set -u
mount -t tmpfs -o size={tmpfs_kib}k tmpfs "$M" || exit 90
"$B" train --run "$M/run" --source "$N" --epochs {EPOCHS} --batch-size 32 --device cpu --threads 1 2> "$O/err1"
echo $? > "$O/rc1"
cp -r "$M/run" "$O/after"
mount -o remount,size=4g "$M" || exit 91
"$B" train --run "$M/run" --resume 2> "$O/err2"
echo $? > "$O/rc2"
cp -r "$M/run" "$O/final"
"#
    );
    // A private mount namespace (user namespace too, so root is not needed).
    let out = std::process::Command::new("unshare")
        .args(["-rm", "sh", "-c", &script])
        .env("M", &mnt)
        .env("B", env!("CARGO_BIN_EXE_chestcam"))
        .env("N", npz())
        .env("O", &o)
        .env_remove("CHESTCAM_KILL_AT")
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let read = |f: &str| std::fs::read_to_string(o.join(f)).unwrap();
    let err1 = read("err1");
    assert_eq!(read("rc1").trim(), "1", "{err1}");
    let line = err1.lines().last().unwrap();
    assert!(
        line.starts_with("error: ")
            && line.contains("saving epoch 2 failed")
            && line.contains("disk full")
            && line.contains("free space and resume")
            && !line.contains("os error"),
        "{err1}"
    );
    // The failed file is named: best when epoch 2 improved, else last.
    let failed =
        if records(reference)[1]["val_auc"].as_f64() > records(reference)[0]["val_auc"].as_f64() {
            "best.safetensors"
        } else {
            "last.safetensors"
        };
    assert!(line.contains(failed), "{line}");
    // Epoch 1 intact: loadable, consistent, no temp file left behind.
    let after = o.join("after");
    consistent(&after);
    assert_eq!(
        chestcam::train::read_meta(&after, chestcam::train::Checkpoint::Last)
            .unwrap()
            .epoch,
        1
    );
    assert_eq!(
        chestcam::train::read_meta(&after, chestcam::train::Checkpoint::Best)
            .unwrap()
            .epoch,
        1
    );
    assert_eq!(records(&after).len(), 1);
    chestcam::train::load_model(&after, chestcam::train::Checkpoint::Best, tch::Device::Cpu)
        .unwrap();
    assert_eq!(read("rc2").trim(), "0", "{}", read("err2"));
    same_run(reference, &o.join("final"));
}

#[test]
fn a_second_training_into_the_same_folder_is_refused_while_the_first_runs() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let mut first = chestcam()
        .args([
            "train",
            "--epochs",
            "12",
            "--batch-size",
            "32",
            "--device",
            "cpu",
        ])
        .args(["--threads", "1", "--seed", "3", "--source"])
        .arg(npz())
        .arg("--run")
        .arg(&run)
        .stderr(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // The first holds the lock once its config.json is written.
    let t = std::time::Instant::now();
    while !run.join("config.json").exists() {
        assert!(
            t.elapsed().as_secs() < 120,
            "the first training never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let config = std::fs::read(run.join("config.json")).unwrap();
    for resume in [false, true] {
        let out = train(&run, resume, None);
        assert_eq!(out.status.code(), Some(1));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("is in use by another training")
                && err.contains(&format!("pid {}", first.id())),
            "{err}"
        );
    }
    assert!(first.wait().unwrap().success());
    assert_eq!(std::fs::read(run.join("config.json")).unwrap(), config);
    assert_eq!(records(&run).len(), 12);
    assert_eq!(
        chestcam::train::read_meta(&run, chestcam::train::Checkpoint::Last)
            .unwrap()
            .epoch,
        12
    );
}
