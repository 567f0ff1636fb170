//! The trust checks: each metric against its reference on two models and
//! input sizes (pytorch-grad-cam 1.5.7's ROAD and confidence change, a RISE
//! deletion/insertion loop, scipy's Spearman, scikit-image's SSIM and Otsu;
//! made by `tests/fixtures/make_trust_fixture.py`, run here with the project
//! venv's python and cached under target/), hand-made localisation cases,
//! the NIH box path on boxes derived from phantom masks, and a phantom model
//! trained here on which Grad-CAM must beat its baselines.
use chestcam::cam::Method;
use chestcam::data::phantom::PhantomConfig;
use chestcam::data::registry::NUM_LABELS;
use chestcam::data::SplitName;
use chestcam::model::{Model, Stem};
use chestcam::trust::report::{run, Check, TrustOptions, Truth};
use chestcam::trust::{
    boxes, confidence, deletion, mass, otsu, pointing, road, similarity, Forwards, Scores,
};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

const LABELS: [usize; 3] = [0, 2, 5];

fn fixture_dir() -> PathBuf {
    let nih = chestcam_tests::nih1000_dir();
    chestcam_tests::python_fixture("make_trust_fixture.py", &[nih], "b_expected.safetensors")
}

fn load(dir: &Path, name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(name))
        .unwrap()
        .into_iter()
        .collect()
}

/// The fixture script's model `case` at `size` px and its expected values.
fn fixture_case(dir: &Path, case: &str, size: usize) -> (Model, HashMap<String, Tensor>) {
    let mut model = Model::new(Stem::Small, size, Device::Cpu).unwrap();
    model
        .load(dir.join(format!("{case}_weights.safetensors")))
        .unwrap();
    (model, load(dir, &format!("{case}_expected.safetensors")))
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    assert_eq!(a.size(), b.size());
    (a.to_kind(Kind::Double) - b.to_kind(Kind::Double))
        .abs()
        .max()
        .double_value(&[])
}

fn spread(t: &Tensor) -> f64 {
    t.to_kind(Kind::Double).std(false).double_value(&[])
}

#[test]
fn bf16_forwards_stay_near_fp32_on_two_models() {
    // `trust --precision bf16`: the perturbed images' forwards under bf16
    // autocast. They must really run in bf16 (the numbers move) and stay
    // near fp32, whose numbers equal the references (the test below).
    let dir = fixture_dir();
    let bf16 = Forwards {
        chunk: 64,
        precision: chestcam::train::Precision::Bf16,
    };
    for (case, size) in [("a", 28), ("b", 64)] {
        let (model, e) = fixture_case(&dir, case, size);
        let (x, maps) = (&e["input"], &e["maps"]);
        let settings = road::RoadSettings {
            noise: 0.0,
            ..Default::default()
        };
        let mut pairs = Vec::new();
        let d32 =
            deletion::deletion_insertion(&model, x, maps, &LABELS, 8, Forwards::fp32(64)).unwrap();
        let d16 = deletion::deletion_insertion(&model, x, maps, &LABELS, 8, bf16).unwrap();
        pairs.push(("deletion curves", d32.deletion, d16.deletion));
        pairs.push(("insertion curves", d32.insertion, d16.insertion));
        pairs.push(("deletion AUC", d32.deletion_auc, d16.deletion_auc));
        let r32 = road::road(&model, x, maps, &LABELS, &settings, Forwards::fp32(64)).unwrap();
        let r16 = road::road(&model, x, maps, &LABELS, &settings, bf16).unwrap();
        pairs.push(("ROAD combined", r32.combined, r16.combined));
        pairs.push(("ROAD MoRF", r32.morf, r16.morf));
        let c32 =
            confidence::confidence_change(&model, x, maps, &LABELS, Forwards::fp32(64)).unwrap();
        let c16 = confidence::confidence_change(&model, x, maps, &LABELS, bf16).unwrap();
        pairs.push(("confidence change", c32.change, c16.change));
        for (what, a, b) in pairs {
            let d = max_diff(&a, &b);
            eprintln!("{case} {what}: max |bf16 - fp32| {d:.2e}");
            assert!(d > 0.0, "{case} {what}: bf16 gave fp32's numbers exactly");
            // Seen: at most 7.5e-3 (a probability on a curve), 3e-3 for an area.
            assert!(
                d < 0.015,
                "{case} {what}: bf16 differs from fp32 by {d:.2e}"
            );
        }
    }
}

