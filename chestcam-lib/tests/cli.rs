//! The `chestcam` command line: summaries, montages, one-line errors.

mod common;
use common::{chestcam, ok};
use std::process::Command;

/// The real NIH sample beside the checkout (`../shared/data/nih1000`).
fn nih() -> String {
    let dir = std::env::var("CHESTCAM_NIH1000").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/nih1000").to_string()
    });
    format!("{dir}/nih1000.npz")
}

/// Runs chestcam with `args`: exit code 1 (or 2, a usage error such as a
/// value that is none of an option's choices) and one line `error: ...`
/// naming `needle`.
fn fails_in_one_line(args: &[&str], needle: &str) {
    let out = chestcam().args(args).output().unwrap();
    assert!(
        matches!(out.status.code(), Some(1) | Some(2)),
        "{args:?}: {:?}",
        out.status
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{err}");
    for debug in ["panicked", "Os {", "os error", "Error(", "Exception raised"] {
        assert!(
            !err.contains(debug),
            "debug text {debug:?} reached the user: {err}"
        );
    }
}

#[test]
fn data_summary_on_real_xrays() {
    let out = chestcam()
        .args(["data", "--source", &nih(), "--summary"])
        .output()
        .unwrap();
    ok(&out);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(s.contains("images: train 763, val 71, test 166"), "{s}");
    // effusion: 135 of 763 in train (labels.csv)
    assert!(s.contains("135 (17.7%)"), "{s}");
    assert!(s.contains("test: pneumonia, edema, hernia"), "{s}");
    // zlib's CRC-32 of each split's pixels then labels, from numpy
    // (tests/fixtures/nih1000_crc32.py): what a run's checkpoints record.
    assert!(
        s.contains("CRC-32 of pixels and labels: train 9c7b9ab9, val a01578b0, test f84cadcb"),
        "{s}"
    );
    // The same at 64 px (the script on nih1000_64.npz).
    let out = chestcam()
        .args([
            "data",
            "--source",
            &nih().replace("nih1000.npz", "nih1000_64.npz"),
        ])
        .arg("--summary")
        .output()
        .unwrap();
    ok(&out);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("CRC-32 of pixels and labels: train ec7fe348, val d0744f74, test da3f00ab"),
        "{s}"
    );
}

#[test]
fn data_json_and_montage() {
    let dir = tempfile::tempdir().unwrap();
    let png = dir.path().join("m.png");
    let out = chestcam()
        .args(["data", "--source", "synthetic", "--json", "--montage"])
        .arg(&png)
        .output()
        .unwrap();
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["synthetic"], true);
    assert_eq!(v["images"][0], 2000);
    let bytes = std::fs::read(&png).unwrap();
    assert_eq!(&bytes[1..4], b"PNG");
}

#[test]
fn errors_are_one_line_with_nonzero_exit() {
    for (args, needle) in [
        (vec!["data", "--source", "/nope/x.npz"], "/nope/x.npz"),
        (
            vec!["data", "--source", "chestmnist:32"],
            "32 (available: 28, 64, 128, 224)",
        ),
        (
            vec![
                "data",
                "--source",
                "synthetic",
                "--montage",
                "/tmp/m.png",
                "--split",
                "dev",
            ],
            "'dev' for '--split <SPLIT>'; possible values: train, val, test",
        ),
    ] {
        fails_in_one_line(&args, needle);
    }
}

#[test]
fn offline_chestmnist_fails_clearly() {
    let home = tempfile::tempdir().unwrap();
    let out = chestcam()
        .args(["data", "--source", "chestmnist"])
        .env("CHESTCAM_OFFLINE", "1")
        .env("CHESTCAM_HOME", home.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("CHESTCAM_OFFLINE=1") && err.contains("chestmnist.npz"),
        "{err}"
    );
}

#[test]
fn binary_runs_without_ld_library_path_and_keeps_torch_cuda() {
    // cargo puts link-search folders on LD_LIBRARY_PATH for tests: clear it,
    // so only the rpath can find libtorch.
    let exe = env!("CARGO_BIN_EXE_chestcam");
    let out = Command::new(exe)
        .arg("info")
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("cuda available: "));
    let ldd = Command::new("ldd")
        .arg(exe)
        .env_remove("LD_LIBRARY_PATH")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&ldd.stdout);
    assert!(!text.contains("not found"), "{text}");
    let torch_cpu = text
        .lines()
        .find(|l| l.contains("libtorch_cpu.so"))
        .expect("libtorch_cpu linked");
    // When the wheel ships libtorch_cuda.so, it must stay linked (--as-needed would drop it).
    let lib_dir = torch_cpu
        .split("=> ")
        .nth(1)
        .and_then(|p| p.split(" (").next())
        .map(|p| {
            std::path::Path::new(p.trim())
                .parent()
                .unwrap()
                .to_path_buf()
        })
        .unwrap();
    if lib_dir.join("libtorch_cuda.so").exists() {
        assert!(
            text.contains("libtorch_cuda.so"),
            "libtorch_cuda.so dropped by the linker:\n{text}"
        );
    }
}

/// Trains one epoch on 64 nih1000 images into a temp run folder (`--json`).
fn train_tiny() -> (tempfile::TempDir, std::path::PathBuf, std::process::Output) {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = [
        "train",
        "--source",
        &nih(),
        "--epochs",
        "1",
        "--subset",
        "64",
        "--batch-size",
        "32",
        "--device",
        "cpu",
        "--json",
        "--run",
    ];
    let out = chestcam().args(args).arg(&run).output().unwrap();
    ok(&out);
    (dir, run, out)
}

