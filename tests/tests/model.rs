//! ResNet-18: names, sizes, stems, weight files, ImageNet initialisation.
use chestcam::model::{check_stem, feature_sizes, Model, ResNet18, Stage, Stem};
use tch::{Device, Kind, Tensor};

#[test]
fn torchvision_names_and_parameter_counts() {
    let m = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let vars = m.vs.variables();
    for name in [
        "conv1.weight",
        "bn1.running_var",
        "layer1.0.conv1.weight",
        "layer2.0.downsample.0.weight",
        "layer2.0.downsample.1.running_mean",
        "layer4.1.bn2.bias",
        "head.weight",
        "head.bias",
    ] {
        assert!(vars.contains_key(name), "missing {name}");
    }
    assert!(!vars.keys().any(|k| k.starts_with("fc.")));
    assert!(!vars.contains_key("layer1.0.downsample.0.weight"));
    // python scripts/resnet_torch.py: small 11174862, imagenet 11177422
    let total = |m: &Model| {
        ResNet18::parameter_counts(&m.vs)
            .iter()
            .map(|(_, n)| n)
            .sum::<i64>()
    };
    assert_eq!(total(&m), 11_174_862);
    assert_eq!(
        total(&Model::new(Stem::Imagenet, 224, Device::Cpu).unwrap()),
        11_177_422
    );
    let groups = ResNet18::parameter_counts(&m.vs);
    assert_eq!(groups[5], ("head".to_string(), 512 * 14 + 14));
}

#[test]
fn stage_sizes_and_the_1x1_guard() {
    assert_eq!(feature_sizes(Stem::Small, 28), [28, 14, 7, 4]);
    assert_eq!(feature_sizes(Stem::Imagenet, 224), [56, 28, 14, 7]);
    assert_eq!(feature_sizes(Stem::Imagenet, 28), [7, 4, 2, 1]);
    let e = check_stem(Stem::Imagenet, 28).unwrap_err().to_string();
    assert!(
        e.contains("1x1") && e.contains("constant") && e.contains("--stem small"),
        "{e}"
    );
    assert!(Model::new(Stem::Imagenet, 28, Device::Cpu).is_err());
    assert_eq!(Stem::default_for(28), Stem::Small);
    assert_eq!(Stem::default_for(64), Stem::Small);
    assert_eq!(Stem::default_for(128), Stem::Imagenet);
    assert!("wide"
        .parse::<Stem>()
        .unwrap_err()
        .to_string()
        .contains("\"wide\""));
}

#[test]
fn forward_keeps_the_chosen_stage() {
    tch::manual_seed(0);
    let m = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([2, 1, 28, 28], (Kind::Float, Device::Cpu));
    for (stage, shape) in [
        (Stage::Layer1, [2, 64, 28, 28]),
        (Stage::Layer2, [2, 128, 14, 14]),
        (Stage::Layer3, [2, 256, 7, 7]),
        (Stage::Layer4, [2, 512, 4, 4]),
    ] {
        let (logits, act) = m.net.forward_stage(&x, stage, false);
        assert_eq!(logits.size(), vec![2, 14]);
        assert_eq!(act.size(), shape.to_vec());
        assert!(act.requires_grad(), "activation must stay in the graph");
    }
    // Gradients with respect to the layer4 activation reach it.
    let (logits, act) = m.net.forward_stage(&x, Stage::Layer4, false);
    let g = Tensor::run_backward(&[logits.get(0).get(3)], &[&act], true, false);
    assert_eq!(g[0].size(), vec![2, 512, 4, 4]);
    assert!(g[0].get(0).abs().sum(Kind::Float).double_value(&[]) > 0.0);
    assert_eq!(
        g[0].get(1).abs().sum(Kind::Float).double_value(&[]),
        0.0,
        "image 1 does not affect image 0's score in eval mode"
    );
}