#[test]
fn labels_that_share_a_map_share_its_forwards_on_two_models() {
    // A label whose map of an image equals another label's map perturbs the
    // image the same way (EigenCAM, KPCA-CAM and the centre prior draw one
    // map for every label), so the checks compute such rows once. Each
    // label must still get exactly what it gets alone, ROAD's noise
    // included (one noise field per image, not per row or chunk).
    let dir = fixture_dir();
    for (case, size) in [("a", 28), ("b", 64)] {
        let (model, e) = fixture_case(&dir, case, size);
        let (x, maps) = (&e["input"], &e["maps"]);
        let b = x.size()[0];
        let m = |k: i64| maps.narrow(1, k, 1);
        // Labels 0 and 1 share label 2's map; label 2 gets label 0's (in
        // case b, GradCAM's maps of labels 0 and 1 are both all zero).
        let shared = Tensor::cat(&[m(2), m(2), m(0)], 1);
        let rows = |t: &Tensor| {
            chestcam::trust::Rows::new("test", &model, x, t, &LABELS)
                .unwrap()
                .distinct()
        };
        assert_eq!(rows(&maps.rand_like()), 3 * b, "{case}");
        assert_eq!(rows(&shared), 2 * b, "{case}");
        assert_eq!(rows(&Tensor::cat(&[m(1), m(1), m(1)], 1)), b, "{case}");
        let settings = road::RoadSettings::default();
        assert!(settings.noise > 0.0);
        let fw = Forwards::fp32(16);
        let d = deletion::deletion_insertion(&model, x, &shared, &LABELS, 6, fw).unwrap();
        let r = road::road(&model, x, &shared, &LABELS, &settings, fw).unwrap();
        let c = confidence::confidence_change(&model, x, &shared, &LABELS, fw).unwrap();
        for (k, &label) in LABELS.iter().enumerate() {
            let one = shared.narrow(1, k as i64, 1);
            let k = k as i64;
            let d1 = deletion::deletion_insertion(&model, x, &one, &[label], 6, fw).unwrap();
            let r1 = road::road(&model, x, &one, &[label], &settings, fw).unwrap();
            let c1 = confidence::confidence_change(&model, x, &one, &[label], fw).unwrap();
            for (what, all, alone) in [
                ("deletion", d.deletion.narrow(1, k, 1), d1.deletion),
                ("insertion", d.insertion.narrow(1, k, 1), d1.insertion),
                ("ROAD MoRF", r.morf.narrow(1, k, 1), r1.morf),
                ("ROAD LeRF", r.lerf.narrow(1, k, 1), r1.lerf),
                ("confidence", c.change.narrow(1, k, 1), c1.change),
            ] {
                let diff = max_diff(&all, &alone);
                assert!(
                    diff < 1e-6,
                    "{case} label {label} {what}: all labels at once differ from the label alone by {diff:.2e}"
                );
            }
        }
    }
}

