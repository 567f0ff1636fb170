//! The npz reader on good, bad and real files. Every error names the file
//! and the problem.
use chestcam::data::npz::{npy_header, Compression, NpzReader, NpzWriter};
use chestcam::data::{Dataset, SplitName};
use std::io::Write;
use std::path::{Path, PathBuf};

const L: usize = 14;

/// A valid MedMNIST-layout file with `n` images per split of side `s`.
fn write_valid(path: &Path, n: usize, s: usize, compression: Compression) {
    let mut w = NpzWriter::create(path, compression).unwrap();
    for split in ["train", "val", "test"] {
        let imgs: Vec<u8> = (0..n * s * s).map(|i| (i % 251) as u8).collect();
        let labs: Vec<u8> = (0..n * L).map(|i| (i % 3 == 0) as u8).collect();
        w.add_u8(&format!("{split}_images"), &[n, s, s], &imgs)
            .unwrap();
        w.add_u8(&format!("{split}_labels"), &[n, L], &labs)
            .unwrap();
    }
    w.finish().unwrap();
}

/// Writes raw `.npy` entries (header text given verbatim) into a zip.
fn write_raw(path: &Path, entries: &[(&str, Vec<u8>)]) {
    let f = std::fs::File::create(path).unwrap();
    let mut z = zip::ZipWriter::new(f);
    for (name, bytes) in entries {
        z.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        z.write_all(bytes).unwrap();
    }
    z.finish().unwrap();
}

fn npy(shape: &[usize], data: &[u8]) -> Vec<u8> {
    let mut v = npy_header(shape);
    v.extend_from_slice(data);
    v
}

fn npy_with_header(dict: &str, data: &[u8]) -> Vec<u8> {
    let mut v = b"\x93NUMPY\x01\x00".to_vec();
    v.extend_from_slice(&(dict.len() as u16).to_le_bytes());
    v.extend_from_slice(dict.as_bytes());
    v.extend_from_slice(data);
    v
}

/// A full set of valid entries for 2 images of 4x4, with `replace` swapped in.
fn entries_with(replace: &str, bytes: Vec<u8>) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    for split in ["train", "val", "test"] {
        let ik = format!("{split}_images.npy");
        let lk = format!("{split}_labels.npy");
        out.push((
            ik.clone(),
            if ik == replace {
                bytes.clone()
            } else {
                npy(&[2, 4, 4], &[7; 32])
            },
        ));
        out.push((
            lk.clone(),
            if lk == replace {
                bytes.clone()
            } else {
                npy(&[2, L], &[0; 2 * L])
            },
        ));
    }
    out
}

fn load_err(entries: Vec<(String, Vec<u8>)>) -> (PathBuf, String, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("bad.npz");
    let refs: Vec<(&str, Vec<u8>)> = entries
        .iter()
        .map(|(n, b)| (n.as_str(), b.clone()))
        .collect();
    write_raw(&p, &refs);
    let e = Dataset::from_npz(&p).unwrap_err().to_string();
    assert!(e.contains("bad.npz"), "error must name the file: {e}");
    (p, e, dir)
}

#[test]
fn reads_stored_and_deflated() {
    let dir = tempfile::tempdir().unwrap();
    for c in [Compression::Stored, Compression::Deflated] {
        let p = dir.path().join(format!("{c:?}.npz"));
        write_valid(&p, 3, 5, c);
        let d = Dataset::from_npz(&p).unwrap();
        assert_eq!(
            (d.size, d.train.len(), d.val.len(), d.test.len()),
            (5, 3, 3, 3)
        );
        assert_eq!(d.train.image(1)[..3], [25, 26, 27]);
        assert_eq!(d.train.label_row(0)[..4], [1, 0, 0, 1]);
    }
}

#[test]
fn missing_key() {
    let mut e = entries_with("", vec![]);
    e.retain(|(n, _)| n != "val_labels.npy");
    let (_, msg, _d) = load_err(e);
    assert!(
        msg.contains("missing key \"val_labels\"") && msg.contains("train_images"),
        "{msg}"
    );
}

#[test]
fn wrong_dtype() {
    let bytes = npy_with_header(
        "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 4, 4), }\n",
        &[0; 128],
    );
    let (_, msg, _d) = load_err(entries_with("train_images.npy", bytes));
    assert!(
        msg.contains("entry train_images.npy") && msg.contains("wrong dtype \"<f4\""),
        "{msg}"
    );
}

#[test]
fn wrong_rank() {
    let (_, msg, _d) = load_err(entries_with("test_images.npy", npy(&[2, 16], &[0; 32])));
    assert!(
        msg.contains("test_images has shape [2, 16]") && msg.contains("expected N x S x S"),
        "{msg}"
    );
    let (_, msg, _d) = load_err(entries_with("val_labels.npy", npy(&[2, 13], &[0; 26])));
    assert!(
        msg.contains("val_labels has shape [2, 13]") && msg.contains("N x 14"),
        "{msg}"
    );
}