#[test]
fn save_and_load_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("w.safetensors");
    tch::manual_seed(1);
    let a = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    a.save(&p).unwrap();
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "no temp file left"
    );
    tch::manual_seed(2);
    let mut b = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([3, 1, 28, 28], (Kind::Float, Device::Cpu));
    assert!(!a.logits(&x).allclose(&b.logits(&x), 1e-6, 1e-6, false));
    b.load(&p).unwrap();
    assert!(a.logits(&x).equal(&b.logits(&x)));
    let mut c = Model::new(Stem::Imagenet, 224, Device::Cpu).unwrap();
    let e = c.load(&p).unwrap_err().to_string();
    assert!(e.contains("w.safetensors") && e.contains("imagenet"), "{e}");
    let e = c
        .load(dir.path().join("none.safetensors"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("none.safetensors"), "{e}");
}

#[test]
fn imagenet_init_sums_rgb_and_keeps_the_head() {
    // A small generated stand-in for torchvision's resnet18 weights: every
    // name as torchvision has it, a 3-channel conv1 and a 1000-way fc.
    tch::manual_seed(3);
    let donor = Model::new(Stem::Imagenet, 224, Device::Cpu).unwrap();
    let mut named: Vec<(String, Tensor)> = donor
        .vs
        .variables()
        .into_iter()
        .filter(|(n, _)| !n.starts_with("head."))
        .map(|(n, t)| (n, t.detach().copy()))
        .collect();
    let rgb = Tensor::randn([64, 3, 7, 7], (Kind::Float, Device::Cpu));
    named.retain(|(n, _)| n != "conv1.weight");
    named.push(("conv1.weight".into(), rgb.copy()));
    named.push((
        "fc.weight".into(),
        Tensor::randn([1000, 512], (Kind::Float, Device::Cpu)),
    ));
    named.push((
        "fc.bias".into(),
        Tensor::zeros([1000], (Kind::Float, Device::Cpu)),
    ));
    named.push(("bn1.num_batches_tracked".into(), Tensor::from(5i64)));
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("resnet18_imagenet.safetensors");
    Tensor::write_safetensors(
        &named
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .collect::<Vec<_>>(),
        &p,
    )
    .unwrap();

    tch::manual_seed(4);
    let mut m = Model::new(Stem::Imagenet, 224, Device::Cpu).unwrap();
    let head_before = m.vs.variables()["head.weight"].copy();
    let report = m.load_imagenet(&p).unwrap();
    let vars = m.vs.variables();
    assert!(vars["conv1.weight"].allclose(
        &rgb.sum_dim_intlist(1i64, true, Kind::Float),
        1e-6,
        1e-6,
        false
    ));
    assert!(vars["layer3.1.conv2.weight"].equal(&donor.vs.variables()["layer3.1.conv2.weight"]));
    assert!(vars["layer2.0.downsample.1.running_var"]
        .equal(&donor.vs.variables()["layer2.0.downsample.1.running_var"]));
    assert!(vars["head.weight"].equal(&head_before));
    assert_eq!(report.loaded.len(), vars.len() - 2);
    assert_eq!(report.skipped.len(), 2);

    // A file with a tensor missing names it.
    named.retain(|(n, _)| n != "layer4.0.bn1.weight");
    let p2 = dir.path().join("partial.safetensors");
    Tensor::write_safetensors(
        &named
            .iter()
            .map(|(n, t)| (n.as_str(), t))
            .collect::<Vec<_>>(),
        &p2,
    )
    .unwrap();
    let e = m.load_imagenet(&p2).unwrap_err().to_string();
    assert!(
        e.contains("partial.safetensors") && e.contains("layer4.0.bn1.weight"),
        "{e}"
    );
}

