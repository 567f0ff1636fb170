//! CAM parity with pytorch-grad-cam 1.5.7: the same weights and images,
//! every method, several labels, maps equal within 1e-4.
//! The reference is made by `tests/fixtures/make_cam_fixture.py` (run here
//! with the project venv's python; cached under target/ by the script's hash).
use chestcam::cam::aug_smooth::AugSmooth;
use chestcam::cam::{compute, compute_stages, compute_stages_with, Method, Smooth};
use chestcam::model::{Model, Stage, Stem};
use std::collections::HashMap;
use std::path::PathBuf;
use tch::{Device, Kind, Tensor};

const LABELS: [usize; 4] = [0, 2, 5, 13];

fn fixture_dir() -> PathBuf {
    let dir = chestcam_tests::nih1000_dir();
    // The methods to compare come from chestcam's method table (RandomCAM
    // draws random weights: `random_cam_is_a_seeded_baseline` checks it).
    let methods: Vec<Method> = Method::ALL
        .into_iter()
        .filter(|m| *m != Method::RandomCam)
        .collect();
    chestcam_tests::python_fixture(
        "make_cam_fixture.py",
        &[
            dir.join("nih1000.npz").into_os_string(),
            dir.join("nih1000_64.npz").into_os_string(),
            Method::reference_list(&methods).into(),
        ],
        "m64/expected.safetensors",
    )
}

fn load(dir: &std::path::Path, name: &str) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(dir.join(name))
        .unwrap()
        .into_iter()
        .collect()
}

fn max_diff(a: &Tensor, b: &Tensor) -> f64 {
    (a - b).abs().max().double_value(&[])
}