#[test]
fn train_then_eval_on_real_xrays() {
    let (_dir, run, out) = train_tiny();
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["epochs"].as_array().unwrap().len(), 1);
    assert_eq!(v["test"]["per_label"].as_array().unwrap().len(), 14);
    // nih1000's test split has no pneumonia, edema or hernia.
    assert_eq!(
        v["test"]["undefined"],
        serde_json::json!(["pneumonia", "edema", "hernia"])
    );
    for f in [
        "config.json",
        "metrics.jsonl",
        "best.safetensors",
        "last.safetensors",
    ] {
        assert!(run.join(f).exists(), "{f}");
    }
    let out = chestcam()
        .args(["eval", "--split", "val", "--device", "cpu", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    ok(&out);
    let s = String::from_utf8_lossy(&out.stdout);
    assert!(
        s.contains("val split of nih1000.npz") && s.contains("mean") && s.contains("AUC undefined"),
        "{s}"
    );
    // Training again into the same folder is refused.
    let out = chestcam()
        .args(["train", "--source", &nih(), "--epochs", "1", "--run"])
        .arg(&run)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--resume"));
}

#[test]
fn train_and_eval_errors_are_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("r").display().to_string();
    for (args, needle) in [
        (
            vec![
                "train",
                "--source",
                "synthetic",
                "--batch-size",
                "0",
                "--run",
                &run,
            ],
            "batch size",
        ),
        (
            vec![
                "train",
                "--source",
                "synthetic",
                "--stem",
                "imagenet",
                "--run",
                &run,
            ],
            "1x1",
        ),
        (
            vec![
                "train",
                "--source",
                "synthetic",
                "--stem",
                "tiny",
                "--run",
                &run,
            ],
            "'tiny' for '--stem <STEM>'; possible values: small, imagenet",
        ),
        (vec!["eval", "--run", "/nope/run"], "/nope/run"),
    ] {
        fails_in_one_line(&args, needle);
    }
    assert!(!std::path::Path::new(&run).exists());
}

/// `a` and `b` are the same JSON, numbers within `tol`.
fn json_close(a: &serde_json::Value, b: &serde_json::Value, tol: f64, at: &str) {
    use serde_json::Value as V;
    match (a, b) {
        (V::Number(x), V::Number(y)) => {
            let (x, y) = (x.as_f64().unwrap(), y.as_f64().unwrap());
            assert!((x - y).abs() <= tol, "{at}: {x} vs {y}");
        }
        (V::Array(x), V::Array(y)) => {
            assert_eq!(x.len(), y.len(), "{at}");
            for (i, (x, y)) in x.iter().zip(y).enumerate() {
                json_close(x, y, tol, &format!("{at}[{i}]"));
            }
        }
        (V::Object(x), V::Object(y)) => {
            assert_eq!(
                x.keys().collect::<Vec<_>>(),
                y.keys().collect::<Vec<_>>(),
                "{at}"
            );
            for (k, v) in x {
                json_close(v, &y[k], tol, &format!("{at}.{k}"));
            }
        }
        _ => assert_eq!(a, b, "{at}"),
    }
}