#[test]
fn every_metric_matches_its_reference_on_two_models_and_sizes() {
    let dir = fixture_dir();
    for (case, size) in [("a", 28), ("b", 64)] {
        let (model, e) = fixture_case(&dir, case, size);
        let (x, maps) = (&e["input"], &e["maps"]);
        let pct = road::PERCENTILES;
        // pytorch_grad_cam.metrics.road.ROAD{Most,Least}RelevantFirst(p), noise 0.
        let settings = road::RoadSettings {
            percentiles: pct.to_vec(),
            noise: 0.0,
            ties: road::Ties::Threshold,
        };
        let r = road::road(&model, x, maps, &LABELS, &settings, Forwards::fp32(64)).unwrap();
        let (dm, dl) = (
            max_diff(&r.morf, &e["road_morf"]),
            max_diff(&r.lerf, &e["road_lerf"]),
        );
        assert!(
            spread(&e["road_morf"]) > 0.01,
            "{case}: ROAD reference barely moves"
        );
        assert!(
            dm < 1e-4 && dl < 1e-4,
            "{case}: ROAD MoRF {dm:.2e}, LeRF {dl:.2e}"
        );
        if case == "a" {
            // pytorch_grad_cam.metrics.road.ROADCombined(percentiles 10..90).
            let dc = max_diff(&r.combined, &e["road_combined"]);
            assert!(dc < 1e-4, "ROADCombined {dc:.2e}");
        }
        // pytorch_grad_cam.metrics.cam_mult_image.CamMultImageConfidenceChange.
        let c =
            confidence::confidence_change(&model, x, maps, &LABELS, Forwards::fp32(64)).unwrap();
        let dcc = max_diff(&c.change, &e["conf_change"]);
        assert!(
            spread(&e["conf_change"]) > 0.01 && dcc < 1e-5,
            "{case}: confidence change {dcc:.2e}"
        );
        // The RISE loop of the fixture script, 8 steps.
        let d =
            deletion::deletion_insertion(&model, x, maps, &LABELS, 8, Forwards::fp32(64)).unwrap();
        let (dd, di) = (
            max_diff(&d.deletion, &e["deletion"]),
            max_diff(&d.insertion, &e["insertion"]),
        );
        assert!(
            spread(&e["deletion"]) > 0.01,
            "{case}: deletion reference barely moves"
        );
        assert!(
            dd < 1e-5 && di < 1e-5,
            "{case}: deletion {dd:.2e}, insertion {di:.2e}"
        );
        let want_auc = (e["deletion"].sum_dim_intlist(-1i64, false, Kind::Double)
            - (e["deletion"].select(-1, 0) + e["deletion"].select(-1, 8)) / 2.0)
            / 8.0;
        assert!(max_diff(&d.deletion_auc, &want_auc) < 1e-5);
        // scipy.stats.spearmanr on maps with ties (rounded to 2 decimals).
        let raw = &e["raw"];
        let l = LABELS.len() as i64;
        let sp = similarity::spearman(&raw.narrow(1, 0, l - 1), &raw.narrow(1, 1, l - 1)).unwrap();
        let ds = max_diff(&sp, &e["spearman"]);
        assert!(ds < 1e-9, "{case}: Spearman {ds:.2e}");
        // skimage.metrics.structural_similarity(data_range=1).
        let ss =
            similarity::ssim(&maps.narrow(1, 0, l - 1), &maps.narrow(1, 1, l - 1), 1.0).unwrap();
        let dss = max_diff(&ss, &e["ssim"]);
        assert!(dss < 1e-6, "{case}: SSIM {dss:.2e}");
        // skimage.filters.threshold_otsu on each map (float64).
        let m: Vec<f64> = Vec::try_from(maps.to_kind(Kind::Double).flatten(0, -1)).unwrap();
        let want: Vec<f64> = Vec::try_from(e["otsu"].flatten(0, -1)).unwrap();
        let hw = size * size;
        for (k, (map, w)) in m.chunks(hw).zip(&want).enumerate() {
            let t = otsu::threshold_otsu(map);
            assert!((t - w).abs() < 1e-12, "{case}: Otsu map {k}: {t} vs {w}");
        }
        eprintln!("{case}: ROAD {dm:.1e}/{dl:.1e}, conf {dcc:.1e}, del {dd:.1e}/{di:.1e}, spearman {ds:.1e}, ssim {dss:.1e}");
    }
}