/// Two models (28 px seed 0, 64 px seed 1) and their inputs.
#[test]
fn every_method_matches_pytorch_grad_cam() {
    let root = fixture_dir();
    let mut report = vec![];
    let mut disagreeing_svds = 0.0;
    for (case, size) in [("m28", 28), ("m64", 64)] {
        let dir = root.join(case);
        let mut model = Model::new(Stem::Small, size, Device::Cpu).unwrap();
        model.load(dir.join("weights.safetensors")).unwrap();
        let x = load(&dir, "input.safetensors").remove("input").unwrap();
        let expected = load(&dir, "expected.safetensors");
        // RandomCAM draws random weights: its check is `random_cam_is_a_seeded_baseline`.
        for method in Method::ALL.into_iter().filter(|m| *m != Method::RandomCam) {
            let want = &expected[method.name()];
            let n = want.size()[0];
            let labels: Vec<usize> = LABELS[..want.size()[1] as usize].to_vec();
            let got = compute(
                &model,
                &x.narrow(0, 0, n),
                method,
                Stage::Layer4,
                &labels,
                64,
            )
            .unwrap();
            assert_eq!(got.maps.size(), want.size(), "{case} {}", method.name());
            let diff = max_diff(&got.maps, want);
            report.push(format!("{case} {}: max |diff| {diff:.2e}", method.name()));
            assert!(
                diff < 1e-4,
                "{case} {}: max |diff| {diff} vs pytorch-grad-cam\n{}",
                method.name(),
                report.join("\n")
            );
            // The maps are not constant: a check that would pass on all-zero maps is worthless.
            assert!(
                want.std(false).double_value(&[]) > 0.05,
                "{case} {}: reference maps are flat",
                method.name()
            );
        }
        // KPCA-CAM's reference is pytorch-grad-cam's code on float64
        // activations (above, within 1e-4); its own float32 run differs from
        // that by scikit-learn's float32 rounding (about 1e-4 of the range
        // at layer4's resolution, more after upsampling and rescaling).
        let kpca = compute(&model, &x, Method::KpcaCam, Stage::Layer4, &[0], 64).unwrap();
        let diff = max_diff(&kpca.maps, &expected["KPCA-CAM_float32"]);
        report.push(format!(
            "{case} KPCA-CAM against pytorch-grad-cam's float32 run: max |diff| {diff:.2e}"
        ));
        assert!(diff < 1e-3, "{case} KPCA-CAM float32: {diff}");
        // ShapleyCAM at layer3 too: its Hessian term is zero on this ReLU
        // network (see its file), so it equals Grad-CAM there as well.
        let want = &expected["ShapleyCAM_layer3"];
        let got = compute(&model, &x, Method::ShapleyCam, Stage::Layer3, &LABELS, 64).unwrap();
        let diff = max_diff(&got.maps, want);
        report.push(format!("{case} ShapleyCAM layer3: max |diff| {diff:.2e}"));
        assert!(diff < 1e-4, "{case} ShapleyCAM layer3: {diff}");
        let want = &expected["GradCAM_layer3"];
        assert!(
            max_diff(&got.maps, want) < 1e-4,
            "{case}: ShapleyCAM is Grad-CAM here"
        );
        let got = compute(&model, &x, Method::GradCam, Stage::Layer3, &LABELS, 64).unwrap();
        let side = (size as i64 + 3) / 4;
        assert_eq!(got.low.size(), vec![x.size()[0], 4, side, side]);
        let diff = max_diff(&got.maps, want);
        assert!(diff < 1e-4, "{case} GradCAM layer3: {diff}");
        // eigen_smooth (pytorch-grad-cam's option, under EigenCAM's sign convention).
        let eigen = Smooth {
            eigen: true,
            ..Smooth::default()
        };
        for method in [
            Method::GradCam,
            Method::GradCamPlusPlus,
            Method::XGradCam,
            Method::HiResCam,
            Method::LayerCam,
            Method::GradCamElementWise,
            Method::FinerCam,
        ] {
            let want = &expected[&format!("{}_eigen_smooth", method.name())];
            let got = compute_stages_with(&model, &x, method, &[Stage::Layer4], &LABELS, 64, eigen)
                .unwrap();
            let diff = max_diff(&got.maps, want);
            report.push(format!(
                "{case} {} eigen_smooth: max |diff| {diff:.2e}",
                method.name()
            ));
            assert!(diff < 1e-4, "{case} {} eigen_smooth: {diff}", method.name());
            assert!(want.std(false).double_value(&[]) > 0.05);
        }
        // aug_smooth with pytorch-grad-cam's augmentations (flip x brightness).
        let flip = Smooth {
            aug: AugSmooth::FlipBrightness,
            ..Smooth::default()
        };
        for method in [Method::GradCam, Method::HiResCam] {
            let want = &expected[&format!("{}_aug_smooth", method.name())];
            let got = compute_stages_with(&model, &x, method, &[Stage::Layer4], &LABELS, 64, flip)
                .unwrap();
            let diff = max_diff(&got.maps, want);
            report.push(format!(
                "{case} {} aug_smooth: max |diff| {diff:.2e}",
                method.name()
            ));
            assert!(diff < 1e-4, "{case} {} aug_smooth: {diff}", method.name());
            let plain = compute(&model, &x, method, Stage::Layer4, &LABELS, 64).unwrap();
            assert!(
                max_diff(&plain.maps, want) > 1e-3,
                "augmentation changed nothing"
            );
        }
        // Two stages at once (pytorch-grad-cam's several target layers).
        for method in [Method::GradCam, Method::LayerCam] {
            let want = &expected[&format!("{}_layer3+layer4", method.name())];
            let stages = [Stage::Layer3, Stage::Layer4];
            let got = compute_stages(&model, &x, method, &stages, &LABELS, 64).unwrap();
            let diff = max_diff(&got.maps, want);
            report.push(format!(
                "{case} {} layer3+layer4: max |diff| {diff:.2e}",
                method.name()
            ));
            assert!(
                diff < 1e-4,
                "{case} {} layer3+layer4: {diff}",
                method.name()
            );
            // Not simply one of the two stages' maps.
            let l4 = compute(&model, &x, method, Stage::Layer4, &LABELS, 64).unwrap();
            assert!(max_diff(&l4.maps, want) > 1e-2);
        }
        // EigenCAM's sign convention: where numpy's SVD sign goes against it,
        // pytorch-grad-cam's own map is the inverse, and ours is not.
        let ours = compute(&model, &x, Method::EigenCam, Stage::Layer4, &[0], 64).unwrap();
        let raw = &expected["EigenCAM_raw"];
        let flags = Vec::<f32>::try_from(&expected["numpy_unconventional"]).unwrap();
        for (i, f) in flags.iter().enumerate() {
            let d = max_diff(&ours.maps.get(i as i64), &raw.get(i as i64));
            if *f > 0.5 {
                assert!(
                    d > 0.3,
                    "{case} image {i}: numpy's sign is flipped, yet the maps agree"
                );
            } else {
                assert!(d < 1e-4, "{case} image {i}: {d}");
            }
        }
        disagreeing_svds += expected["svd_disagree"].sum(Kind::Float).double_value(&[]);
    }
    // The fixture holds images where numpy's and libtorch's SVDs pick opposite
    // signs: an implementation that kept the solver's sign fails parity there.
    assert!(disagreeing_svds >= 1.0, "no image where the SVDs disagree");
    eprintln!("{}", report.join("\n"));
}