#[test]
fn explain_writes_panels_gifs_and_json() {
    let (dir, run, _) = train_tiny();
    let ex = dir.path().join("ex");
    // Without an image, explain says what it needs; --first counts in the
    // test split unless --split names another.
    let run_s = run.display().to_string();
    fails_in_one_line(
        &["explain", "--run", &run_s, "--out", "unused"],
        "give --image FILE, or --index I or --first N (of --split, default test)",
    );
    let out = chestcam()
        .args(["explain", "--first", "2", "--labels", "top2", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    ok(&out);
    for f in [
        "test_0_panel.png",
        "test_0_fade.gif",
        "test_0_labels.gif",
        "test_1_panel.png",
        "test_1.json",
    ] {
        assert!(ex.join(f).exists(), "{f}");
    }
    assert_eq!(
        &std::fs::read(ex.join("test_0_fade.gif")).unwrap()[..6],
        b"GIF89a"
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ex.join("test_1.json")).unwrap()).unwrap();
    assert_eq!(j["probabilities"].as_object().unwrap().len(), 14);
    assert_eq!(j["shown"].as_array().unwrap().len(), 2);
    // What the JSON was made from: run, checkpoint, image, stages.
    let c = &j["context"];
    assert_eq!(
        c["run"],
        std::fs::canonicalize(&run).unwrap().display().to_string()
    );
    assert_eq!(
        (&c["checkpoint"], &c["split"], &c["index"], &c["stages"]),
        (
            &serde_json::json!("best"),
            &serde_json::json!("test"),
            &serde_json::json!(1),
            &serde_json::json!(["layer4"])
        ),
        "{c}"
    );
    assert!(
        c["epoch"].as_u64().is_some() && c["data"].is_string(),
        "{c}"
    );
    assert_eq!(c["same_split_as_run"], true, "{c}");
    assert_eq!(
        c["split_fingerprint"]["crc32"].as_str().map(str::len),
        Some(8),
        "{c}"
    );
    // --html: one page with both images, two methods, two stages, every
    // label; it is refused like any other earlier output.
    let page_args = [
        "explain",
        "--split",
        "test",
        "--first",
        "2",
        "--method",
        "gradcam,hirescam",
        "--html",
        "--html-stages",
        "layer4,layer3",
        "--trust-steps",
        "2",
        "--overwrite",
        "--run",
    ];
    let out = chestcam()
        .args(page_args)
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    ok(&out);
    let page_path = ex.join("viewer.html");
    assert!(String::from_utf8_lossy(&out.stdout)
        .lines()
        .any(|l| l == page_path.to_string_lossy()));
    let page = std::fs::read_to_string(&page_path).unwrap();
    assert!(page.starts_with("<!DOCTYPE html>") && !page.contains("https://"));
    assert_eq!(
        page.matches("data:image/png;base64,").count(),
        2 * (1 + 4 * 14)
    );
    for view in [
        r#"{"method":"GradCAM","stage":"layer4"}"#,
        r#"{"method":"HiResCAM","stage":"layer3"}"#,
    ] {
        assert!(page.contains(view), "{view}");
    }
    assert!(page.contains(r#""name":"test_1""#));
    // With --html the pictures' explanation is cut from the viewer's view of
    // all 14 labels, not made again: the JSON equals the plain run's (the
    // trust lines' forwards are batched differently, hence the tolerance).
    let (ex_plain, ex_html) = (dir.path().join("ex_plain"), dir.path().join("ex_html"));
    for (out_dir, html) in [(&ex_plain, None), (&ex_html, Some("--html"))] {
        let out = chestcam()
            .args([
                "explain", "--split", "test", "--first", "2", "--labels", "top2",
            ])
            .args(html)
            .arg("--run")
            .arg(&run)
            .arg("--out")
            .arg(out_dir)
            .output()
            .unwrap();
        ok(&out);
    }
    for name in ["test_0.json", "test_1.json"] {
        let read = |d: &std::path::Path| -> serde_json::Value {
            serde_json::from_str(&std::fs::read_to_string(d.join(name)).unwrap()).unwrap()
        };
        let (plain, cut) = (read(&ex_plain), read(&ex_html));
        assert!(
            plain["trust"].as_object().is_some_and(|t| t.len() == 2),
            "{plain}"
        );
        json_close(&plain, &cut, 1e-6, name);
    }
    let only_page = dir.path().join("only_page");
    std::fs::create_dir_all(&only_page).unwrap();
    std::fs::write(only_page.join("viewer.html"), "mine").unwrap();
    let again: Vec<&str> = page_args
        .iter()
        .copied()
        .filter(|a| *a != "--overwrite")
        .collect();
    let out = chestcam()
        .args(again)
        .arg(&run)
        .arg("--out")
        .arg(&only_page)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("viewer.html already exists"),
        "{err}"
    );
    assert_eq!(
        std::fs::read_to_string(only_page.join("viewer.html")).unwrap(),
        "mine"
    );
    let out = chestcam()
        .args([
            "explain",
            "--split",
            "test",
            "--index",
            "0",
            "--method",
            "gradcam,hirescam",
        ])
        .args(["--overwrite", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && err.contains("several need --html"),
        "{err}"
    );
    // --maps both: the unnormalised maps beside the scaled ones, in an npz
    // numpy reads; the scaled maps are the raw ones ReLU'd, scaled,
    // upsampled and scaled again, as the engine makes them (checked with
    // torch's own bilinear upsampling, in the venv's python).
    let out = chestcam()
        .args([
            "explain", "--split", "test", "--index", "1", "--labels", "top2", "--maps",
        ])
        .args(["both", "--trust-steps", "0", "--overwrite", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    ok(&out);
    let npz = ex.join("test_1_maps.npz");
    assert!(String::from_utf8_lossy(&out.stdout).contains("test_1_maps.npz"));
    let check = r#"
import sys, numpy as np, torch, torch.nn.functional as F
d = np.load(sys.argv[1])
assert sorted(d.keys()) == ["labels", "raw", "scaled"], list(d.keys())
raw, scaled = torch.from_numpy(d["raw"]), torch.from_numpy(d["scaled"])
assert raw.dtype == torch.float32 and d["labels"].dtype == np.int64 and len(d["labels"]) == 2
def scale(m):
    m = m - m.amin((-2, -1), keepdim=True)
    return m / (m.amax((-2, -1), keepdim=True) + 1e-7)
up = F.interpolate(scale(raw.relu())[:, None], size=scaled.shape[-2:], mode="bilinear", align_corners=False)[:, 0]
diff = (scale(up.relu()) - scaled).abs().max().item()
assert diff < 1e-5, diff
assert raw.min() < 0, "raw maps keep their negative part"
print(d["labels"].tolist(), diff)
"#;
    let py = std::process::Command::new("python")
        .args(["-c", check])
        .arg(&npz)
        .output()
        .expect("python (make setup)");
    assert!(
        py.status.success(),
        "{}",
        String::from_utf8_lossy(&py.stderr)
    );
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ex.join("test_1.json")).unwrap()).unwrap();
    let shown: Vec<String> = j["shown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_string())
        .collect();
    let listed = String::from_utf8_lossy(&py.stdout);
    let idx: Vec<usize> = shown
        .iter()
        .map(|n| chestcam::data::registry::label_index(n).unwrap())
        .collect();
    assert_eq!(
        listed.split(']').next().unwrap(),
        format!("{idx:?}").trim_end_matches(']')
    );
    // A user's RGB, non-square JPEG and a grey PNG.
    let rgb = image::RgbImage::from_fn(300, 200, |x, y| {
        image::Rgb([(x % 256) as u8, (y % 256) as u8, 90])
    });
    let jpg = dir.path().join("mine.jpg");
    rgb.save(&jpg).unwrap();
    let out = chestcam()
        .args([
            "explain",
            "--labels",
            "effusion,nodule",
            "--method",
            "gradcam++",
            "--stage",
            "layer3,layer4",
            "--eigen-smooth",
            "--aug-smooth",
            "shifts",
            "--image",
        ])
        .arg(&jpg)
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    ok(&out);
    let j: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(ex.join("mine.jpg.json")).unwrap()).unwrap();
    assert_eq!(j["shown"], serde_json::json!(["effusion", "nodule"]));
    assert_eq!(j["method"], "GradCAM++");
    let c = &j["context"];
    assert_eq!(
        c["image"],
        std::fs::canonicalize(&jpg).unwrap().display().to_string()
    );
    assert_eq!(
        (&c["stages"], &c["eigen_smooth"], &c["aug_smooth"]),
        (
            &serde_json::json!(["layer3", "layer4"]),
            &serde_json::json!(true),
            &serde_json::json!("shifts")
        ),
        "{c}"
    );
    assert!(c.get("split").is_none() && c.get("index").is_none(), "{c}");
    // Names keep their script and extension, so they cannot collide; an
    // earlier output is never replaced silently; stdout lists what was written.
    let gray = image::GrayImage::from_fn(64, 64, |x, y| image::Luma([((x * y) % 256) as u8]));
    let mut written = Vec::new();
    for name in ["胸部.png", "肺部.png", "a/good.png", "b/good.jpg"] {
        let p = dir.path().join("in").join(name);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        gray.save(&p).unwrap();
        let out = chestcam()
            .args(["explain", "--trust-steps", "0", "--image"])
            .arg(&p)
            .arg("--run")
            .arg(&run)
            .arg("--out")
            .arg(&ex)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let listed: Vec<String> = String::from_utf8_lossy(&out.stdout)
            .lines()
            .map(String::from)
            .collect();
        assert_eq!(listed.len(), 4, "{listed:?}");
        for l in &listed {
            assert!(std::path::Path::new(l).is_file(), "{l}");
        }
        written.extend(listed);
    }
    let unique: std::collections::BTreeSet<&String> = written.iter().collect();
    assert_eq!(unique.len(), 16, "{written:?}");
    assert!(ex.join("胸部.png_panel.png").is_file() && ex.join("good.jpg.json").is_file());
    let again = dir.path().join("in/a/good.png").display().to_string();
    let runs = run.display().to_string();
    let exs = ex.display().to_string();
    let before = std::fs::read(ex.join("good.png.json")).unwrap();
    fails_in_one_line(
        &["explain", "--image", &again, "--run", &runs, "--out", &exs],
        "good.png_panel.png already exists (and 3 more): pass --overwrite",
    );
    fails_in_one_line(
        &[
            "explain", "--split", "test", "--first", "2", "--run", &runs, "--out", &exs,
        ],
        "test_0_panel.png already exists (and 7 more)",
    );
    assert_eq!(std::fs::read(ex.join("good.png.json")).unwrap(), before);
    let out = chestcam()
        .args([
            "explain",
            "--overwrite",
            "--labels",
            "all",
            "--image",
            &again,
        ])
        .args(["--run", &runs, "--out", &exs])
        .output()
        .unwrap();
    ok(&out);
    assert_ne!(std::fs::read(ex.join("good.png.json")).unwrap(), before);
    // Bad input: one line, non-zero exit.
    let empty = dir.path().join("empty.png");
    std::fs::write(&empty, b"").unwrap();
    let runs = run.display().to_string();
    let exs = ex.display().to_string();
    let emptys = empty.display().to_string();
    let jpgs = jpg.display().to_string();
    for (args, needle) in [
        (
            vec!["explain", "--image", &emptys, "--run", &runs, "--out", &exs],
            "empty.png",
        ),
        (
            vec![
                "explain",
                "--image",
                "/nope/x.png",
                "--run",
                &runs,
                "--out",
                &exs,
            ],
            "/nope/x.png",
        ),
        (
            vec![
                "explain", "--image", &jpgs, "--labels", "flu", "--run", &runs, "--out", &exs,
            ],
            "\"flu\"",
        ),
        (
            vec![
                "explain",
                "--image",
                &jpgs,
                "--run",
                "/nope/run",
                "--out",
                &exs,
            ],
            "/nope/run",
        ),
        (
            vec![
                "explain", "--split", "test", "--index", "999", "--run", &runs, "--out", &exs,
            ],
            "999",
        ),
    ] {
        fails_in_one_line(&args, needle);
    }
}

#[test]
fn trust_writes_its_report_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = chestcam()
        .args([
            "train",
            "--source",
            "synthetic",
            "--epochs",
            "1",
            "--subset",
            "64",
            "--batch-size",
            "32",
            "--device",
            "cpu",
            "--json",
            "--run",
        ])
        .arg(&run)
        .output()
        .unwrap();
    ok(&out);
    let report = dir.path().join("trust");
    let out = chestcam()
        .args([
            "trust",
            "--images",
            "6",
            "--labels",
            "effusion,infiltration",
            "--methods",
            "gradcam,eigencam",
            "--steps",
            "4",
            "--device",
            "cpu",
            "--precision",
            "bf16",
            "--run",
        ])
        .arg(&run)
        .arg("--out")
        .arg(&report)
        .output()
        .unwrap();
    ok(&out);
    let listed = String::from_utf8_lossy(&out.stdout);
    for f in [
        "trust.json",
        "trust.md",
        "deletion.svg",
        "insertion.svg",
        "cascade.svg",
        "cascade_strip.png",
    ] {
        assert!(
            report.join(f).exists() && listed.contains(f),
            "{f}: {listed}"
        );
    }
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(report.join("trust.json")).unwrap()).unwrap();
    // The methods asked for, then the two baselines; phantom masks found by themselves.
    let names: Vec<&str> = j["sources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["method"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["GradCAM", "EigenCAM", "RandomCAM", "CentrePrior"]);
    assert_eq!(j["truth"], "phantom masks (regenerated)");
    assert_eq!(j["labels"], serde_json::json!(["effusion", "infiltration"]));
    // The perturbed images' forwards ran in bf16, and the report says so.
    assert_eq!(j["precision"], "bf16");
    let road = &j["sources"][0]["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "road_combined")
        .unwrap()["values"]["values"];
    assert_eq!(road.as_array().unwrap().len(), 6);
    let md = std::fs::read_to_string(report.join("trust.md")).unwrap();
    assert!(
        md.contains("| RandomCAM (baseline) |")
            && md.contains("pointing_game")
            && md.contains("forwards in bf16 autocast"),
        "{md}"
    );
    // explain's JSON carries each map's trust line.
    let ex = dir.path().join("ex");
    let out = chestcam()
        .args([
            "explain", "--split", "test", "--index", "0", "--labels", "top2", "--device", "cpu",
            "--run",
        ])
        .arg(&run)
        .arg("--out")
        .arg(&ex)
        .output()
        .unwrap();
    ok(&out);
    let e: serde_json::Value =
        serde_json::from_slice(&std::fs::read(ex.join("test_0.json")).unwrap()).unwrap();
    let t = e["trust"].as_object().unwrap();
    assert_eq!(t.len(), 2);
    for v in t.values() {
        let (a, r) = (
            v["deletion_auc"].as_f64().unwrap(),
            v["random_cam_deletion_auc"].as_f64().unwrap(),
        );
        assert!((0.0..=1.0).contains(&a) && (0.0..=1.0).contains(&r));
        assert_eq!(v["beats_random"], a < r);
    }
    // More images asked for than a split has: all of them, and a line that
    // says so (a 4-image test split of the run's size).
    let few = dir.path().join("few");
    for (cmd, flag, extra, said) in [
        (
            "trust",
            "--images",
            ["--methods", "gradcam", "--metrics", "localisation"],
            "--images 50: the test split has 4 images; all of them are checked",
        ),
        (
            "explain",
            "--first",
            ["--labels", "top1", "--trust-steps", "0"],
            "--first 50: the test split has 4 images; all of them are explained",
        ),
    ] {
        let out = chestcam()
            .args([
                cmd,
                "--source",
                "synthetic:28:8,4,4",
                flag,
                "50",
                "--device",
                "cpu",
            ])
            .args(extra)
            .arg("--run")
            .arg(&run)
            .arg("--out")
            .arg(few.join(cmd))
            .output()
            .unwrap();
        ok(&out);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(said), "{cmd}: {err}");
    }
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(few.join("trust/trust.json")).unwrap()).unwrap();
    assert_eq!(j["images"], serde_json::json!([0, 1, 2, 3]));
    let explained = std::fs::read_dir(few.join("explain"))
        .unwrap()
        .filter(|e| {
            e.as_ref()
                .unwrap()
                .path()
                .extension()
                .is_some_and(|x| x == "json")
        })
        .count();
    assert_eq!(explained, 4);
    // Bad arguments: one line, non-zero exit, the report folder untouched.
    let before: Vec<_> = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
        .collect();
    let runs = run.display().to_string();
    let reps = report.display().to_string();
    let file = report.join("trust.md").display().to_string();
    let missing = dir.path().join("nope.csv").display().to_string();
    for (extra, needle) in [
        (vec!["--methods", "fastcam"], "'fastcam' for '--methods <METHODS>'"),
        (vec!["--metrics", "beauty"], "'beauty' for '--metrics <METRICS>'; possible values: localisation, deletion, road, confidence, randomisation, labels, all"),
        (vec!["--images", "0"], "--images"),
        (vec!["--stage", "layer9"], "'layer9' for '--stage <STAGE>'; possible values: layer1, layer2, layer3, layer4"),
        (vec!["--labels", "flu"], "\"flu\""),
        (vec!["--steps", "0"], "--steps"),
        (vec!["--noise=-1"], "--noise"),
        (vec!["--split", "dev"], "dev"),
        (vec!["--boxes", &missing, "--names", &missing], "nope.csv"),
        (vec!["--masks", &missing], "nope.csv"),
    ] {
        let mut args = vec!["trust", "--run", &runs, "--out", &reps, "--device", "cpu"];
        args.extend(extra);
        fails_in_one_line(&args, needle);
    }
    fails_in_one_line(
        &["trust", "--run", "/nope/run", "--out", &reps],
        "/nope/run",
    );
    fails_in_one_line(&["trust", "--run", &runs, "--out", &file], "not a folder");
    fails_in_one_line(
        &[
            "trust",
            "--run",
            &runs,
            "--images",
            "2",
            "--metrics",
            "localisation",
            "--out",
            "/proc/chestcam-trust",
        ],
        "/proc/chestcam-trust",
    );
    let after: Vec<_> = std::fs::read_dir(&report)
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().modified().unwrap())
        .collect();
    assert_eq!(before, after);
}

