//! The ChestMNIST files: label names, split sizes, image sizes, URLs, MD5s.

/// The 14 findings in ChestMNIST's label order.
pub const LABELS: [&str; 14] = [
    "atelectasis",
    "cardiomegaly",
    "effusion",
    "infiltration",
    "mass",
    "nodule",
    "pneumonia",
    "pneumothorax",
    "consolidation",
    "edema",
    "emphysema",
    "fibrosis",
    "pleural",
    "hernia",
];

/// Number of labels (findings).
pub const NUM_LABELS: usize = LABELS.len();

/// ChestMNIST split sizes: train, val, test.
pub const SPLIT_SIZES: [usize; 3] = [78_468, 11_219, 22_433];

/// Where MedMNIST v2 (+) lives on Zenodo.
pub const ZENODO_BASE: &str = "https://zenodo.org/records/10519652/files/";

/// One downloadable ChestMNIST file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteFile {
    /// Image side in pixels.
    pub size: usize,
    /// File name, e.g. `chestmnist_64.npz`.
    pub name: &'static str,
    /// Expected MD5 of the whole file, lower-case hex.
    pub md5: &'static str,
}

impl RemoteFile {
    /// The download URL under `base` (which must end with `/`).
    pub fn url_under(&self, base: &str) -> String {
        format!("{base}{}?download=1", self.name)
    }

    /// The Zenodo URL.
    pub fn url(&self) -> String {
        self.url_under(ZENODO_BASE)
    }
}

/// The four ChestMNIST files, by size.
pub const CHESTMNIST: [RemoteFile; 4] = [
    RemoteFile {
        size: 28,
        name: "chestmnist.npz",
        md5: "02c8a6516a18b556561a56cbdd36c4a8",
    },
    RemoteFile {
        size: 64,
        name: "chestmnist_64.npz",
        md5: "9de6cd0b934ebb5b7426cfba5efbae16",
    },
    RemoteFile {
        size: 128,
        name: "chestmnist_128.npz",
        md5: "db107e5590b27930b62dbaf558aebee3",
    },
    RemoteFile {
        size: 224,
        name: "chestmnist_224.npz",
        md5: "45bd33e6f06c3e8cdb481c74a89152aa",
    },
];

/// The ChestMNIST file of a given size, or an error listing the sizes.
pub fn chestmnist(size: usize) -> crate::Result<&'static RemoteFile> {
    CHESTMNIST.iter().find(|f| f.size == size).ok_or_else(|| {
        crate::Error::invalid(
            "ChestMNIST size",
            format!("{size} (available: 28, 64, 128, 224)"),
        )
    })
}

/// Index of a label by name (case-insensitive; "pleural_thickening" and
/// "pleural thickening" also accepted).
pub fn label_index(name: &str) -> crate::Result<usize> {
    let norm = name.trim().to_ascii_lowercase().replace([' ', '-'], "_");
    let norm = if norm == "pleural_thickening" {
        "pleural".to_string()
    } else {
        norm
    };
    LABELS.iter().position(|l| *l == norm).ok_or_else(|| {
        crate::Error::invalid(
            "label name",
            format!("{name:?} (known: {})", LABELS.join(", ")),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_and_lookup() {
        assert_eq!(
            chestmnist(64).unwrap().url(),
            "https://zenodo.org/records/10519652/files/chestmnist_64.npz?download=1"
        );
        assert_eq!(chestmnist(28).unwrap().name, "chestmnist.npz");
        let e = chestmnist(32).unwrap_err().to_string();
        assert!(e.contains("32") && e.contains("28, 64, 128, 224"), "{e}");
        assert_eq!(label_index("Pleural Thickening").unwrap(), 12);
        assert_eq!(label_index("hernia").unwrap(), 13);
        assert!(label_index("flu")
            .unwrap_err()
            .to_string()
            .contains("\"flu\""));
    }
}