#[test]
fn counts_differ() {
    let (_, msg, _d) = load_err(entries_with("train_labels.npy", npy(&[3, L], &[0; 3 * L])));
    assert!(
        msg.contains("train_images has 2 images but train_labels has 3 rows"),
        "{msg}"
    );
}

#[test]
fn labels_outside_0_1() {
    let mut labs = vec![0u8; 2 * L];
    labs[L + 3] = 2;
    let (_, msg, _d) = load_err(entries_with("train_labels.npy", npy(&[2, L], &labs)));
    assert!(
        msg.contains("value 2 at image 1, label 3 (infiltration)")
            && msg.contains("must be 0 or 1"),
        "{msg}"
    );
}

#[test]
fn huge_shape_claim_is_refused_without_allocating() {
    // Claims 10^12 bytes; the entry holds 32.
    let bytes = npy_with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (1000000, 1000, 1000), }\n",
        &[0; 32],
    );
    let (_, msg, _d) = load_err(entries_with("train_images.npy", bytes));
    assert!(
        msg.contains("header claims shape [1000000, 1000, 1000]")
            && msg.contains("holds only 32 bytes"),
        "{msg}"
    );
    // A product that overflows usize.
    let bytes = npy_with_header(
        "{'descr': '|u1', 'fortran_order': False, 'shape': (18446744073709551615, 3), }\n",
        &[0; 32],
    );
    let (_, msg, _d) = load_err(entries_with("train_images.npy", bytes));
    assert!(msg.contains("overflows"), "{msg}");
}

#[test]
fn short_data_is_reported() {
    let mut bytes = npy_header(&[2, 4, 4]);
    bytes.extend_from_slice(&[0; 20]);
    let (_, msg, _d) = load_err(entries_with("val_images.npy", bytes));
    assert!(
        msg.contains("entry val_images.npy") && msg.contains("holds only 20 bytes"),
        "{msg}"
    );
}

#[test]
fn not_npy_entry() {
    let (_, msg, _d) = load_err(entries_with("train_images.npy", b"hello, world".to_vec()));
    assert!(msg.contains("bad magic"), "{msg}");
}

fn nih_path() -> PathBuf {
    chestcam_tests::nih1000_dir().join("nih1000.npz")
}

