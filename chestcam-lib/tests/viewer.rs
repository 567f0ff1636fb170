//! The explanation viewer: a self-contained page (nothing fetched from
//! anywhere), its data, and the reference pictures the browser test
//! (`tests/browser/viewer_test.mjs`, run by `make viewer-test`) compares
//! the page's canvas with. Set `CHESTCAM_VIEWER_OUT` to keep the page and
//! the expected pictures for that test.
use base64::Engine;
use chestcam::cam::explain::{ExplainOptions, LabelChoice};
use chestcam::cam::Method;
use chestcam::data::source::DataSource;
use chestcam::model::{Model, Stage, Stem};
use chestcam::viz::heatmap::overlay_tile;
use chestcam::viz::viewer::{build, quantize, Viewer, ViewerInput};
use std::path::PathBuf;
use tch::Device;

fn nih() -> String {
    let dir = std::env::var("CHESTCAM_NIH1000").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/data/nih1000").to_string()
    });
    format!("{dir}/nih1000.npz")
}

/// nih1000 and a model for its size initialised from `seed`. The global
/// RNG is shared by the tests running in parallel: the seed and the
/// initialisation happen under one lock, so the weights are always the
/// seed's (with another test's draws in between, a label's map was flat
/// in one run of five, and the test's "views differ" check failed).
fn nih_and_model(seed: i64) -> (chestcam::data::Dataset, Model) {
    static INIT: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let data = nih()
        .parse::<DataSource>()
        .unwrap()
        .load(&mut chestcam::progress::Silent)
        .unwrap();
    let model = {
        let _held = INIT.lock().unwrap_or_else(|e| e.into_inner());
        tch::manual_seed(seed);
        Model::new(Stem::Small, data.size, Device::Cpu).unwrap()
    };
    (data, model)
}