#[test]
fn torchvision_pth_converted_by_the_script_loads() {
    // Needs the project venv (torch + torchvision), which `make test` sets up.
    let dir = tempfile::tempdir().unwrap();
    let pth = dir.path().join("resnet18.pth");
    let st = dir.path().join("resnet18.safetensors");
    let root = concat!(env!("CARGO_MANIFEST_DIR"), "/..");
    // A randomly initialised torchvision resnet18, saved as torchvision ships it.
    let gen = format!("import torch, torchvision; torch.manual_seed(0); torch.save(torchvision.models.resnet18(weights=None).state_dict(), {:?})", pth.display().to_string());
    let ok = std::process::Command::new("python")
        .args(["-c", &gen])
        .status()
        .unwrap();
    assert!(
        ok.success(),
        "python with torchvision is needed (make setup)"
    );
    let ok = std::process::Command::new("python")
        .arg(format!("{root}/scripts/convert_torchvision_resnet18.py"))
        .arg(&pth)
        .arg(&st)
        .status()
        .unwrap();
    assert!(ok.success());
    let file: std::collections::HashMap<String, Tensor> =
        Tensor::read_safetensors(&st).unwrap().into_iter().collect();
    assert_eq!(file["fc.weight"].size(), vec![1000, 512]);
    let mut m = Model::new(Stem::Imagenet, 128, Device::Cpu).unwrap();
    let report = m.load_imagenet(&st).unwrap();
    let vars = m.vs.variables();
    assert_eq!(report.loaded.len(), vars.len() - 2);
    assert!(vars["conv1.weight"].allclose(
        &file["conv1.weight"].sum_dim_intlist(1i64, true, Kind::Float),
        1e-6,
        1e-6,
        false
    ));
    assert!(vars["layer4.1.bn2.running_mean"].equal(&file["layer4.1.bn2.running_mean"]));
}

/// Weights that do not depend on the global RNG (which tests running in
/// parallel share): every weight matrix and kernel a smooth pseudo-random
/// pattern with He initialisation's spread, biases zero; batch norms keep
/// their constant initial values.
fn fixed_weights(m: &Model) {
    tch::no_grad(|| {
        for (i, (name, mut p)) in m.named_tensors().into_iter().enumerate() {
            let size = p.size();
            if name.contains("bn") || name.contains("downsample.1") || name.contains("running") {
                continue;
            }
            if size.len() < 2 {
                let _ = p.zero_();
                continue;
            }
            let fan_in: i64 = size[1..].iter().product();
            let std = (2.0 / fan_in as f64).sqrt();
            let v = (Tensor::arange(p.numel() as i64, (Kind::Float, Device::Cpu)) * 0.7919
                + i as f64)
                .sin()
                * (std * 2f64.sqrt());
            p.copy_(&v.view(size.as_slice()));
        }
    });
}

