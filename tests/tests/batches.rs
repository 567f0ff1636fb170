//! Mini-batches: shapes, seeded shuffles, augmentation without flips.
use chestcam::data::{Augment, Batches, Dataset};
use tch::{Device, Kind};

fn nih() -> Dataset {
    Dataset::from_npz(chestcam_tests::nih1000_dir().join("nih1000.npz")).unwrap()
}

fn first_labels(b: &mut Batches) -> Vec<f64> {
    let (_, y) = b.next().unwrap().unwrap();
    Vec::<f64>::try_from(y.sum_dim_intlist(1i64, false, Kind::Double)).unwrap()
}

#[test]
fn batches_cover_the_split_in_seeded_order() {
    let d = nih();
    let b = Batches::new(&d.test, 50, Some(3), None, Device::Cpu).unwrap();
    assert_eq!(b.len(), 4);
    let mut total = 0.0;
    let mut n = 0;
    let mut sizes = vec![];
    for r in b {
        let (x, y) = r.unwrap();
        sizes.push(x.size()[0]);
        assert_eq!(&x.size()[1..], &[1, 28, 28]);
        n += y.size()[0];
        total += y.sum(Kind::Double).double_value(&[]);
    }
    assert_eq!(sizes, vec![50, 50, 50, 16]);
    assert_eq!(n, 166);
    assert_eq!(total, 114.0, "every label row exactly once");
    let mut a = Batches::new(&d.test, 50, Some(3), None, Device::Cpu).unwrap();
    let mut a2 = Batches::new(&d.test, 50, Some(3), None, Device::Cpu).unwrap();
    let mut c = Batches::new(&d.test, 50, Some(4), None, Device::Cpu).unwrap();
    let (la, la2, lc) = (
        first_labels(&mut a),
        first_labels(&mut a2),
        first_labels(&mut c),
    );
    assert_eq!(la, la2);
    assert_ne!(la, lc);
    // No seed: file order.
    let (x, _) = Batches::new(&d.test, 5, None, None, Device::Cpu)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let expect = d.test.images_tensor(Device::Cpu).unwrap().narrow(0, 0, 5);
    assert!(x.equal(&expect));
}

#[test]
fn augmentation_shifts_but_never_flips_by_default() {
    let d = nih();
    let aug = Augment {
        brightness: 0.0,
        contrast: 0.0,
        ..Augment::default()
    };
    assert!(!aug.hflip);
    let (x, _) = Batches::new(&d.test, 64, None, Some(aug), Device::Cpu)
        .unwrap()
        .next()
        .unwrap()
        .unwrap();
    let orig = d.test.images_tensor(Device::Cpu).unwrap().narrow(0, 0, 64);
    assert!(x.min().double_value(&[]) >= -1.0 && x.max().double_value(&[]) <= 1.0);
    // Each augmented image equals its original shifted by at most 2 px.
    let mut shifted = 0;
    for i in 0..64 {
        let (a, o) = (x.get(i), orig.get(i));
        let mut found = false;
        for dy in -2i64..=2 {
            for dx in -2i64..=2 {
                let ys = (dy.max(0), (-dy).max(0));
                let xs = (dx.max(0), (-dx).max(0));
                let h = 28 - dy.abs();
                let w = 28 - dx.abs();
                let av = a.narrow(1, ys.0, h).narrow(2, xs.0, w);
                let ov = o.narrow(1, ys.1, h).narrow(2, xs.1, w);
                if av.equal(&ov) {
                    found = true;
                    if dy != 0 || dx != 0 {
                        shifted += 1;
                    }
                }
            }
        }
        assert!(found, "image {i} is not a pure shift of its original");
    }
    assert!(shifted > 30, "most images should move: {shifted}");
}

#[test]
fn batch_size_zero_is_refused() {
    let d = nih();
    let e = Batches::new(&d.test, 0, None, None, Device::Cpu)
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("batch size") && e.contains('0'), "{e}");
}

/// Data randomisation: with a permutation of the label rows, each image
/// keeps its pixels and takes another row's labels, from the host and from
/// device tensors alike; a list that is no permutation is refused.
#[test]
fn label_rows_follow_a_permutation() {
    let d = nih();
    let n = d.test.len();
    let rows: Vec<i64> = (0..n as i64).rev().collect();
    let plain = Batches::new(&d.test, n, None, None, Device::Cpu).unwrap();
    let shuffled = Batches::new(&d.test, n, None, None, Device::Cpu)
        .unwrap()
        .with_labels_of(rows.clone())
        .unwrap();
    let on_tensors = Batches::from_tensors(
        d.test.images_u8_on(n, Device::Cpu).unwrap(),
        d.test.head_labels(n, Device::Cpu).unwrap(),
        n,
        None,
        None,
    )
    .unwrap()
    .with_labels_of(rows.clone())
    .unwrap();
    let ((x0, y0), (x1, y1), (x2, y2)) = (
        plain.into_iter().next().unwrap().unwrap(),
        shuffled.into_iter().next().unwrap().unwrap(),
        on_tensors.into_iter().next().unwrap().unwrap(),
    );
    assert!(
        x0.equal(&x1) && x0.equal(&x2),
        "the images keep their place"
    );
    assert!(
        y1.equal(&y0.flip([0])) && y2.equal(&y1),
        "labels of the reversed rows"
    );
    assert!(!y1.equal(&y0));
    for bad in [vec![0i64; n], (0..n as i64 - 1).collect(), vec![-1; n]] {
        let e = Batches::new(&d.test, 8, None, None, Device::Cpu)
            .unwrap()
            .with_labels_of(bad)
            .err()
            .unwrap()
            .to_string();
        assert!(e.contains("label permutation"), "{e}");
    }
}

#[test]
fn pinned_memory_and_free_device_memory_answer_in_words_without_a_gpu() {
    // Host batches for a GPU are copied through pinned memory, and the
    // training split's place depends on the device's free memory (see
    // train's `--data-on-device`). Without a GPU both are refused in one
    // line (the batches then take a blocking copy); with one, the pinned
    // copy holds the same values.
    let t = tch::Tensor::from_slice(&[1u8, 2, 3, 250]);
    let pinned = chestcam::shim::pin_memory(&t);
    let free = chestcam::shim::cuda_free_memory(0);
    if tch::Cuda::is_available() {
        assert!(pinned.unwrap().equal(&t));
        let (free, total) = free.unwrap();
        assert!(free > 0 && free <= total, "{free} of {total}");
    } else {
        for e in [pinned.err().unwrap(), free.err().unwrap()] {
            let e = e.to_string();
            assert!(e.lines().count() == 1 && !e.contains("panicked"), "{e}");
        }
    }
}