#[test]
fn closed_or_full_output_and_oversized_requests_never_panic() {
    // `chestcam data ... | head -0`: the reader is gone before the summary is written.
    let mut child = chestcam()
        .args(["data", "--source", "synthetic"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success() && !err.contains("panicked"),
        "{:?} {err}",
        out.status
    );
    // `chestcam train ... 2>&1 | head -1`: stderr (its data, step, epoch
    // and progress lines) closed from the start. It used to end in a panic
    // (exit 101) at the first line; the training now finishes, run folder
    // and all.
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let mut child = chestcam()
        .args(["train", "--source", "synthetic:28:64,32,32", "--run"])
        .arg(&run)
        .args(ONE_SMALL_EPOCH)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stderr.take());
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}");
    assert!(run.join("best.safetensors").is_file() && run.join("metrics.jsonl").is_file());
    // Output to a full disk: one line saying so.
    let full = std::fs::File::create("/dev/full").unwrap();
    let out = chestcam().arg("info").stdout(full).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("standard output: disk full"), "{err}");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().display().to_string();
    fails_in_one_line(
        &["phantoms", "--counts", "99999999999,1,1", "--out", &dir],
        "at most 8 GiB",
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
    let npz = nih();
    for (flag, value, needle) in [
        ("--threads", "0", "0 threads"),
        ("--threads", "100000", "100000 threads"),
        ("--batch", "0", "--batch"),
        ("--reps", "0", "--reps"),
    ] {
        fails_in_one_line(
            &["bench", "--data", &npz, flag, value, "--out", &dir],
            needle,
        );
    }
    fails_in_one_line(
        &[
            "train",
            "--source",
            "synthetic",
            "--threads",
            "100000",
            "--run",
            &dir,
        ],
        "100000 threads",
    );
}