#[test]
fn random_cam_is_a_seeded_baseline() {
    tch::manual_seed(0);
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let a = compute(&model, &x, Method::RandomCam, Stage::Layer4, &[1, 4], 64).unwrap();
    let b = compute(&model, &x, Method::RandomCam, Stage::Layer4, &[1, 4], 64).unwrap();
    let g = compute(&model, &x, Method::GradCam, Stage::Layer4, &[1, 4], 64).unwrap();
    assert_eq!(a.maps.size(), vec![2, 2, 28, 28]);
    // Same seed, same maps; not the Grad-CAM maps; labels get different weights.
    assert!(a.maps.equal(&b.maps));
    assert!((&a.raw - &g.raw).abs().max().double_value(&[]) > 1e-3);
    assert!(
        (a.raw.get(0).get(0) - a.raw.get(0).get(1))
            .abs()
            .max()
            .double_value(&[])
            > 1e-3
    );
    // The raw map is the weighted sum of layer4's activations with weights in [-1, 1]:
    // bounded by the summed activations.
    let (_, act) = model.net.forward_stage(&x, Stage::Layer4, false);
    let bound = act.sum_dim_intlist(1i64, false, Kind::Float).unsqueeze(1);
    assert!(bool::try_from((a.raw.abs() - bound).le(1e-4).all()).unwrap());
}

/// At layer4 every label's gradient comes from one small backward (the
/// linear head's gradient from a zero probe); a label asked for alone takes the
/// per-label backward. Both give the same maps for every gradient method
/// (FinerCAM's comparison target included), on two models and inputs.
#[test]
fn one_backward_for_all_labels_equals_one_per_label() {
    let gradient_methods = [
        Method::GradCam,
        Method::GradCamPlusPlus,
        Method::XGradCam,
        Method::HiResCam,
        Method::LayerCam,
        Method::EigenGradCam,
        Method::GradCamElementWise,
        Method::FinerCam,
        Method::ShapleyCam,
    ];
    for (seed, size) in [(0, 28usize), (1, 64)] {
        tch::manual_seed(seed);
        let model = Model::new(Stem::Small, size, Device::Cpu).unwrap();
        let s = size as i64;
        let x = Tensor::randn([3, 1, s, s], (Kind::Float, Device::Cpu));
        for method in gradient_methods {
            let all = compute(&model, &x, method, Stage::Layer4, &[], 64).unwrap();
            let mut checked = 0;
            for l in [0usize, 5, 13] {
                let one = compute(&model, &x, method, Stage::Layer4, &[l], 64).unwrap();
                let (a, o) = (all.raw.select(1, l as i64), one.raw.select(1, 0));
                let scale = o.abs().max().double_value(&[]);
                let diff = max_diff(&a, &o);
                assert!(
                    diff <= 1e-5 * scale.max(1e-12),
                    "{size} px {} label {l}: {diff} (scale {scale})",
                    method.name()
                );
                checked += (scale > 0.0) as usize;
            }
            assert!(checked > 0, "{} maps were all zero", method.name());
        }
    }
}

/// `f`'s top eigenpair of the symmetric matrices `g` against LAPACK's
/// algebraically largest: the eigenvalue within 1e-10 of the largest
/// magnitude, the vector the same up to sign (1 - |cos| below 1e-8).
fn assert_top_eigenpair(
    g: &Tensor,
    what: &str,
    f: fn(&Tensor) -> chestcam::Result<(Tensor, Tensor)>,
) {
    let p = g.size()[1];
    let (vals, vecs) = g.linalg_eigh("L");
    let (want_val, want_vec) = (vals.select(1, p - 1), vecs.select(2, p - 1));
    let (val, vec) = f(g).unwrap();
    let top = vals.abs().max().double_value(&[]).max(1e-300);
    let dv = max_diff(&val, &want_val) / top;
    let cos = (&vec * &want_vec)
        .sum_dim_intlist(1, false, Kind::Double)
        .abs();
    let dvec = (cos - 1.0).abs().max().double_value(&[]);
    assert!(
        dv < 1e-10 && dvec < 1e-8,
        "{what}: value {dv:e}, vector {dvec:e}"
    );
}