/// ROAD's thresholds equal numpy's `np.percentile` on float32 maps bit for
/// bit (`tests/fixtures/make_percentile_fixture.py`): a threshold one bit
/// off moves the pixels equal to it across the line.
#[test]
fn road_thresholds_equal_numpy_percentile_to_the_bit() {
    let dir = chestcam_tests::python_fixture(
        "make_percentile_fixture.py",
        &[] as &[&str],
        "percentiles.safetensors",
    );
    let t = load(&dir, "percentiles.safetensors");
    for size in ["28", "64"] {
        let maps = &t[&format!("maps{size}")];
        let want = &t[&format!("thr{size}")];
        for (i, p) in road::PERCENTILES.iter().enumerate() {
            let got = road::percentile(maps, *p).unwrap().squeeze_dim(1);
            let w = want.get(i as i64);
            let off = got.ne_tensor(&w).sum(Kind::Int64).int64_value(&[]);
            assert_eq!(
                off,
                0,
                "{size} px, p = {p}: {off} of {} thresholds differ from numpy",
                w.size()[0]
            );
        }
        // The mask is `map >= threshold`, as pytorch-grad-cam keeps `map < threshold`.
        let side = (maps.size()[1] as f64).sqrt() as i64;
        let m = maps.narrow(0, 0, 5).view([5, side, side]);
        let removed = road::at_or_above_percentile(&m, 30.0)
            .unwrap()
            .view([5, -1]);
        let thr = want.get(2).narrow(0, 0, 5).unsqueeze(1);
        assert!(removed.equal(&maps.narrow(0, 0, 5).ge_tensor(&thr)));
    }
}

/// ROAD's rank rule: on maps without ties it removes exactly the pixels
/// the threshold rule removes; with ties it removes a fixed share, every
/// removed pixel at least as high as every kept one, tied pixels drawn from
/// all over the tied region (not its first rows).
#[test]
fn road_rank_ties_remove_a_fixed_share() {
    tch::manual_seed(5);
    // Distinct values (a permutation): no ties.
    let n = 28 * 28;
    let distinct = Tensor::randperm(3 * n, (Kind::Int64, Device::Cpu))
        .to_kind(Kind::Float)
        .view([3, 28, 28]);
    for p in [10.0, 25.0, 50.0, 73.0, 90.0] {
        let a = road::at_or_above_percentile(&distinct, p).unwrap();
        let b = road::top_share(&distinct, p, 7).unwrap();
        assert!(a.equal(&b), "p = {p}");
    }
    // A Grad-CAM-like map: 0 on the first 40% of the pixels (by position),
    // distinct positive values elsewhere.
    let zeros = (n as f64 * 0.4) as i64;
    let ramp = Tensor::cat(
        &[
            Tensor::zeros([zeros], (Kind::Float, Device::Cpu)),
            Tensor::arange_start(1, n - zeros + 1, (Kind::Float, Device::Cpu)),
        ],
        0,
    )
    .view([1, 28, 28]);
    let thr = road::at_or_above_percentile(&ramp, 10.0).unwrap();
    assert_eq!(
        thr.sum(Kind::Int64).int64_value(&[]),
        n,
        "threshold rule: all removed"
    );
    for p in [10.0, 30.0, 50.0] {
        let r = road::top_share(&ramp, p, 7).unwrap().view([-1]);
        let want = n - ((n - 1) as f64 * p / 100.0).ceil() as i64;
        assert_eq!(r.sum(Kind::Int64).int64_value(&[]), want, "p = {p}");
        let flat = ramp.view([-1]);
        let lowest_removed = flat.masked_select(&r).min().double_value(&[]);
        let highest_kept = flat.masked_select(&r.logical_not()).max().double_value(&[]);
        assert!(lowest_removed >= highest_kept, "p = {p}");
    }
    // At p = 10 some zeros go: they come from the whole tied region, so
    // both its first and its second half lose some.
    let r: Vec<bool> = Vec::try_from(road::top_share(&ramp, 10.0, 7).unwrap().view([-1])).unwrap();
    let half = zeros as usize / 2;
    let (first, second) = (
        r[..half].iter().filter(|&&v| v).count(),
        r[half..zeros as usize].iter().filter(|&&v| v).count(),
    );
    let tied_removed = (n - ((n - 1) as f64 * 0.1).ceil() as i64 - (n - zeros)) as usize;
    assert_eq!(first + second, tied_removed);
    assert!(
        first > tied_removed / 4 && second > tied_removed / 4,
        "{first} / {second}"
    );
    // The same seed, the same pixels; ROAD itself takes the rule.
    assert!(road::top_share(&ramp, 10.0, 7)
        .unwrap()
        .equal(&road::top_share(&ramp, 10.0, 7).unwrap()));
}