/// CRC-32 (PNG's) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut c = 0xFFFF_FFFFu32;
    for &b in bytes {
        c ^= b as u32;
        for _ in 0..8 {
            c = if c & 1 == 1 {
                0xEDB8_8320 ^ (c >> 1)
            } else {
                c >> 1
            };
        }
    }
    !c
}

#[test]
fn explain_refuses_truncated_and_oversized_images() {
    let (dir, run, _) = train_tiny();
    let runs = run.display().to_string();
    let ex = dir.path().join("ex").display().to_string();
    // A real JPEG cut to two thirds: decoders fill the rest with grey.
    let img = image::RgbImage::from_fn(120, 90, |x, y| {
        image::Rgb([(x * 2) as u8, (y * 2) as u8, 40])
    });
    let full = dir.path().join("full.jpg");
    img.save(&full).unwrap();
    let bytes = std::fs::read(&full).unwrap();
    let cut = dir.path().join("cut.jpg");
    std::fs::write(&cut, &bytes[..bytes.len() * 2 / 3]).unwrap();
    let cuts = cut.display().to_string();
    fails_in_one_line(
        &["explain", "--image", &cuts, "--run", &runs, "--out", &ex],
        "truncated",
    );
    // A PNG whose header says 20000 x 20000 (430 KB in the wild, 2.9 GB decoded).
    let mut png = Vec::new();
    image::GrayImage::new(1, 1)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .unwrap();
    png[16..20].copy_from_slice(&20000u32.to_be_bytes());
    png[20..24].copy_from_slice(&20000u32.to_be_bytes());
    let crc = crc32(&png[12..29]);
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let huge = dir.path().join("huge.png");
    std::fs::write(&huge, &png).unwrap();
    let huges = huge.display().to_string();
    fails_in_one_line(
        &["explain", "--image", &huges, "--run", &runs, "--out", &ex],
        "20000x20000 px",
    );
    assert!(
        !dir.path().join("ex").exists(),
        "nothing written for refused images"
    );
    // Requests that used to do nothing or something else than asked.
    fails_in_one_line(
        &[
            "explain", "--split", "test", "--first", "0", "--run", &runs, "--out", &ex,
        ],
        "--first",
    );
    // (--index without --split counts in the test split: see
    // explain_writes_panels_gifs_and_json.)
    fails_in_one_line(
        &[
            "explain", "--split", "dev", "--index", "0", "--run", &runs, "--out", &ex,
        ],
        "dev",
    );
    // The whole JPEG is fine; a label asked for twice is shown once.
    let fulls = full.display().to_string();
    let out = chestcam()
        .args([
            "explain",
            "--image",
            &fulls,
            "--labels",
            "effusion,nodule,effusion",
            "--trust-steps",
            "0",
            "--run",
            &runs,
            "--out",
            &ex,
        ])
        .output()
        .unwrap();
    ok(&out);
    let j: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("ex/full.jpg.json")).unwrap())
            .unwrap();
    assert_eq!(j["shown"], serde_json::json!(["effusion", "nodule"]));
}

