//! The phantom generator: deterministic bytes, and masks that cover exactly
//! where each label's pattern was drawn.
use chestcam::data::phantom::{render_one, PhantomConfig};
use chestcam::data::registry::{LABELS, NUM_LABELS};
use chestcam::data::{Dataset, SplitName};

#[test]
fn same_seed_same_bytes_on_disk() {
    let cfg = PhantomConfig {
        counts: [30, 10, 10],
        seed: 7,
        ..Default::default()
    };
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (da, ma) = cfg.write(a.path()).unwrap();
    let (db, mb) = cfg.write(b.path()).unwrap();
    assert_eq!(std::fs::read(&da).unwrap(), std::fs::read(&db).unwrap());
    assert_eq!(std::fs::read(&ma).unwrap(), std::fs::read(&mb).unwrap());
    // The written file reads back through the ordinary loader.
    let d = Dataset::from_npz(&da).unwrap();
    let (g, _) = cfg.generate().unwrap();
    assert_eq!(d.train, g.train);
    assert_eq!(d.test.len(), 10);
    let mut r = chestcam::data::npz::NpzReader::open(&ma).unwrap();
    let m = r.read_u8("val_masks").unwrap();
    assert_eq!(m.shape, vec![10, NUM_LABELS, 28, 28]);
}

#[test]
fn every_size_from_28_to_224() {
    for size in [28, 64, 100, 128, 224] {
        let (d, m) = PhantomConfig {
            size,
            counts: [3, 1, 1],
            ..Default::default()
        }
        .generate()
        .unwrap();
        assert_eq!(d.train.images.len(), 3 * size * size);
        assert_eq!(m.train.len(), 3 * NUM_LABELS * size * size);
        assert!(d.provenance.synthetic && d.provenance.to_string().contains("SYNTHETIC"));
    }
}

#[test]
fn prevalence_is_near_the_target() {
    let (d, _) = PhantomConfig {
        counts: [4000, 0, 0],
        ..Default::default()
    }
    .generate()
    .unwrap();
    let p = d.split(SplitName::Train).prevalence();
    // Infiltration targets 17.7% plus co-occurrence with pneumonia.
    assert!((0.16..0.21).contains(&p[3]), "infiltration {}", p[3]);
    for (k, v) in p.iter().enumerate() {
        assert!(*v >= 0.01 && *v < 0.25, "{}: {v}", LABELS[k]);
    }
    // Co-occurrence: effusion is much likelier with cardiomegaly.
    let t = &d.train;
    let with_cardio: Vec<usize> = (0..t.len()).filter(|&i| t.label_row(i)[1] == 1).collect();
    let eff_given_cardio = with_cardio
        .iter()
        .filter(|&&i| t.label_row(i)[2] == 1)
        .count() as f64
        / with_cardio.len() as f64;
    assert!(
        eff_given_cardio > p[2] * 2.0,
        "P(effusion|cardiomegaly) {eff_given_cardio} vs {}",
        p[2]
    );
}

/// Dilates a 0/1 mask by one pixel (soft edges are about a pixel wide).
fn dilate(m: &[u8], s: usize) -> Vec<u8> {
    let mut out = m.to_vec();
    for y in 0..s {
        for x in 0..s {
            if m[y * s + x] == 1 {
                for (dy, dx) in [
                    (-1i64, 0i64),
                    (1, 0),
                    (0, -1),
                    (0, 1),
                    (-1, -1),
                    (1, 1),
                    (-1, 1),
                    (1, -1),
                ] {
                    let (yy, xx) = (y as i64 + dy, x as i64 + dx);
                    if yy >= 0 && xx >= 0 && (yy as usize) < s && (xx as usize) < s {
                        out[yy as usize * s + xx as usize] = 1;
                    }
                }
            }
        }
    }
    out
}

#[test]
fn each_mask_covers_where_its_pattern_was_drawn() {
    for size in [28, 64] {
        for seed in 0..6u64 {
            let none = [false; NUM_LABELS];
            let (base, base_masks) = render_one(seed, size, &none, false).unwrap();
            assert!(base_masks.iter().all(|&v| v == 0));
            for k in 0..NUM_LABELS {
                let mut only = none;
                only[k] = true;
                let (img, masks) = render_one(seed, size, &only, false).unwrap();
                let px = size * size;
                for j in (0..NUM_LABELS).filter(|&j| j != k) {
                    assert!(
                        masks[j * px..(j + 1) * px].iter().all(|&v| v == 0),
                        "{}: mask of {} set",
                        LABELS[k],
                        LABELS[j]
                    );
                }
                let mask = &masks[k * px..(k + 1) * px];
                let area = mask.iter().filter(|&&v| v == 1).count();
                assert!(
                    area >= 2,
                    "{} seed {seed} size {size}: empty mask",
                    LABELS[k]
                );
                let near = dilate(mask, size);
                let changed: Vec<usize> = (0..px)
                    .filter(|&i| (img[i] as i32 - base[i] as i32).abs() > 12)
                    .collect();
                assert!(
                    !changed.is_empty(),
                    "{} seed {seed}: pattern not visible",
                    LABELS[k]
                );
                let inside = changed.iter().filter(|&&i| near[i] == 1).count();
                let frac = inside as f64 / changed.len() as f64;
                assert!(
                    frac >= 0.95,
                    "{} seed {seed} size {size}: only {frac:.2} of changed pixels inside the mask",
                    LABELS[k]
                );
                let masked_changed = (0..px)
                    .filter(|&i| mask[i] == 1 && (img[i] as i32 - base[i] as i32).abs() > 4)
                    .count();
                let cover = masked_changed as f64 / area as f64;
                assert!(
                    cover >= 0.5,
                    "{} seed {seed} size {size}: only {cover:.2} of the mask shows the pattern",
                    LABELS[k]
                );
            }
        }
    }
}