#[test]
fn channels_last_gives_the_same_logits_gradients_and_saved_weights() {
    use chestcam::model::Stage;
    use chestcam::shim::{channels_last, is_channels_last};
    // Two stems and sizes.
    for (stem, size) in [(Stem::Small, 28), (Stem::Imagenet, 96)] {
        let a = Model::new(stem, size, Device::Cpu).unwrap();
        fixed_weights(&a);
        let dir = tempfile::tempdir().unwrap();
        let w = dir.path().join("w.safetensors");
        a.save(&w).unwrap();
        // The saved weights again, in float64 or not, channels-last or not.
        let loaded = |double: bool, cl: bool| {
            let mut m = Model::new(stem, size, Device::Cpu).unwrap();
            m.load(&w).unwrap();
            if double {
                m.vs.double();
            }
            if cl {
                m.to_channels_last().unwrap();
            }
            m
        };
        let b = loaded(false, true);
        let conv = b
            .named_tensors()
            .into_iter()
            .find(|(n, _)| n == "layer1.0.conv1.weight")
            .unwrap()
            .1;
        assert!(is_channels_last(&conv));
        // A fixed input (the global RNG is shared with tests running in
        // parallel): a smooth pattern in [-1, 1].
        let n = 6 * size as i64 * size as i64;
        let x = (Tensor::arange(n, (Kind::Float, Device::Cpu)) * 0.37)
            .sin()
            .view([6, 1, size as i64, size as i64]);
        let xc = channels_last(&x).unwrap();
        // (With one channel both layouts hold the same bytes; only the
        // strides say which one convolutions should use.)
        assert!(is_channels_last(&xc));
        assert!(xc.equal(&x), "same values, other layout");
        let la = a.logits(&x);
        let lb = b.logits(&xc);
        let d = (&la - &lb).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{stem}: logits differ by {d}");
        // Gradients of one training-mode loss, in float32 (the kernels
        // training uses) and in float64.
        let grads = |m: &Model, input: &Tensor| -> (Tensor, Vec<(String, Tensor)>) {
            for (_, p) in m.named_tensors() {
                if p.requires_grad() {
                    let mut g = p.grad();
                    if g.defined() {
                        let _ = g.zero_();
                    }
                }
            }
            let (out, _) = m.net.forward_stage(input, Stage::Layer4, true);
            out.sum(out.kind()).backward();
            let g = m
                .named_tensors()
                .into_iter()
                .filter(|(_, p)| p.requires_grad())
                .map(|(n, p)| (n, p.grad().copy()))
                .collect();
            (out.detach(), g)
        };
        let (oa, ga32) = grads(&a, &x);
        let (ob, gb32) = grads(&b, &xc);
        let d = (&oa - &ob).abs().max().double_value(&[]);
        assert!(d < 1e-4, "{stem}: training-mode logits differ by {d}");
        // float32: sums over batch x pixels run in another order, through
        // batch norms that cancel most of them, so a small gradient (a
        // BatchNorm bias) can differ by a few percent, and by how much
        // moves between runs with the CPU kernels' thread scheduling
        // (0.0015% to 3.6% on the same weights). The cosine over all
        // parameters is stable (1 - 2.2e-7 at worst in six runs): it is the
        // float32 check.
        let (mut dot, mut na2, mut nb2) = (0.0, 0.0, 0.0);
        for ((_, ga), (_, gb)) in ga32.iter().zip(gb32.iter()) {
            dot += (ga * gb).sum(Kind::Double).double_value(&[]);
            na2 += (ga * ga).sum(Kind::Double).double_value(&[]);
            nb2 += (gb * gb).sum(Kind::Double).double_value(&[]);
        }
        let cos = dot / (na2.sqrt() * nb2.sqrt());
        eprintln!("{stem}: float32 gradients' cosine {cos:.8}");
        assert!(cos > 0.99999, "{stem}: gradients' cosine {cos}");
        // float64, parameter by parameter: the same network, weights and
        // input, where summation order no longer shows. Every gradient,
        // the small ones included, must agree to 1e-6 (relative L2), a
        // bound 30,000 times tighter than float32 could hold.
        let (a64, b64) = (loaded(true, false), loaded(true, true));
        let x64 = x.to_kind(Kind::Double);
        let (o64a, g64a) = grads(&a64, &x64);
        let (o64b, g64b) = grads(&b64, &channels_last(&x64).unwrap());
        let d = (&o64a - &o64b).abs().max().double_value(&[]);
        assert!(
            d < 1e-10,
            "{stem}: float64 training-mode logits differ by {d}"
        );
        let mut worst = 0.0f64;
        for ((n, ga), (_, gb)) in g64a.iter().zip(g64b.iter()) {
            let rel = (ga - gb).norm().double_value(&[]) / ga.norm().double_value(&[]).max(1e-12);
            worst = worst.max(rel);
            assert!(
                rel < 1e-6,
                "{stem}: float64 gradient of {n} differs by {rel} (relative L2)"
            );
        }
        eprintln!("{stem}: largest relative float64 gradient difference {worst:.2e}");
        // A channels-last model saves plain NCHW bytes that load anywhere.
        let w2 = dir.path().join("w2.safetensors");
        b.save(&w2).unwrap();
        let mut c = Model::new(stem, size, Device::Cpu).unwrap();
        c.load(&w2).unwrap();
        let d = (&a.logits(&x) - &c.logits(&x))
            .abs()
            .max()
            .double_value(&[]);
        assert!(d < 1e-5, "{stem}: reloaded logits differ by {d}");
    }
}