#[test]
fn imputation_solves_the_neighbour_equations() {
    tch::manual_seed(3);
    let img = Tensor::randn([2, 1, 9, 11], (Kind::Float, Device::Cpu));
    let removed = Tensor::rand([2, 1, 9, 11], (Kind::Float, Device::Cpu)).gt(0.4);
    let out = road::linear_impute(&img, &removed, 0.0, 0)
        .unwrap()
        .to_kind(Kind::Double);
    // Kept pixels untouched; each removed pixel is the weighted mean of its in-image neighbours.
    let kept = removed.logical_not();
    assert!(max_diff(&out.masked_select(&kept), &img.masked_select(&kept)) < 1e-6);
    let v: Vec<f64> = Vec::try_from(out.flatten(0, -1)).unwrap();
    let r: Vec<bool> = Vec::try_from(removed.flatten(0, -1)).unwrap();
    let (h, w) = (9i64, 11i64);
    let mut worst: f64 = 0.0;
    for n in 0..2 {
        for y in 0..h {
            for x in 0..w {
                let i = (n * h * w + y * w + x) as usize;
                if !r[i] {
                    continue;
                }
                let (mut s, mut ws) = (0.0, 0.0);
                for dy in -1..=1i64 {
                    for dx in -1..=1i64 {
                        let (yy, xx) = (y + dy, x + dx);
                        if (dy, dx) == (0, 0) || yy < 0 || xx < 0 || yy >= h || xx >= w {
                            continue;
                        }
                        let wt = if dy == 0 || dx == 0 {
                            1.0 / 6.0
                        } else {
                            1.0 / 12.0
                        };
                        s += wt * v[(n * h * w + yy * w + xx) as usize];
                        ws += wt;
                    }
                }
                worst = worst.max((v[i] - s / ws).abs());
            }
        }
    }
    assert!(worst < 1e-5, "residual {worst}");
    // Noise is seeded and lands on removed pixels only.
    let a = road::linear_impute(&img, &removed, 0.01, 7).unwrap();
    let b = road::linear_impute(&img, &removed, 0.01, 7).unwrap();
    assert!(a.equal(&b));
    assert!(max_diff(&a.masked_select(&kept), &img.masked_select(&kept)) < 1e-6);
    let noise = (&a.to_kind(Kind::Double) - &out).masked_select(&removed);
    let sd = spread(&noise);
    assert!((0.005..0.02).contains(&sd), "noise sd {sd}");
}

/// Maps and masks `[1, L, 8, 8]` from rows of 64 values.
fn t(rows: &[[f32; 64]]) -> Tensor {
    let v: Vec<f32> = rows.iter().flatten().copied().collect();
    Tensor::from_slice(&v).view([1, rows.len() as i64, 8, 8])
}

