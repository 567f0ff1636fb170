//! The ATen operator counter (`chestcam::shim::count_ops`): what it counts,
//! and what the CAM methods cost in kernels beyond a plain forward. One
//! test in its own binary: the counter sees every thread of the process.
use chestcam::cam::{compute, Method};
use chestcam::model::{Model, Stage, Stem};
use chestcam::shim::count_ops;
use tch::{Device, Kind, Tensor};

#[test]
fn operators_are_counted_and_cam_methods_cost_few_kernels_beyond_a_forward() {
    tch::set_num_threads(2);
    // Operators with a CPU kernel of their own, by name; views are calls
    // but no kernels. relu's kernel calls clamp_min (both count), and sum
    // fills its output first (fill_): the count approximates launches.
    let a = Tensor::arange(12, (Kind::Float, Device::Cpu));
    let b = Tensor::ones([12], (Kind::Float, Device::Cpu));
    let (s, c) = count_ops(|| {
        let x = (&a + &b).relu();
        let y = x.view([3, 4]).transpose(0, 1).unsqueeze(0);
        Ok(y.sum(Kind::Float))
    })
    .unwrap();
    assert_eq!(s.double_value(&[]), 78.0);
    let kernels: Vec<(&str, u64)> = c.top(10);
    assert_eq!(
        kernels,
        [
            ("aten::add", 1),
            ("aten::clamp_min", 1),
            ("aten::fill_", 1),
            ("aten::relu", 1),
            ("aten::sum", 1)
        ],
        "{c:?}"
    );
    assert_eq!(c.kernels(), 5);
    assert!(c.by_name.contains_key("aten::view"), "{c:?}");
    assert!(
        c.calls > c.kernels(),
        "views and composites are calls: {c:?}"
    );
    // One count at a time; the outer one still ends cleanly.
    let (inner, _) = count_ops(|| Ok(count_ops(|| Ok(())).map(|_| ()))).unwrap();
    let e = inner.unwrap_err().to_string();
    assert!(e.contains("being counted already"), "{e}");
    let (_, again) = count_ops(|| Ok((&a * 2.0).sum(Kind::Float))).unwrap();
    assert_eq!(again.kernels(), 3, "mul, fill_, sum: {again:?}");
    // A backward runs its kernels on the counting thread (CPU).
    let w = Tensor::ones([12], (Kind::Float, Device::Cpu)).set_requires_grad(true);
    let (_, bw) = count_ops(|| {
        (&w * &a).sum(Kind::Float).backward();
        Ok(())
    })
    .unwrap();
    assert!(bw.kernels() >= 3, "forward and backward kernels: {bw:?}");

    // Every label's map from one call costs about one forward in kernels,
    // on two models (stems) and sizes.
    for (stem, size) in [(Stem::Small, 28), (Stem::Imagenet, 96)] {
        tch::manual_seed(1);
        let model = Model::new(stem, size, Device::Cpu).unwrap();
        let x = Tensor::randn([4, 1, size as i64, size as i64], (Kind::Float, Device::Cpu));
        let labels: Vec<usize> = (0..14).collect();
        let (_, forward) = count_ops(|| Ok(model.logits(&x))).unwrap();
        let fwd = forward.kernels();
        assert!(fwd > 40, "a ResNet-18 forward: {forward:?}");
        for (method, bound) in [
            (Method::GradCam, 2.0),
            (Method::HiResCam, 2.0),
            (Method::EigenCam, 2.0),
        ] {
            let (_, c) =
                count_ops(|| compute(&model, &x, method, Stage::Layer4, &labels, 64)).unwrap();
            let ratio = c.kernels() as f64 / fwd as f64;
            println!(
                "{stem} {size} px {}: {} kernels, a forward {fwd} ({ratio:.2} forwards); most: {:?}",
                method.name(),
                c.kernels(),
                c.top(8)
            );
            assert!(ratio < bound, "{method:?}: {ratio}");
        }
    }
}

#[test]
#[ignore]
fn print_gradcam_ops_beyond_a_forward() {
    tch::manual_seed(1);
    let model = Model::new(Stem::Small, 28, Device::Cpu).unwrap();
    let x = Tensor::randn([4, 1, 28, 28], (Kind::Float, Device::Cpu));
    let labels: Vec<usize> = (0..14).collect();
    let (_, f) = count_ops(|| Ok(model.logits(&x))).unwrap();
    for m in [
        Method::GradCam,
        Method::EigenCam,
        Method::GradCamPlusPlus,
        Method::LayerCam,
    ] {
        let (_, c) = count_ops(|| compute(&model, &x, m, Stage::Layer4, &labels, 64)).unwrap();
        let mut diff: Vec<(String, i64)> = c
            .by_name
            .iter()
            .map(|(n, k)| {
                (
                    n.clone(),
                    *k as i64 - *f.by_name.get(n).unwrap_or(&0) as i64,
                )
            })
            .filter(|(_, d)| *d != 0)
            .collect();
        diff.sort_by_key(|(_, d)| -d);
        println!("{m:?}: {diff:?}");
    }
}