/// The device path of EigenCAM's eigenvector (repeated squaring, used off
/// the CPU) against LAPACK's `eigh` (used on the CPU): the Gram matrices of
/// real activations of two models (positions x positions and channels x
/// channels), random matrices with a known spectrum down to a gap of 1e-3,
/// and a zero matrix.
#[test]
fn top_eigenpair_by_squaring_matches_lapack() {
    use chestcam::cam::top_eigenpair_by_squaring;
    let check = |g: &Tensor, what: &str| assert_top_eigenpair(g, what, top_eigenpair_by_squaring);
    for (seed, size) in [(0, 28usize), (1, 64)] {
        tch::manual_seed(seed);
        let model = Model::new(Stem::Small, size, Device::Cpu).unwrap();
        let side = size as i64;
        let x = Tensor::randn([6, 1, side, side], (Kind::Float, Device::Cpu));
        for stage in [Stage::Layer4, Stage::Layer2] {
            let a = tch::no_grad(|| model.net.forward_to(&x, stage, false)).to_kind(Kind::Double);
            let s = a.size();
            let m = a.view([s[0], s[1], s[2] * s[3]]).transpose(1, 2); // [b, positions, c]
            let m = &m - m.mean_dim(1i64, true, Kind::Double);
            let mt = m.transpose(1, 2);
            check(&m.matmul(&mt), &format!("{size} px {stage:?} positions"));
            check(&mt.matmul(&m), &format!("{size} px {stage:?} channels"));
        }
    }
    // Q diag(spectrum) Q^T with the two largest eigenvalues 1 and 1 - gap.
    tch::manual_seed(2);
    for gap in [0.5, 1e-2, 1e-3] {
        let p = 20;
        let (q, _) = Tensor::linalg_qr(
            &Tensor::randn([4, p, p], (Kind::Double, Device::Cpu)),
            "reduced",
        );
        let mut spectrum: Vec<f64> = (0..p).map(|i| 0.5 * i as f64 / p as f64).collect();
        spectrum[p as usize - 1] = 1.0;
        spectrum[p as usize - 2] = 1.0 - gap;
        let d = Tensor::from_slice(&spectrum).diag_embed(0, -2, -1);
        let g = q.matmul(&d).matmul(&q.transpose(1, 2));
        let g = (&g + g.transpose(1, 2)) / 2.0;
        check(&g, &format!("gap {gap}"));
    }
    let (val, vec) =
        top_eigenpair_by_squaring(&Tensor::zeros([2, 5, 5], (Kind::Double, Device::Cpu))).unwrap();
    assert_eq!(val.abs().sum(Kind::Double).double_value(&[]), 0.0);
    assert_eq!(vec.abs().sum(Kind::Double).double_value(&[]), 0.0);
}