#[test]
fn localisation_on_hand_made_maps() {
    let mut mask = [0f32; 64];
    for y in 1..3 {
        for x in 1..3 {
            mask[y * 8 + x] = 1.0; // a 2x2 lesion at (1..3, 1..3)
        }
    }
    let mut inside = [0f32; 64];
    inside[2 * 8 + 2] = 1.0; // peak inside
    let mut near = [0f32; 64];
    near[2 * 8 + 4] = 1.0; // peak 2 px right of the lesion
    let mut far = [0f32; 64];
    far[7 * 8 + 7] = 1.0;
    let mut tie = [0f32; 64];
    tie[2 * 8 + 2] = 1.0;
    tie[7 * 8 + 7] = 1.0; // two maxima: one hits, one misses
    let flat = [0f32; 64];
    let maps = t(&[inside, near, far, tie, flat]);
    let masks = t(&[mask; 5]);
    let hits = |tol: f64| -> Vec<f32> {
        Vec::try_from(
            pointing::pointing_game(&maps, &masks, tol)
                .unwrap()
                .flatten(0, -1),
        )
        .unwrap()
    };
    assert_eq!(hits(0.0), vec![1.0, 0.0, 0.0, 0.5, 4.0 / 64.0]);
    // Within 2 px the near peak hits; a flat map scores the share of pixels near the lesion.
    let h2 = hits(2.0);
    assert_eq!(&h2[..4], &[1.0, 1.0, 0.0, 0.5]);
    let dilated = pointing::dilate(&masks.narrow(1, 0, 1), 2.0).unwrap();
    let near_px = dilated
        .to_kind(Kind::Float)
        .sum(Kind::Float)
        .double_value(&[]);
    assert_eq!(h2[4] as f64, near_px / 64.0);
    // A radius-2 disc around a 2x2 square, clipped by the border at 1 px: counted by hand.
    assert_eq!(near_px, 20.0);
    assert_eq!(pointing::default_tolerance(224), 15.0);
    assert_eq!(pointing::default_tolerance(28), 2.0);
    assert_eq!(pointing::default_tolerance(64), 4.0);
    // Mass: the share of the map's sum inside the lesion.
    let mut half = [0f32; 64];
    half[8 + 1] = 3.0; // (1, 1)
    half[6 * 8 + 6] = 1.0;
    let m: Vec<f32> = Vec::try_from(
        mass::mass_in_mask(&t(&[half, flat]), &t(&[mask, mask]))
            .unwrap()
            .flatten(0, -1),
    )
    .unwrap();
    assert_eq!(m, vec![0.75, 0.0]);
    // Otsu: a two-level map splits at its gap; IoU with the lesion counted by hand.
    let mut two = [0.1f32; 64];
    for y in 1..4 {
        for x in 1..3 {
            two[y * 8 + x] = 0.9; // 6 px: the 4 of the lesion and 2 below
        }
    }
    let thr = otsu::threshold_otsu(&two.iter().map(|&v| v as f64).collect::<Vec<_>>());
    assert!(thr > 0.1 && thr < 0.9, "{thr}");
    let iou: Vec<f32> = Vec::try_from(
        otsu::otsu_iou(&t(&[two, flat]), &t(&[mask, mask]))
            .unwrap()
            .flatten(0, -1),
    )
    .unwrap();
    assert!(
        (iou[0] - 4.0 / 6.0).abs() < 1e-6 && iou[1] == 0.0,
        "{iou:?}"
    );
    // Scores: NaN where not scored, per-label and macro means over the rest.
    let s = Scores::from_tensor(
        &Tensor::from_slice(&[1.0f32, 0.0, 0.5, 0.25]).view([2, 2]),
        &[3, 7],
    )
    .unwrap()
    .only(&[vec![true, false], vec![true, true]]);
    assert_eq!(s.per_label(), vec![Some(0.75), Some(0.25)]);
    assert_eq!(s.macro_mean(), Some(0.5));
    assert_eq!(s.count(), 3);
}