#[test]
fn data_checks_split_and_montage_name_first() {
    let d = tempfile::tempdir().unwrap();
    let jpg = d.path().join("m.jpg").display().to_string();
    fails_in_one_line(
        &["data", "--source", "synthetic", "--split", "nonsense"],
        "nonsense",
    );
    fails_in_one_line(
        &["data", "--source", "synthetic", "--montage", &jpg],
        ".png",
    );
    assert_eq!(std::fs::read_dir(d.path()).unwrap().count(), 0);
}

#[test]
fn files_where_folders_belong_and_corrupt_weights_are_named() {
    let (dir, run, _) = train_tiny();
    let d = dir.path().display().to_string();
    fails_in_one_line(&["data", "--source", &d], "is a folder");
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"x").unwrap();
    let f = file.display().to_string();
    fails_in_one_line(
        &[
            "train",
            "--source",
            "synthetic",
            "--epochs",
            "1",
            "--run",
            &f,
        ],
        "is a file, not a run folder",
    );
    // An output folder where a file stands: said in those words.
    let run_s = run.display().to_string();
    for (args, needle) in [
        (
            vec![
                "explain", "--device", "cpu", "--index", "0", "--run", &run_s, "--out", &f,
            ],
            "a-file: is a file, where a folder is needed",
        ),
        (
            vec!["phantoms", "--counts", "4,4,4", "--out", &f],
            "a-file: is a file, where a folder is needed",
        ),
        (
            vec![
                "trust", "--device", "cpu", "--images", "2", "--run", &run_s, "--out", &f,
            ],
            "a-file exists and is not a folder",
        ),
    ] {
        fails_in_one_line(&args, needle);
    }
    // Weights turned to NaN: the error names the weights file, not an overlay.
    let w = run.join("best.safetensors");
    let good = std::fs::read(&w).unwrap();
    let file = chestcam::tensors_file::read(&w).unwrap();
    let bad: Vec<(String, tch::Tensor)> = file
        .tensors
        .iter()
        .map(|(n, t)| {
            let t = if n == "layer4.1.conv2.weight" {
                t * f64::NAN
            } else {
                t.shallow_clone()
            };
            (n.clone(), t)
        })
        .collect();
    let refs: Vec<(&str, &tch::Tensor)> = bad.iter().map(|(n, t)| (n.as_str(), t)).collect();
    chestcam::tensors_file::write(&w, &refs, file.metadata.clone()).unwrap();
    let runs = run.display().to_string();
    let ex = dir.path().join("ex").display().to_string();
    let explain = [
        "explain", "--split", "test", "--index", "0", "--run", &runs, "--out", &ex,
    ];
    fails_in_one_line(
        &explain,
        "best.safetensors: parameter layer4.1.conv2.weight holds NaN",
    );
    // A cut-short checkpoint and a file that is not one are named, in words.
    std::fs::write(&w, &good[..good.len() / 2]).unwrap();
    fails_in_one_line(
        &explain,
        "best.safetensors: a truncated or corrupt safetensors file",
    );
    std::fs::write(&w, b"not weights at all, just text").unwrap();
    fails_in_one_line(&explain, "best.safetensors: not a safetensors file");
}

/// `train` options for one epoch on 32 images, on the CPU.
const ONE_SMALL_EPOCH: [&str; 8] = [
    "--epochs",
    "1",
    "--subset",
    "32",
    "--batch-size",
    "32",
    "--device",
    "cpu",
];

#[test]
fn resume_refuses_other_options_and_a_relative_source_is_recorded_absolute() {
    let dir = tempfile::tempdir().unwrap();
    let nih = nih();
    let npz = std::path::Path::new(&nih);
    // The source given relative to the working folder.
    let out = chestcam()
        .current_dir(npz.parent().unwrap())
        .args(["train", "--source", "nih1000.npz"])
        .args(ONE_SMALL_EPOCH)
        .arg("--run")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    ok(&out);
    let cfg: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    let recorded = cfg["source"].as_str().unwrap();
    assert_eq!(std::path::Path::new(recorded), npz.canonicalize().unwrap());
    let run = dir.path().join("run").display().to_string();
    // Eval from another folder finds the data.
    let out = chestcam()
        .current_dir(dir.path())
        .args(["eval", "--device", "cpu", "--run", &run])
        .output()
        .unwrap();
    ok(&out);
    let config_before = std::fs::read(dir.path().join("run/config.json")).unwrap();
    let out = chestcam()
        .args([
            "train", "--resume", "--lr", "0.01", "--epochs", "3", "--run", &run,
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("--lr, --epochs")
            && err.contains("--cudnn-benchmark, --data-on-device")
            && err.trim().lines().count() == 1,
        "{err}"
    );
    assert_eq!(
        std::fs::read(dir.path().join("run/config.json")).unwrap(),
        config_before
    );
    // Where the data lives is a CUDA choice: on the CPU it is in host memory.
    let elsewhere = dir.path().join("elsewhere").display().to_string();
    fails_in_one_line(
        &[
            "train",
            "--source",
            &nih,
            "--device",
            "cpu",
            "--data-on-device",
            "true",
            "--run",
            &elsewhere,
        ],
        "--data-on-device",
    );
    assert!(!dir.path().join("elsewhere").exists());
    // Resuming a folder without a run says so before loading any data.
    let empty = dir.path().join("empty").display().to_string();
    fails_in_one_line(&["train", "--resume", "--run", &empty], "no run to resume");
    assert!(!dir.path().join("empty").exists());
}

#[test]
fn a_moved_data_file_is_named_and_source_reads_its_new_place() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("nih.npz");
    std::fs::copy(nih(), &first).unwrap();
    let run = dir.path().join("run").display().to_string();
    let out = chestcam()
        .args(["train", "--source"])
        .arg(&first)
        .args(ONE_SMALL_EPOCH)
        .args(["--run", &run])
        .output()
        .unwrap();
    ok(&out);
    let eval = |extra: &[&str]| {
        let out = chestcam()
            .args(["eval", "--device", "cpu", "--json", "--run", &run])
            .args(extra)
            .output()
            .unwrap();
        ok(&out);
        serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
    };
    let before = eval(&[]);
    let moved = dir.path().join("moved.npz");
    std::fs::rename(&first, &moved).unwrap();
    let out_dir = dir.path().join("out").display().to_string();
    // Every command that reads the run's data names the run, the missing
    // file and the way out.
    for args in [
        vec!["eval", "--device", "cpu", "--run", &run],
        vec![
            "explain", "--device", "cpu", "--split", "test", "--index", "0", "--out", &out_dir,
            "--run", &run,
        ],
        vec![
            "trust", "--device", "cpu", "--images", "2", "--out", &out_dir, "--run", &run,
        ],
    ] {
        fails_in_one_line(
            &args,
            "which is no longer there; give its new place with --source",
        );
        fails_in_one_line(&args, &first.display().to_string());
    }
    // --source at the new place: the same evaluation, number for number, of
    // the same images (the JSON says where they were read).
    let moved_s = moved.display().to_string();
    let mut after = eval(&["--source", &moved_s]);
    assert_eq!(after["data"].as_str(), Some(moved_s.as_str()));
    assert_eq!(after["same_split_as_run"], serde_json::json!(true));
    assert_eq!(
        (&after["split"], &after["checkpoint"], &after["epoch"]),
        (
            &serde_json::json!("test"),
            &serde_json::json!("best"),
            &serde_json::json!(1)
        )
    );
    // nih1000's test split (tests/fixtures/nih1000_crc32.py).
    assert_eq!(
        after["split_fingerprint"],
        serde_json::json!({"images": 166, "size": 28, "crc32": "f84cadcb"})
    );
    after["data"] = before["data"].clone();
    assert_eq!(after, before);
    let out = chestcam()
        .args([
            "explain", "--device", "cpu", "--split", "test", "--index", "0", "--out", &out_dir,
            "--run", &run, "--source", &moved_s,
        ])
        .output()
        .unwrap();
    ok(&out);
    assert!(dir.path().join("out/test_0.json").is_file());
    // Another source must have the run's image size.
    fails_in_one_line(
        &[
            "eval",
            "--device",
            "cpu",
            "--run",
            &run,
            "--source",
            "synthetic:64",
        ],
        "has 64 px images but the model was trained on 28 px",
    );
    fails_in_one_line(
        &[
            "explain", "--run", &run, "--out", &out_dir, "--image", "x.png", "--source", &moved_s,
        ],
        "cannot be used with",
    );
    // train --resume too: the moved file named, then continued from its
    // new place (recorded, so a later resume finds it), on the same size.
    set_epochs(&dir.path().join("run"), 2);
    let resume = ["train", "--resume", "--run", &run];
    fails_in_one_line(
        &resume,
        "which is no longer there; give its new place with --source",
    );
    fails_in_one_line(
        &[&resume[..], &["--source", "synthetic:64"]].concat(),
        "was trained on 28 px images, but synthetic phantoms (64 px",
    );
    let out = chestcam()
        .args(resume)
        .args(["--source", &moved_s])
        .output()
        .unwrap();
    ok(&out);
    let cfg = config(&dir.path().join("run"));
    assert_eq!(cfg["source"].as_str(), Some(moved_s.as_str()));
    assert_eq!(records(&dir.path().join("run")).len(), 2);
}