/// KPCA-CAM's device path: the algebraically largest eigenpair of
/// symmetric matrices that may have negative eigenvalues, by squaring the
/// matrix shifted to a non-negative spectrum, against LAPACK's `eigh`: on
/// KPCA's double-centred sigmoid kernels of real activations of two models,
/// and on spectra whose most negative eigenvalue is larger in magnitude
/// than the largest (where squaring alone finds the wrong vector).
#[test]
fn top_algebraic_eigenpair_by_squaring_matches_lapack() {
    use chestcam::cam::{top_algebraic_eigenpair_by_squaring, top_eigenpair_by_squaring};
    let check =
        |g: &Tensor, what: &str| assert_top_eigenpair(g, what, top_algebraic_eigenpair_by_squaring);
    for (seed, size) in [(0, 28usize), (1, 64)] {
        tch::manual_seed(seed);
        let model = Model::new(Stem::Small, size, Device::Cpu).unwrap();
        let side = size as i64;
        let x = Tensor::randn([6, 1, side, side], (Kind::Float, Device::Cpu));
        let a =
            tch::no_grad(|| model.net.forward_to(&x, Stage::Layer4, false)).to_kind(Kind::Double);
        let s = a.size();
        let m = a.view([s[0], s[1], s[2] * s[3]]).transpose(1, 2); // [b, positions, c]
                                                                   // KPCA-CAM's kernel: sigmoid of the centred rows, double-centred.
        let m = &m - m.mean_dim(1i64, true, Kind::Double);
        let k = (m.matmul(&m.transpose(1, 2)) / s[1] as f64 + 1.0).tanh();
        let kc = &k - k.mean_dim(2i64, true, Kind::Double) - k.mean_dim(1i64, true, Kind::Double)
            + k.mean_dim([1i64, 2].as_slice(), true, Kind::Double);
        check(&kc, &format!("{size} px kernel"));
    }
    // Q diag(spectrum) Q^T: largest 1, smallest -3.
    tch::manual_seed(4);
    let p = 16;
    let (q, _) = Tensor::linalg_qr(
        &Tensor::randn([3, p, p], (Kind::Double, Device::Cpu)),
        "reduced",
    );
    let mut spectrum: Vec<f64> = (0..p).map(|i| -0.5 + 0.9 * i as f64 / p as f64).collect();
    spectrum[0] = -3.0;
    spectrum[p as usize - 1] = 1.0;
    let d = Tensor::from_slice(&spectrum).diag_embed(0, -2, -1);
    let g = q.matmul(&d).matmul(&q.transpose(1, 2));
    let g = (&g + g.transpose(1, 2)) / 2.0;
    check(&g, "most negative eigenvalue the largest in magnitude");
    // Squaring alone finds the eigenvalue of largest magnitude there.
    let (wrong, _) = top_eigenpair_by_squaring(&g).unwrap();
    assert!(max_diff(&wrong, &Tensor::from_slice(&[-3.0f64; 3])) < 1e-8);
}

#[test]
fn all_labels_in_one_call_and_bad_input() {
    tch::manual_seed(0);
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    let r = compute(&model, &x, Method::GradCam, Stage::Layer4, &[], 64).unwrap();
    assert_eq!(r.labels, (0..14).collect::<Vec<_>>());
    assert_eq!(r.maps.size(), vec![3, 14, 28, 28]);
    assert_eq!(r.low.size(), vec![3, 14, 4, 4]);
    assert_eq!(r.probs.size(), vec![3, 14]);
    assert!(r.maps.min().double_value(&[]) >= 0.0 && r.maps.max().double_value(&[]) <= 1.0);
    // Label 3 alone equals label 3 within the 14-label call.
    let one = compute(&model, &x, Method::GradCam, Stage::Layer4, &[3], 64).unwrap();
    assert!(one
        .maps
        .get(1)
        .get(0)
        .allclose(&r.maps.get(1).get(3), 1e-6, 1e-6, false));
    let e = compute(&model, &x, Method::GradCam, Stage::Layer4, &[14], 64)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("14"), "{e}");
    let e = compute(
        &model,
        &x.squeeze_dim(1),
        Method::GradCam,
        Stage::Layer4,
        &[],
        64,
    )
    .err()
    .unwrap()
    .to_string();
    assert!(e.contains("[batch, 1, H, W]"), "{e}");
    assert_eq!(
        "gradcam++".parse::<Method>().unwrap(),
        Method::GradCamPlusPlus
    );
    assert_eq!("Score-CAM".parse::<Method>().unwrap(), Method::ScoreCam);
    assert!("fastcam"
        .parse::<Method>()
        .unwrap_err()
        .to_string()
        .contains("\"fastcam\""));
}

#[test]
fn pictures_from_a_trained_run() {
    use chestcam::cam::explain::{label_grid, method_comparison, ExplainOptions};
    let data = chestcam::data::phantom::PhantomConfig {
        counts: [8, 8, 12],
        seed: 3,
        ..Default::default()
    }
    .generate()
    .unwrap()
    .0;
    tch::manual_seed(0);
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let o = ExplainOptions::default();
    let grid = label_grid(&model, &data.test, 2, 6, &o).unwrap();
    // 6 tiles of 224 px in one row, with gaps.
    assert_eq!(grid.image.width(), 6 * (224 + 8) + 8);
    let cmp = method_comparison(
        &model,
        data.test.image(0),
        28,
        2,
        &[Method::GradCam, Method::HiResCam, Method::EigenCam],
        &o,
    )
    .unwrap();
    assert_eq!(cmp.image.width(), 4 * (224 + 8) + 8);
    assert!(label_grid(&model, &data.test, 14, 6, &o).is_err());
}

