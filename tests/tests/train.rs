//! Training: run folders, resume, NaN stop, refused configs, learnable phantoms.
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::Dataset;
use chestcam::progress::Silent;
use chestcam::train::{train, EpochRecord, TrainConfig};
use std::ops::ControlFlow;

fn phantoms(counts: [usize; 3]) -> Dataset {
    PhantomConfig {
        counts,
        seed: 11,
        ..Default::default()
    }
    .generate()
    .unwrap()
    .0
}

fn quick_cfg() -> TrainConfig {
    TrainConfig {
        source: "synthetic".into(),
        epochs: 3,
        batch_size: 32,
        device: "cpu".into(),
        ..Default::default()
    }
}

fn strip(r: &EpochRecord) -> (usize, f64, f64, f64, f64, f64) {
    (
        r.epoch,
        r.train_loss,
        r.val_loss,
        r.val_auc,
        r.val_acc,
        r.lr,
    )
}

#[test]
fn run_folder_and_resume_equal_an_uninterrupted_run() {
    let data = phantoms([96, 48, 16]);
    let cfg = quick_cfg();
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    let full = train(&cfg, &data, &a, false, &mut Silent, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(full.records.len(), 3);
    for f in [
        "config.json",
        "metrics.jsonl",
        "last.safetensors",
        "last.optim.safetensors",
        "last.json",
        "best.safetensors",
        "best.json",
    ] {
        assert!(a.join(f).exists(), "missing {f}");
    }
    let saved: TrainConfig =
        serde_json::from_str(&std::fs::read_to_string(a.join("config.json")).unwrap()).unwrap();
    assert_eq!(saved, cfg);
    assert_eq!(
        std::fs::read_to_string(a.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count(),
        3
    );
    // Stop after epoch 1, then resume: the same numbers and weights.
    let first = train(&cfg, &data, &b, false, &mut Silent, &mut |_| {
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(first.records.len(), 1);
    let rest = train(&cfg, &data, &b, true, &mut Silent, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(rest.records.len(), 3);
    let sa: Vec<_> = full.records.iter().map(strip).collect();
    let sb: Vec<_> = rest.records.iter().map(strip).collect();
    assert_eq!(sa, sb, "a resumed CPU run must match the uninterrupted one");
    assert_eq!(
        std::fs::read(a.join("last.safetensors")).unwrap(),
        std::fs::read(b.join("last.safetensors")).unwrap()
    );
    assert_eq!(
        (full.best_epoch, full.best_auc),
        (rest.best_epoch, rest.best_auc)
    );
    // A run folder is never overwritten by a new run.
    let e = train(&cfg, &data, &a, false, &mut Silent, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("already holds a run") && e.contains("--resume"),
        "{e}"
    );
}

#[test]
fn bad_configs_are_refused_before_any_work() {
    let data = phantoms([8, 8, 8]);
    let dir = tempfile::tempdir().unwrap();
    for (cfg, needle) in [
        (
            TrainConfig {
                batch_size: 0,
                ..quick_cfg()
            },
            "batch size",
        ),
        (
            TrainConfig {
                stem: Some(chestcam::model::Stem::Imagenet),
                ..quick_cfg()
            },
            "1x1",
        ),
        (
            TrainConfig {
                lr: -1.0,
                ..quick_cfg()
            },
            "learning rate",
        ),
        (
            TrainConfig {
                device: "tpu".into(),
                ..quick_cfg()
            },
            "\"tpu\"",
        ),
    ] {
        let run = dir.path().join(needle.replace(' ', "_").replace('"', ""));
        let e = train(&cfg, &data, &run, false, &mut Silent, &mut |_| {
            ControlFlow::Continue(())
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains(needle), "{e}");
        assert!(!run.exists(), "nothing may be written for a refused config");
    }
    let e = train(
        &quick_cfg(),
        &data,
        &dir.path().join("none"),
        true,
        &mut Silent,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap_err()
    .to_string();
    assert!(e.contains("no run to resume"), "{e}");
}

#[test]
fn a_diverging_loss_stops_with_a_clear_error() {
    let data = phantoms([64, 16, 16]);
    let cfg = TrainConfig {
        lr: 1e30,
        epochs: 5,
        ..quick_cfg()
    };
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("nan");
    let e = train(&cfg, &data, &run, false, &mut Silent, &mut |_| {
        ControlFlow::Continue(())
    })
    .unwrap_err()
    .to_string();
    assert!(
        e.contains("loss became") && e.contains("last good checkpoint"),
        "{e}"
    );
    // Whatever was saved is from a finished epoch whose metrics line exists.
    if run.join("last.json").exists() {
        let meta: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(run.join("last.json")).unwrap()).unwrap();
        let lines = std::fs::read_to_string(run.join("metrics.jsonl"))
            .unwrap()
            .lines()
            .count();
        assert_eq!(meta["epoch"].as_u64().unwrap() as usize, lines);
    }
}

#[test]
fn phantom_patterns_are_learnable() {
    let data = phantoms([600, 200, 16]);
    let cfg = TrainConfig {
        epochs: 3,
        batch_size: 64,
        ..quick_cfg()
    };
    let dir = tempfile::tempdir().unwrap();
    let out = train(
        &cfg,
        &data,
        &dir.path().join("learn"),
        false,
        &mut Silent,
        &mut |_| ControlFlow::Continue(()),
    )
    .unwrap();
    assert!(
        out.best_auc > 0.65,
        "val AUC {} should clearly beat chance (0.5) on phantoms",
        out.best_auc
    );
}