#[test]
fn other_images_are_refused_on_resume_and_named_on_eval() {
    let dir = tempfile::tempdir().unwrap();
    // Phantoms of two seeds (the file name says the seed).
    let phantoms = |seed: &str| -> String {
        let out = chestcam()
            .args(["phantoms", "--counts", "64,32,32", "--seed", seed, "--out"])
            .arg(dir.path().join("data"))
            .output()
            .unwrap();
        ok(&out);
        let s = String::from_utf8(out.stdout).unwrap();
        s.lines().next().unwrap().to_string()
    };
    let file = phantoms("0");
    let run_dir = dir.path().join("run");
    let run = run_dir.display().to_string();
    let out = chestcam()
        .args(["train", "--source", &file])
        .args(ONE_SMALL_EPOCH)
        .args(["--run", &run])
        .output()
        .unwrap();
    ok(&out);
    set_epochs(&run_dir, 2);
    let config_before = std::fs::read(run_dir.join("config.json")).unwrap();
    let eval = |extra: &[&str]| -> String {
        let out = chestcam()
            .args(["eval", "--device", "cpu", "--run", &run])
            .args(extra)
            .output()
            .unwrap();
        ok(&out);
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let other = "is not the one";
    assert!(!eval(&[]).contains(other));
    // The file replaced at its place by other images of the same size.
    std::fs::copy(phantoms("1"), &file).unwrap();
    let resume = ["train", "--resume", "--run", &run];
    fails_in_one_line(&resume, "was trained on other images than");
    fails_in_one_line(&resume, "its train split was 64 images of 28 px, CRC-32 ");
    // Another data set of the run's size, given as its new place.
    fails_in_one_line(
        &[&resume[..], &["--source", "synthetic"]].concat(),
        "a resume needs the run's own data (the same file, perhaps moved)",
    );
    assert_eq!(
        std::fs::read(run_dir.join("config.json")).unwrap(),
        config_before
    );
    assert_eq!(records(&run_dir).len(), 1);
    // Evaluating and explaining on other images works, and says so.
    let err = eval(&[]);
    assert!(
        err.contains("note: the test split of") && err.contains(other),
        "{err}"
    );
    let out = chestcam()
        .args(["eval", "--device", "cpu", "--json", "--run", &run])
        .output()
        .unwrap();
    ok(&out);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["same_split_as_run"], serde_json::json!(false));
    let out = chestcam()
        .args([
            "explain", "--device", "cpu", "--index", "0", "--run", &run, "--out",
        ])
        .arg(dir.path().join("out"))
        .output()
        .unwrap();
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stderr).contains(other));
    // The same images from another source (the generator's own string for
    // the file's seed and counts) are the run's data: silent, and resumed.
    let same = "synthetic:28:64,32,32:0";
    assert!(!eval(&["--source", same]).contains(other));
    let out = chestcam()
        .args(resume)
        .args(["--source", same])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(records(&run_dir).len(), 2);
    // The data randomisation check needs a permuted-label run on the same
    // images: one on the replaced file's is refused, one on the run's own
    // (permuted labels, the same fingerprint) is compared.
    let shuffled = |name: &str, source: &str| -> String {
        let r = dir.path().join(name).display().to_string();
        let out = chestcam()
            .args(["train", "--shuffle-labels", "--source", source])
            .args(ONE_SMALL_EPOCH)
            .args(["--run", &r])
            .output()
            .unwrap();
        ok(&out);
        r
    };
    let trust = |shuffled_run: &str, out_name: &str| -> Vec<String> {
        let out_dir = dir.path().join(out_name).display().to_string();
        [
            "trust",
            "--device",
            "cpu",
            "--run",
            &run,
            "--source",
            same,
            "--methods",
            "gradcam",
            "--metrics",
            "confidence",
            "--labels",
            "effusion",
            "--images",
            "2",
            "--out",
            &out_dir,
            "--shuffled-run",
            shuffled_run,
        ]
        .map(String::from)
        .to_vec()
    };
    let wrong = shuffled("shuffled-other", &file);
    let args = trust(&wrong, "trust-other");
    fails_in_one_line(
        &args.iter().map(String::as_str).collect::<Vec<_>>(),
        "was trained on other images than the model it is compared with",
    );
    let right = shuffled("shuffled-same", same);
    let out = chestcam()
        .args(trust(&right, "trust-same"))
        .output()
        .unwrap();
    ok(&out);
    assert!(dir.path().join("trust-same/trust.json").is_file());
    // A run whose checkpoints hold no fingerprint (written before chestcam
    // recorded one) is continued unchecked, and recorded from then on.
    let old = dir.path().join("old");
    let out = chestcam()
        .args(["train", "--source", same])
        .args(ONE_SMALL_EPOCH)
        .arg("--run")
        .arg(&old)
        .output()
        .unwrap();
    ok(&out);
    let last = || chestcam::train::read_meta(&old, chestcam::train::Checkpoint::Last).unwrap();
    assert!(last().fingerprint.is_some());
    for name in ["best.safetensors", "last.safetensors"] {
        let path = old.join(name);
        let f = chestcam::tensors_file::read(&path).unwrap();
        let mut meta: serde_json::Value = serde_json::from_str(&f.metadata["chestcam"]).unwrap();
        meta.as_object_mut().unwrap().remove("fingerprint").unwrap();
        let mut metadata = f.metadata.clone();
        metadata.insert("chestcam".into(), meta.to_string());
        let tensors: Vec<(&str, &chestcam::tch::Tensor)> =
            f.tensors.iter().map(|(n, t)| (n.as_str(), t)).collect();
        chestcam::tensors_file::write(&path, &tensors, metadata).unwrap();
    }
    assert!(last().fingerprint.is_none());
    set_epochs(&old, 2);
    let out = chestcam()
        .args(["train", "--resume", "--run"])
        .arg(&old)
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(
        (last().epoch, last().fingerprint),
        (2, Some(fingerprint_of(same)))
    );
}