/// The page's data, read back from its `<script type="application/json">`.
fn page_data(html: &str) -> serde_json::Value {
    let start = html.find("class=\"ccv-data\">").unwrap() + "class=\"ccv-data\">".len();
    let end = start + html[start..].find("</script>").unwrap();
    serde_json::from_str(&html[start..end].replace("<\\/", "</")).unwrap()
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Labels of image `i` by falling probability (ties by index), as the page
/// lists them.
fn order(v: &Viewer, i: usize) -> Vec<usize> {
    let p = &v.images[i].probs;
    let mut o: Vec<usize> = (0..14).collect();
    o.sort_by(|&a, &b| p[b].total_cmp(&p[a]).then(a.cmp(&b)));
    o
}

#[test]
fn viewer_page_is_self_contained_and_its_reference_pictures_follow_the_maps() {
    let (data, model) = nih_and_model(11);
    let idx = [0usize, 1, 2, 3];
    let opts = ExplainOptions {
        trust_steps: 4,
        ..Default::default()
    };
    let methods = [Method::GradCam, Method::HiResCam];
    let stages = [vec![Stage::Layer3], vec![Stage::Layer4]];
    let input = ViewerInput::Split {
        split: &data.test,
        idx: &idx,
    };
    let (mut v, _) = build(&model, &input, &methods, &stages, &opts, "viewer test").unwrap();
    assert_eq!(v.views.len(), 4);
    assert_eq!(
        v.views
            .iter()
            .map(|w| format!("{}/{}", w.method, w.stage))
            .collect::<Vec<_>>(),
        [
            "GradCAM/layer3",
            "GradCAM/layer4",
            "HiResCAM/layer3",
            "HiResCAM/layer4"
        ]
    );
    assert_eq!(v.tile, 448);

    // The stored maps are the explanation's maps, rounded to bytes: the
    // page's picture is the PNG panel's overlay to within that rounding.
    let ex = chestcam::cam::explain::explain_split(
        &model,
        &data.test,
        &idx[..1],
        &ExplainOptions {
            method: Method::HiResCam,
            labels: LabelChoice::All,
            trust_steps: 0,
            ..Default::default()
        },
    )
    .unwrap();
    let e = &ex[0];
    for (k, &l) in e.shown.iter().enumerate() {
        let stored = v.images[0].maps[3][l].as_ref().unwrap();
        // (The viewer explained 4 images in one batch, this 1: the maps
        // agree to float rounding, so a byte may round the other way.)
        let q = quantize(&e.maps[k]);
        let off = stored.map.iter().zip(&q).filter(|(a, b)| a != b).count();
        assert!(
            stored.map.iter().zip(&q).all(|(&a, &b)| a.abs_diff(b) <= 1) && off * 100 <= q.len(),
            "label {l}: {off} bytes differ"
        );
        let want = overlay_tile(
            &e.pixels,
            &e.maps[k],
            e.size,
            &chestcam::viz::heatmap::OverlayOptions {
                tile: 448,
                ..Default::default()
            },
        )
        .unwrap();
        let got = v.render(0, 3, l, 50).unwrap();
        let diffs: Vec<i32> = got
            .as_raw()
            .iter()
            .zip(want.as_raw())
            .map(|(&a, &b)| (a as i32 - b as i32).abs())
            .collect();
        let mean = diffs.iter().sum::<i32>() as f64 / diffs.len() as f64;
        assert!(mean < 1.0, "label {l}: mean difference {mean}");
    }
    // Every map has a trust line, and each view's maps differ from the others'.
    let m = |view: usize, l: usize| v.images[0].maps[view][l].as_ref().unwrap();
    assert!(m(0, 0).trust.is_some());
    // (A label whose map is flat under both views is flat in both: with
    // this seed label 0 is, so every label with a map is compared.)
    let located: Vec<usize> = (0..14).filter(|&l| !m(0, l).flat).collect();
    eprintln!("labels with a map under GradCAM at layer3: {located:?}");
    assert!(located.len() >= 3, "{located:?}");
    for &l in &located {
        assert_ne!(m(0, l).map, m(1, l).map, "label {l}: layer3 and layer4");
        assert_ne!(m(0, l).map, m(2, l).map, "label {l}: GradCAM and HiResCAM");
    }

    // One flat map, to show the page's warning: the second label of image 0
    // under the first view.
    let o = order(&v, 0);
    {
        let fm = v.images[0].maps[0][o[1]].as_mut().unwrap();
        fm.map.iter_mut().for_each(|q| *q = 0);
        fm.flat = true;
    }

    let html = v.html().unwrap();
    for bad in [
        "http://", "https://", "src=\"//", "<link", "@import", "url(",
    ] {
        assert!(!html.contains(bad), "the page refers outside itself: {bad}");
    }
    assert_eq!(
        html.matches("data:image/png;base64,").count(),
        4 * (1 + 4 * 14),
        "every X-ray once, every map once"
    );
    let d = page_data(&html);
    assert_eq!(d["labels"].as_array().unwrap().len(), 14);
    assert_eq!(d["colormap"].as_array().unwrap().len(), 768);
    assert_eq!(d["images"][2]["name"], "test_2");
    assert_eq!(d["images"][0]["maps"][0][o[1]]["flat"], true);
    assert_eq!(d["images"][0]["probs"].as_array().unwrap().len(), 14);
    assert!(d["images"][0]["truth"].is_array());
    // A map's PNG decodes to the stored bytes.
    let url = d["images"][1]["maps"][2][5]["png"].as_str().unwrap();
    let png = base64::engine::general_purpose::STANDARD
        .decode(url.trim_start_matches("data:image/png;base64,"))
        .unwrap();
    let grey = image::load_from_memory(&png).unwrap().to_luma8();
    assert_eq!(grey.as_raw(), &v.images[1].maps[2][5].as_ref().unwrap().map);
    // A name that would close the script early stays inside it.
    let mut w = v.clone();
    w.images[0].name = "</script><b>x".into();
    assert!(!w.html().unwrap().contains("</script><b>x"));
    // Two fragments on one page have different ids.
    assert_ne!(
        v.fragment().unwrap()[..60].to_string(),
        v.fragment().unwrap()[..60].to_string()
    );
    assert!(v.render(9, 0, 0, 50).is_err());

    // The states the browser test puts the page in, one control at a time,
    // and what the canvas must show in each.
    let states = [
        (0, 0, o[0], 50, "the first view"),
        (0, 0, o[2], 50, "click a label"),
        (0, 0, o[2], 80, "move the slider"),
        (0, 2, o[2], 80, "switch method"),
        (0, 3, o[2], 80, "switch stage"),
        (2, 3, o[2], 80, "click a thumbnail"),
        (0, 0, o[1], 30, "a flat map"),
    ];
    let expected: Vec<serde_json::Value> = states
        .iter()
        .map(|&(image, view, label, opacity, what)| {
            let img = v.render(image, view, label, opacity).unwrap();
            serde_json::json!({
                "what": what, "image": image, "view": view, "label": label,
                "opacity": opacity,
                "method": v.views[view].method, "stage": v.views[view].stage,
                "flat": v.images[image].maps[view][label].as_ref().unwrap().flat,
                "rgb": b64(img.as_raw()),
            })
        })
        .collect();
    let out = std::env::var("CHESTCAM_VIEWER_OUT").map(PathBuf::from);
    let tmp = tempfile::tempdir().unwrap();
    let dir = out.unwrap_or_else(|_| tmp.path().to_path_buf());
    std::fs::create_dir_all(&dir).unwrap();
    v.save(dir.join("viewer.html")).unwrap();
    let spec = serde_json::json!({
        "tile": v.tile,
        "images": v.images.len(),
        "order": (0..v.images.len()).map(|i| order(&v, i)).collect::<Vec<_>>(),
        "states": expected,
    });
    std::fs::write(
        dir.join("expected.json"),
        serde_json::to_string(&spec).unwrap(),
    )
    .unwrap();
}

#[test]
fn viewer_refuses_mismatched_views() {
    let (data, model) = nih_and_model(12);
    let o = ExplainOptions {
        labels: LabelChoice::Top(2),
        trust_steps: 0,
        ..Default::default()
    };
    let a = chestcam::cam::explain::explain_split(&model, &data.test, &[0, 1], &o).unwrap();
    let b = chestcam::cam::explain::explain_split(&model, &data.test, &[1, 0], &o).unwrap();
    let mut v = Viewer::new("t", Default::default());
    v.add("GradCAM", "layer4", &a).unwrap();
    let e = v.add("GradCAM", "layer4", &a).unwrap_err().to_string();
    assert!(e.contains("added twice"), "{e}");
    let e = v.add("HiResCAM", "layer4", &b).unwrap_err().to_string();
    assert!(e.contains("test_1") && e.contains("test_0"), "{e}");
    // Labels a view did not compute have no map (the page says so).
    assert!(v.images[0].maps[0].iter().filter(|m| m.is_some()).count() == 2);
    assert!(v.render(0, 0, a[0].shown[0], 50).is_ok());
    let missing = (0..14).find(|l| !a[0].shown.contains(l)).unwrap();
    let e = v.render(0, 0, missing, 50).unwrap_err().to_string();
    assert!(e.contains("not computed"), "{e}");
    assert!(Viewer::new("t", Default::default()).html().is_err());
}