#[test]
fn truncated_zip() {
    let real = std::fs::read(nih_path()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("cut.npz");
    std::fs::write(&p, &real[..real.len() / 2]).unwrap();
    let e = Dataset::from_npz(&p).unwrap_err().to_string();
    assert!(
        e.contains("cut.npz") && e.contains("not a readable npz/zip archive"),
        "{e}"
    );
    std::fs::write(&p, b"").unwrap();
    let e = Dataset::from_npz(&p).unwrap_err().to_string();
    assert!(e.contains("cut.npz") && e.contains("not a readable"), "{e}");
}

#[test]
fn corrupt_deflate_stream() {
    let mut real = std::fs::read(nih_path()).unwrap();
    // Scribble over the middle of train_images' compressed data (the first
    // entry: local header at 0, data from about byte 100 on).
    for b in &mut real[200_000..200_400] {
        *b ^= 0x5A;
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("corrupt.npz");
    std::fs::write(&p, &real).unwrap();
    let e = Dataset::from_npz(&p).unwrap_err().to_string();
    assert!(
        e.contains("corrupt.npz") && e.contains("entry train_images.npy") && e.contains("corrupt"),
        "{e}"
    );
}

#[test]
fn missing_file_names_the_path() {
    let e = Dataset::from_npz("/nonexistent/x.npz")
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("/nonexistent/x.npz") && e.contains("no such file or folder"),
        "{e}"
    );
}

#[test]
fn rgb_images_become_grey_like_pil() {
    // PIL: Image.fromarray(np.array([[[255,0,0],[0,255,0],[0,0,255],[10,20,30]]],np.uint8)).convert("L")
    //   -> [76, 150, 29, 18]
    let rgb = [255, 0, 0, 0, 255, 0, 0, 0, 255, 10, 20, 30];
    let mut e = entries_with("", vec![]);
    for (n, b) in e.iter_mut() {
        if n.ends_with("_images.npy") {
            *b = npy(&[1, 2, 2, 3], &rgb);
        } else {
            *b = npy(&[1, L], &[0; L]);
        }
    }
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("rgb.npz");
    let refs: Vec<(&str, Vec<u8>)> = e.iter().map(|(n, b)| (n.as_str(), b.clone())).collect();
    write_raw(&p, &refs);
    let d = Dataset::from_npz(&p).unwrap();
    assert_eq!(d.test.images, vec![76, 150, 29, 18]);
}

#[test]
fn fortran_order_is_transposed() {
    // np.asfortranarray(np.arange(6, dtype=np.uint8).reshape(1, 2, 3)) saved with np.save
    // stores 0 3 1 4 2 5 with fortran_order True.
    let bytes = npy_with_header(
        "{'descr': '|u1', 'fortran_order': True, 'shape': (1, 2, 3), }\n",
        &[0, 3, 1, 4, 2, 5],
    );
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("f.npz");
    write_raw(&p, &[("a.npy", bytes)]);
    let a = NpzReader::open(&p).unwrap().read_u8("a").unwrap();
    assert_eq!(a.data, vec![0, 1, 2, 3, 4, 5]);
}

/// Counts of `labels.csv` per split and label, to compare with the npz.
fn csv_counts(dir: &Path) -> (Vec<usize>, Vec<[usize; L]>) {
    let text = std::fs::read_to_string(dir.join("labels.csv")).unwrap();
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    let first_label = header.iter().position(|h| *h == "atelectasis").unwrap();
    let mut n = vec![0; 3];
    let mut pos = vec![[0; L]; 3];
    for line in lines.filter(|l| !l.is_empty()) {
        // The finding string may be quoted with commas: count from the end.
        let cols: Vec<&str> = line.split(',').collect();
        let split: SplitName = cols[0].parse().unwrap();
        let si = SplitName::ALL.iter().position(|s| *s == split).unwrap();
        n[si] += 1;
        let labs = &cols[cols.len() - L..];
        assert_eq!(header.len() - first_label, L);
        for (k, v) in labs.iter().enumerate() {
            pos[si][k] += v.trim().parse::<usize>().unwrap();
        }
    }
    (n, pos)
}

#[test]
fn nih1000_real_xrays() {
    let dir = chestcam_tests::nih1000_dir();
    let d = Dataset::from_npz(dir.join("nih1000.npz")).unwrap();
    assert_eq!((d.train.len(), d.val.len(), d.test.len()), (763, 71, 166));
    assert_eq!(d.size, 28);
    assert!(!d.provenance.synthetic);
    let (n, pos) = csv_counts(&dir);
    assert_eq!(n, vec![763, 71, 166]);
    for (si, s) in SplitName::ALL.into_iter().enumerate() {
        assert_eq!(
            d.split(s).positives(),
            pos[si],
            "{s}: positives per label differ from labels.csv"
        );
    }
    // np.load('nih1000.npz'): train_images.sum() == 79027196,
    // train_images[0, 14, :8] == [16, 0, 0, 4, 68, 146, 97, 80],
    // train_labels.sum() == 668, test_labels.sum() == 114.
    let sum: u64 = d.train.images.iter().map(|&v| v as u64).sum();
    assert_eq!(sum, 79_027_196);
    assert_eq!(
        d.train.image(0)[14 * 28..14 * 28 + 8],
        [16, 0, 0, 4, 68, 146, 97, 80]
    );
    assert_eq!(d.train.labels.iter().map(|&v| v as u64).sum::<u64>(), 668);
    assert_eq!(d.test.labels.iter().map(|&v| v as u64).sum::<u64>(), 114);
}

#[test]
fn nih1000_64_px() {
    let d = Dataset::from_npz(chestcam_tests::nih1000_dir().join("nih1000_64.npz")).unwrap();
    assert_eq!(
        (d.size, d.train.len(), d.val.len(), d.test.len()),
        (64, 763, 71, 166)
    );
    // np.load('nih1000_64.npz')['val_images'].sum() == 39123404
    assert_eq!(
        d.val.images.iter().map(|&v| v as u64).sum::<u64>(),
        39_123_404
    );
}

#[test]
fn tensors_are_normalised_like_medmnist() {
    let d = Dataset::from_npz(nih_path()).unwrap();
    let x = d.test.images_tensor(tch::Device::Cpu).unwrap();
    assert_eq!(x.size(), vec![166, 1, 28, 28]);
    // x = (test_images[:1] / 255 - 0.5) / 0.5: mean 0.27567029, x[0,14,10] 0.05098045
    let first = x.get(0);
    assert!((first.mean(tch::Kind::Float).double_value(&[]) - 0.275_670_29).abs() < 1e-5);
    assert!((first.double_value(&[0, 14, 10]) - 0.050_980_45).abs() < 1e-6);
    assert!(x.min().double_value(&[]) >= -1.0 && x.max().double_value(&[]) <= 1.0);
    let y = d.test.labels_tensor(tch::Device::Cpu).unwrap();
    assert_eq!(y.size(), vec![166, 14]);
    assert_eq!(y.sum(tch::Kind::Float).double_value(&[]), 114.0);
}

#[test]
fn mixed_sizes_name_the_split_and_a_folder_is_not_a_file() {
    // val at 8x8 while train and test are 4x4: the error names val_images.
    let (_, e, _d) = load_err(entries_with("val_images.npy", npy(&[2, 8, 8], &[7; 128])));
    assert!(
        e.contains("val_images are 8x8 pixels but train_images are 4x4"),
        "{e}"
    );
    let dir = tempfile::tempdir().unwrap();
    let e = Dataset::from_npz(dir.path()).unwrap_err().to_string();
    assert!(e.contains("is a folder, not an .npz file"), "{e}");
}