#[test]
fn one_stage_is_compute_and_bad_stage_lists_are_refused() {
    tch::manual_seed(0);
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    let one = compute_stages(&model, &x, Method::GradCam, &[Stage::Layer3], &[1, 4], 64).unwrap();
    let plain = compute(&model, &x, Method::GradCam, Stage::Layer3, &[1, 4], 64).unwrap();
    assert!(one.maps.equal(&plain.maps));
    let e = compute_stages(&model, &x, Method::GradCam, &[], &[1], 64)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("none given"), "{e}");
    let twice = [Stage::Layer4, Stage::Layer3, Stage::Layer4];
    let e = compute_stages(&model, &x, Method::GradCam, &twice, &[1], 64)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("layer4 named twice (position 3)"), "{e}");
}

#[test]
fn shift_augmentation_is_undone_on_the_maps() {
    // A map computed on a shifted image and shifted back lines up with the
    // image: here the "map" is the image itself.
    let x = Tensor::arange(2 * 28 * 28, (Kind::Float, Device::Cpu)).view([2, 1, 28, 28]);
    let augs = AugSmooth::ShiftsBrightness.augmentations(28);
    assert_eq!(augs.len(), 9);
    assert_eq!(AugSmooth::FlipBrightness.augmentations(28).len(), 6);
    assert!(AugSmooth::Off.augmentations(28).is_empty());
    for a in &augs {
        let y = a.apply(&x).unwrap();
        let back = a.undo(&y).unwrap();
        // Inside the border the content is back in place (scaled by the brightness factor).
        let inner = |t: &Tensor| t.narrow(2, 1, 26).narrow(3, 1, 26);
        let ratio = inner(&back) / inner(&x).clamp_min(1.0);
        let (lo, hi) = (ratio.min().double_value(&[]), ratio.max().double_value(&[]));
        assert!((hi - lo).abs() < 1e-5, "{a:?}: {lo}..{hi}");
    }
    let e = "sideways".parse::<AugSmooth>().err().unwrap().to_string();
    assert!(e.contains("expected off, shifts or flip"), "{e}");
}

#[test]
fn upsampling_maps_as_channels_equals_the_plain_path() {
    // The CUDA path (the maps as the channels of one channels-last image)
    // against the plain NCHW path, here on the CPU: the same values at the
    // sizes chestcam meets and a non-square one.
    use chestcam::cam::{upsample_maps, upsample_maps_as_channels};
    tch::manual_seed(3);
    for (shape, size) in [
        ([3, 14, 4, 4], [28, 28]),
        ([2, 5, 8, 8], [64, 64]),
        ([2, 3, 7, 7], [224, 224]),
        ([2, 2, 4, 6], [28, 30]),
    ] {
        let m = tch::Tensor::rand(shape, (tch::Kind::Float, tch::Device::Cpu));
        let plain = upsample_maps(&m, size).unwrap();
        let chan = upsample_maps_as_channels(&m, size).unwrap();
        assert_eq!(plain.size(), vec![shape[0], shape[1], size[0], size[1]]);
        assert_eq!(chan.size(), plain.size());
        assert!(chan.is_contiguous(), "{shape:?}");
        let d = max_diff(&plain, &chan);
        assert!(d <= 1e-6, "{shape:?} -> {size:?}: {d}");
        // Each map is its own: map (0, 1) upsampled alone is the same.
        let one = upsample_maps(&m.narrow(0, 0, 1).narrow(1, 1, 1), size).unwrap();
        let d = max_diff(&one.squeeze(), &chan.get(0).get(1));
        assert!(d <= 1e-6, "{shape:?}: map (0, 1) alone differs by {d}");
    }
    let err =
        upsample_maps_as_channels(&tch::Tensor::zeros([4, 4, 4], tch::kind::FLOAT_CPU), [8, 8])
            .err()
            .unwrap()
            .to_string();
    assert!(err.contains("expected [batch, labels, h, w]"), "{err}");
}