#[test]
fn boxes_derived_from_phantom_masks_give_their_bounding_boxes() {
    let cfg = PhantomConfig {
        size: 32,
        counts: [2, 2, 6],
        seed: 5,
        ..Default::default()
    };
    let (data, masks) = cfg.generate().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut csv = String::from("Image Index,Finding Label,Bbox [x,y,w,h],,,\n");
    let mut names = String::from("npz_split,npz_index,image_index\n");
    let nih = [
        "Atelectasis",
        "Cardiomegaly",
        "Effusion",
        "Infiltrate",
        "Mass",
        "Nodule",
        "Pneumonia",
        "Pneumothorax",
    ];
    let mut want = vec![0u8; 6 * NUM_LABELS * 32 * 32];
    let mut placed = 0;
    for i in 0..data.test.len() {
        let name = format!("{:08}_000.png", 100 + i);
        names.push_str(&format!("test,{i},{name}\n"));
        for (k, label) in nih.iter().enumerate() {
            let m = masks.mask(SplitName::Test, i, k);
            let px: Vec<(usize, usize)> = (0..32 * 32)
                .filter(|&p| m[p] == 1)
                .map(|p| (p % 32, p / 32))
                .collect();
            if px.is_empty() {
                continue;
            }
            let (x0, x1) = (
                px.iter().map(|p| p.0).min().unwrap(),
                px.iter().map(|p| p.0).max().unwrap() + 1,
            );
            let (y0, y1) = (
                px.iter().map(|p| p.1).min().unwrap(),
                px.iter().map(|p| p.1).max().unwrap() + 1,
            );
            // In 1024 px coordinates, as NIH's list has them.
            let sc = 1024.0 / 32.0;
            csv.push_str(&format!(
                "{name},{label},{},{},{},{}\n",
                x0 as f64 * sc,
                y0 as f64 * sc,
                (x1 - x0) as f64 * sc,
                (y1 - y0) as f64 * sc
            ));
            for y in y0..y1 {
                for x in x0..x1 {
                    want[(i * NUM_LABELS + k) * 1024 + y * 32 + x] = 1;
                }
            }
            placed += 1;
        }
    }
    assert!(placed >= 3, "the phantoms carry too few lesions ({placed})");
    let (bp, np) = (
        dir.path().join("BBox_List_2017.csv"),
        dir.path().join("labels.csv"),
    );
    std::fs::write(&bp, &csv).unwrap();
    std::fs::write(&np, &names).unwrap();
    let b = boxes::read_bbox_csv(&bp).unwrap();
    assert_eq!(b.len(), placed);
    let n = boxes::read_names_csv(&np, SplitName::Test, 6).unwrap();
    let (got, count) = boxes::box_masks(&b, &n, 32);
    assert_eq!(count, placed);
    assert!(
        got == want,
        "box masks differ from the masks' bounding boxes"
    );
    // Every phantom mask lies inside its box.
    for i in 0..6 {
        for k in 0..8 {
            let m = masks.mask(SplitName::Test, i, k);
            let g = &got[(i * NUM_LABELS + k) * 1024..(i * NUM_LABELS + k + 1) * 1024];
            assert!(m.iter().zip(g).all(|(a, b)| *a <= *b));
        }
    }
    // Bad files say which file, line and why.
    std::fs::write(
        &bp,
        "Image Index,Finding Label,x,y,w,h\na.png,Nodule,1,2,abc,4\n",
    )
    .unwrap();
    let e = boxes::read_bbox_csv(&bp).unwrap_err().to_string();
    assert!(
        e.contains("BBox_List_2017.csv") && e.contains("line 2") && e.contains("\"abc\""),
        "{e}"
    );
    std::fs::write(&bp, "a.png,Flu,1,2,3,4\n").unwrap();
    let e = boxes::read_bbox_csv(&bp).unwrap_err().to_string();
    assert!(e.contains("line 1") && e.contains("flu"), "{e}");
    std::fs::write(&np, "name,split\n").unwrap();
    let e = boxes::read_names_csv(&np, SplitName::Test, 6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("image_index"), "{e}");
    std::fs::write(&np, "npz_split,npz_index,image_index\ntest,9,x.png\n").unwrap();
    let e = boxes::read_names_csv(&np, SplitName::Test, 6)
        .unwrap_err()
        .to_string();
    assert!(e.contains("index 9") && e.contains("6 images"), "{e}");
}