/// The fingerprint of a data source's data.
fn fingerprint_of(source: &str) -> chestcam::data::DataFingerprint {
    let source: chestcam::data::source::DataSource = source.parse().unwrap();
    source
        .load(&mut chestcam::progress::Silent)
        .unwrap()
        .fingerprint()
}

/// A run folder's config.json.
fn config(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("config.json")).unwrap()).unwrap()
}

/// Sets a finished run's epoch count in its config.json, so that a resume
/// has epochs left (as a run stopped early has).
fn set_epochs(run: &std::path::Path, epochs: u64) {
    let mut cfg = config(run);
    cfg["epochs"] = epochs.into();
    std::fs::write(run.join("config.json"), cfg.to_string()).unwrap();
}

/// The lines of a run folder's metrics.jsonl.
fn records(run: &std::path::Path) -> Vec<serde_json::Value> {
    std::fs::read_to_string(run.join("metrics.jsonl"))
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[test]
fn a_run_started_on_a_gpu_is_continued_on_the_cpu() {
    let dir = tempfile::tempdir().unwrap();
    let run_path = dir.path().join("run");
    let run = run_path.display().to_string();
    // One fp16 epoch (its gradient scaler saved in the checkpoint), then
    // its config.json made to say what a CUDA run's says.
    let out = chestcam()
        .args(["train", "--source", &nih(), "--precision", "fp16"])
        .args(ONE_SMALL_EPOCH)
        .args(["--run", &run])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(config(&run_path)["device"].as_str(), Some("cpu"));
    let mut cfg = config(&run_path);
    cfg["device"] = "cuda:0".into();
    cfg["cuda_graph"] = true.into();
    cfg["epochs"] = 2.into();
    std::fs::write(run_path.join("config.json"), cfg.to_string()).unwrap();
    let before = std::fs::read(run_path.join("config.json")).unwrap();
    // Without a card the recorded device is named, with the way on.
    let resume = ["train", "--resume", "--run", &run];
    if !tch::Cuda::is_available() {
        fails_in_one_line(&resume, "ran on cuda:0, which this machine cannot use");
        fails_in_one_line(&resume, "--resume --device cpu");
    }
    // What the run trains cannot change; a refusal leaves the folder as it was.
    fails_in_one_line(
        &[&resume[..], &["--device", "cpu", "--batch-size", "8"]].concat(),
        "drop --batch-size",
    );
    assert_eq!(std::fs::read(run_path.join("config.json")).unwrap(), before);
    // On the CPU the device-dependent choices are made afresh: no graph,
    // precision auto for this CPU (the fp16 scaler's state goes unused).
    let out = chestcam()
        .args(resume)
        .args(["--device", "cpu", "--threads", "1"])
        .output()
        .unwrap();
    ok(&out);
    let auto = if chestcam::train::cpu_has_bf16() {
        "bf16"
    } else {
        "fp32"
    };
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("resuming after epoch 1 of 2 (best so far: epoch 1, val AUC")
            && said.contains(&format!(
                "; epoch 1 ran as cpu: fp16, channels-last, now cpu: {auto}, channels-last"
            )),
        "{said}"
    );
    let cfg = config(&run_path);
    assert_eq!(cfg["device"].as_str(), Some("cpu"));
    assert_eq!(cfg["cuda_graph"].as_bool(), Some(false));
    assert_eq!(cfg["precision"].as_str(), Some(auto));
    assert_eq!(cfg["threads"].as_i64(), Some(1));
    assert_eq!(cfg["epochs"].as_i64(), Some(2));
    let rec = records(&run_path);
    assert_eq!(rec.len(), 2);
    assert_eq!(rec[0]["step"].as_str(), Some("cpu: fp16, channels-last"));
    assert_eq!(
        rec[1]["step"].as_str(),
        Some(format!("cpu: {auto}, channels-last").as_str())
    );
    assert!(rec[1]["train_loss"].as_f64().unwrap().is_finite());
    // An explicit choice is kept across the move.
    set_epochs(&run_path, 3);
    let out = chestcam()
        .args(resume)
        .args(["--precision", "fp32"])
        .output()
        .unwrap();
    ok(&out);
    assert_eq!(config(&run_path)["precision"].as_str(), Some("fp32"));
    assert_eq!(
        records(&run_path)[2]["step"].as_str(),
        Some("cpu: fp32, channels-last")
    );
}