#[test]
fn a_cam_graph_gives_each_batch_its_own_maps_on_two_models() {
    use chestcam::cam::graph::{not_capturable, CamGraph};
    use chestcam::graphed::WARMUP_CALLS;
    // On the CPU the graph is emulated: the same copies in and out and
    // the same static tensors overwritten in place by each "replay" as on
    // CUDA, where the device script (`chestcam bench`'s graph rows)
    // compares the replayed maps with eager ones on the card.
    tch::manual_seed(3);
    type Case = (Stem, i64, Method, Vec<Stage>, Vec<usize>, Smooth);
    let cases: [Case; 4] = [
        (
            Stem::Small,
            28,
            Method::GradCam,
            vec![Stage::Layer4],
            vec![],
            Smooth::default(),
        ),
        (
            Stem::Small,
            28,
            Method::FinerCam,
            vec![Stage::Layer3, Stage::Layer4],
            vec![2, 7, 13],
            Smooth {
                eigen: true,
                aug: AugSmooth::Off,
            },
        ),
        (
            Stem::Imagenet,
            64,
            Method::EigenGradCam,
            vec![Stage::Layer4],
            vec![],
            Smooth {
                eigen: false,
                aug: AugSmooth::ShiftsBrightness,
            },
        ),
        (
            Stem::Imagenet,
            64,
            Method::ShapleyCam,
            vec![Stage::Layer3],
            vec![0, 5],
            Smooth::default(),
        ),
    ];
    for (stem, size, method, stages, labels, smooth) in cases {
        let model = Model::new(stem, size as usize, Device::Cpu).unwrap();
        let batch = |k: i64| {
            Tensor::randn([2, 1, size, size], (Kind::Float, Device::Cpu))
                .f_add_scalar(k as f64 * 0.1)
        };
        let first = batch(0).unwrap();
        let mut g = CamGraph::new(&model, &first, method, &stages, &labels, 8, smooth).unwrap();
        let mut kept = Vec::new();
        for k in 0..(WARMUP_CALLS as i64 + 2) {
            let x = if k == 0 {
                first.shallow_clone()
            } else {
                batch(k).unwrap()
            };
            let got = g.compute(&x).unwrap();
            assert_eq!(g.captured(), k >= WARMUP_CALLS as i64);
            let want =
                compute_stages_with(&model, &x, method, &stages, &labels, 8, smooth).unwrap();
            let what = format!("{method:?} call {k}");
            assert_eq!(
                (got.stage, &got.labels),
                (want.stage, &want.labels),
                "{what}"
            );
            for (name, a, b) in [
                ("maps", &got.maps, &want.maps),
                ("low", &got.low, &want.low),
                ("raw", &got.raw, &want.raw),
                ("probs", &got.probs, &want.probs),
            ] {
                assert_eq!(a.size(), b.size(), "{what} {name}");
                assert!(max_diff(a, b) < 1e-6, "{what} {name}: {}", max_diff(a, b));
            }
            kept.push((x, got.maps));
        }
        // Earlier results are the callers' own: later replays leave them be.
        for (x, maps) in &kept {
            let want = compute_stages_with(&model, x, method, &stages, &labels, 8, smooth).unwrap();
            assert!(max_diff(maps, &want.maps) < 1e-6, "{method:?} kept maps");
        }
        let e = g
            .compute(&Tensor::zeros(
                [3, 1, size, size],
                (Kind::Float, Device::Cpu),
            ))
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("[3, 1,") && e.contains("run other shapes eagerly"),
            "{e}"
        );
    }
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::zeros([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    for m in [Method::AblationCam, Method::RandomCam, Method::ScoreCam] {
        let e = CamGraph::new(&model, &x, m, &[Stage::Layer4], &[], 8, Smooth::default())
            .err()
            .unwrap()
            .to_string();
        assert!(
            e.contains("cannot be captured") && e.contains(m.name()),
            "{e}"
        );
        assert!(not_capturable(m).is_some());
    }
    assert_eq!(
        Method::ALL
            .iter()
            .filter(|m| not_capturable(**m).is_none())
            .count(),
        Method::ALL.len() - 3
    );
}
