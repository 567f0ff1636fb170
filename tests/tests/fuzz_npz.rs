//! Property-based fuzzing of the npz reader: arbitrary bytes and mutated
//! real and generated files must give an error or a valid data set, never a
//! panic and never a giant allocation.
use chestcam::data::npz::{Compression, NpzReader, NpzWriter};
use chestcam::data::{read_split, SplitName};
use proptest::prelude::*;
use std::io::Cursor;
use std::path::Path;
use std::sync::OnceLock;

/// Reads all three splits from bytes; Ok or Err are both fine.
fn read_all(bytes: &[u8]) -> Result<usize, String> {
    let p = Path::new("fuzz.npz");
    let mut r = NpzReader::from_reader(p, Cursor::new(bytes)).map_err(|e| e.to_string())?;
    let mut n = 0;
    for s in SplitName::ALL {
        let split = read_split(&mut r, p, s).map_err(|e| e.to_string())?;
        assert_eq!(split.images.len(), split.len() * split.size * split.size);
        n += split.len();
    }
    Ok(n)
}

fn nih_bytes() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        std::fs::read(chestcam_tests::nih1000_dir().join("nih1000.npz")).expect("nih1000.npz")
    })
}

/// A small stored (uncompressed) file: mutations hit headers and shapes.
fn small_stored() -> &'static [u8] {
    static B: OnceLock<Vec<u8>> = OnceLock::new();
    B.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("s.npz");
        let mut w = NpzWriter::create(&p, Compression::Stored).expect("create");
        for s in ["train", "val", "test"] {
            w.add_u8(&format!("{s}_images"), &[2, 3, 3], &[9; 18])
                .expect("add");
            w.add_u8(&format!("{s}_labels"), &[2, 14], &[1; 28])
                .expect("add");
        }
        w.finish().expect("finish");
        std::fs::read(&p).expect("read")
    })
}

#[derive(Debug, Clone)]
enum Mutation {
    Flip(usize, u8),
    Truncate(usize),
    Insert(usize, Vec<u8>),
    Digit(usize, u8),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<usize>(), 1..=255u8).prop_map(|(i, x)| Mutation::Flip(i, x)),
        any::<usize>().prop_map(Mutation::Truncate),
        (
            any::<usize>(),
            proptest::collection::vec(any::<u8>(), 1..16)
        )
            .prop_map(|(i, v)| Mutation::Insert(i, v)),
        (any::<usize>(), b'0'..=b'9').prop_map(|(i, d)| Mutation::Digit(i, d)),
    ]
}

fn apply(base: &[u8], muts: &[Mutation]) -> Vec<u8> {
    let mut b = base.to_vec();
    for m in muts {
        if b.is_empty() {
            break;
        }
        match m {
            Mutation::Flip(i, x) => {
                let n = b.len();
                b[i % n] ^= x;
            }
            Mutation::Truncate(i) => b.truncate(i % b.len()),
            Mutation::Insert(i, v) => {
                let at = i % b.len();
                b.splice(at..at, v.iter().copied());
            }
            Mutation::Digit(i, d) => {
                // Rewrite a digit: forges shapes in .npy headers.
                let n = b.len();
                if let Some(pos) = (0..n).map(|k| (i + k) % n).find(|&k| b[k].is_ascii_digit()) {
                    b[pos] = *d;
                }
            }
        }
    }
    b
}

#[test]
fn originals_read() {
    assert_eq!(read_all(nih_bytes()), Ok(1000));
    assert_eq!(read_all(small_stored()), Ok(6));
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let _ = read_all(&bytes);
    }

    #[test]
    fn arbitrary_bytes_after_a_zip_magic_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096)) {
        let mut b = b"PK\x03\x04".to_vec();
        b.extend(bytes);
        let _ = read_all(&b);
    }

    #[test]
    fn mutated_stored_file_never_panics(muts in proptest::collection::vec(mutation(), 1..6)) {
        let b = apply(small_stored(), &muts);
        if let Err(e) = read_all(&b) {
            prop_assert!(e.starts_with("fuzz.npz: "), "error must name the file: {}", e);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 120, ..ProptestConfig::default() })]

    #[test]
    fn mutated_real_file_never_panics(muts in proptest::collection::vec(mutation(), 1..4)) {
        let b = apply(nih_bytes(), &muts);
        if let Err(e) = read_all(&b) {
            prop_assert!(e.starts_with("fuzz.npz: "), "error must name the file: {}", e);
        }
    }
}