#[test]
fn grad_cam_beats_its_baselines_on_a_phantom_model() {
    use chestcam::train::{train, TrainConfig};
    let cfg = PhantomConfig {
        size: 28,
        counts: [1200, 100, 48],
        seed: 21,
        ..Default::default()
    };
    let (data, masks) = cfg.generate().unwrap();
    let tc = TrainConfig {
        source: "synthetic".into(),
        epochs: 4,
        batch_size: 64,
        device: "cpu".into(),
        // The bounds below were set on fp32 runs; `auto` would train in
        // bf16 on a CPU with bfloat16 arithmetic.
        precision: chestcam::train::Precision::Fp32,
        ..Default::default()
    };
    let dir = tempfile::tempdir().unwrap();
    // Trains `cfg` on the phantoms into `name` and loads its last checkpoint.
    let trained = |cfg: &TrainConfig, name: &str| {
        let run_dir = dir.path().join(name);
        train(
            cfg,
            &data,
            &run_dir,
            false,
            &mut chestcam::progress::Silent,
            &mut |_| std::ops::ControlFlow::Continue(()),
        )
        .unwrap();
        chestcam::train::load_model(&run_dir, chestcam::train::Checkpoint::Last, Device::Cpu)
            .unwrap()
            .0
    };
    let model = trained(&tc, "run");
    let idx: Vec<usize> = (0..data.test.len()).collect();
    let m = Tensor::from_slice(masks.split(SplitName::Test)).view([idx.len() as i64, 14, 28, 28]);
    // The 5 labels most often present: localisation is scored where a label is.
    let labels = chestcam::trust::frequent_labels(&data.test, &idx, 5);
    let o = TrustOptions {
        methods: vec![Method::GradCam],
        labels,
        checks: vec![
            Check::Localisation,
            Check::Deletion,
            Check::Randomisation,
            Check::LabelSensitivity,
        ],
        steps: 6,
        ..Default::default()
    };
    let truth = Truth {
        masks: m,
        what: "phantom masks".into(),
    };
    let r = run(
        &model,
        &data.test,
        &idx,
        &data.provenance,
        Some(truth),
        &o,
        &mut chestcam::progress::Silent,
    )
    .unwrap();
    let get = |src: &str, metric: &str| {
        r.source(src)
            .unwrap()
            .metric(metric)
            .unwrap()
            .macro_mean
            .unwrap()
    };
    let (g, rc, cp) = (
        get("GradCAM", "pointing_game"),
        get("RandomCAM", "pointing_game"),
        get("CentrePrior", "pointing_game"),
    );
    let md = r.markdown();
    assert!(
        g > rc && g > cp,
        "pointing game: GradCAM {g:.3}, RandomCAM {rc:.3}, centre {cp:.3}\n{md}"
    );
    assert!(get("GradCAM", "mass") > get("RandomCAM", "mass"), "{md}");
    let (gd, rd) = (
        get("GradCAM", "deletion_auc"),
        get("RandomCAM", "deletion_auc"),
    );
    assert!(
        gd < rd,
        "deletion AUC: GradCAM {gd:.3}, RandomCAM {rd:.3}\n{md}"
    );
    let c = r.cascade.iter().find(|c| c.method == "GradCAM").unwrap();
    assert_eq!(c.steps.len(), 6);
    let at = c.steps[1].spearman_abs.unwrap();
    let base = c.baseline.spearman_abs.unwrap();
    assert!(
        at <= base && c.passes,
        "cascade at layer4 {at:.3} vs random pairs {base:.3}\n{md}"
    );
    // Every table row has its baselines beside it, and the files are written.
    assert!(md.contains("| RandomCAM (baseline) |") && md.contains("| CentrePrior (baseline) |"));
    let out = dir.path().join("trust");
    let files = r.write(&out).unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "trust.json",
            "trust.md",
            "deletion.svg",
            "insertion.svg",
            "cascade.svg",
            "cascade_strip.png"
        ]
    );
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("trust.json")).unwrap()).unwrap();
    assert_eq!(json["sources"].as_array().unwrap().len(), 3);
    eprintln!("{md}");
    // Data randomisation: the same training on labels permuted across the
    // images. The centre prior ignores the model, so its maps are the same
    // for both models and it must fail; Grad-CAM's maps must move further
    // from the real model's than the random-pair baseline.
    let shuffled = trained(
        &TrainConfig {
            shuffle_labels: true,
            ..tc.clone()
        },
        "shuffled",
    );
    let mut r = r;
    r.add_data_randomisation(&model, &shuffled, &data.test, &o)
        .unwrap();
    let md = r.markdown();
    let find = |m: &str| r.data_randomisation.iter().find(|d| d.method == m).unwrap();
    let centre = find("CentrePrior");
    assert!(
        centre.similarity.spearman_abs.unwrap() > 0.999 && !centre.passes,
        "{md}"
    );
    let g = find("GradCAM");
    assert!(
        g.passes && g.similarity.spearman_abs.unwrap() <= g.baseline.spearman_abs.unwrap(),
        "{md}"
    );
    assert!(md.contains("## Data randomisation"), "{md}");
    eprintln!("{md}");
}
