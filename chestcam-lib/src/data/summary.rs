//! A data summary: images per split and positives per label.
use super::registry::{LABELS, NUM_LABELS};
use super::{Dataset, SplitName};

/// Counts per split and label, printable as a table or JSON.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    pub source: String,
    pub synthetic: bool,
    pub size: usize,
    /// Images per split: train, val, test.
    pub images: [usize; 3],
    /// Positives per label and split: `positives[label][split]`.
    pub positives: Vec<[usize; 3]>,
    /// Images with no finding, per split.
    pub no_finding: [usize; 3],
    /// What identifies the images (what a run's checkpoints record).
    pub fingerprint: super::DataFingerprint,
}

impl Summary {
    pub fn of(d: &Dataset) -> Summary {
        let mut positives = vec![[0usize; 3]; NUM_LABELS];
        let mut images = [0; 3];
        let mut no_finding = [0; 3];
        for (si, name) in SplitName::ALL.into_iter().enumerate() {
            let s = d.split(name);
            images[si] = s.len();
            for (k, c) in s.positives().iter().enumerate() {
                positives[k][si] = *c;
            }
            no_finding[si] = s
                .labels
                .chunks_exact(NUM_LABELS)
                .filter(|r| r.iter().all(|&v| v == 0))
                .count();
        }
        Summary {
            source: d.provenance.to_string(),
            synthetic: d.provenance.synthetic,
            size: d.size,
            images,
            positives,
            no_finding,
            fingerprint: d.fingerprint(),
        }
    }
}

impl Summary {
    /// evcxr display: the table as preformatted text.
    pub fn evcxr_display(&self) {
        let t = crate::viz::display::html_escape(&self.to_string());
        crate::viz::emit_text("text/html", &format!("<pre>{t}</pre>"));
    }
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(f, "source: {}", self.source)?;
        writeln!(f, "image size: {0} x {0} px (grey)", self.size)?;
        writeln!(
            f,
            "images: train {}, val {}, test {}",
            self.images[0], self.images[1], self.images[2]
        )?;
        let fp = &self.fingerprint;
        writeln!(
            f,
            "CRC-32 of pixels and labels: train {:08x}, val {:08x}, test {:08x}",
            fp.train.crc32, fp.val.crc32, fp.test.crc32
        )?;
        writeln!(f)?;
        writeln!(
            f,
            "{:<14} {:>14} {:>14} {:>14}",
            "label", "train", "val", "test"
        )?;
        let cell = |n: usize, total: usize| {
            let pct = if total == 0 {
                0.0
            } else {
                100.0 * n as f64 / total as f64
            };
            format!("{n} ({pct:.1}%)")
        };
        for (k, name) in LABELS.iter().enumerate() {
            let p = self.positives[k];
            writeln!(
                f,
                "{:<14} {:>14} {:>14} {:>14}",
                name,
                cell(p[0], self.images[0]),
                cell(p[1], self.images[1]),
                cell(p[2], self.images[2])
            )?;
        }
        let nf = self.no_finding;
        writeln!(
            f,
            "{:<14} {:>14} {:>14} {:>14}",
            "(no finding)",
            cell(nf[0], self.images[0]),
            cell(nf[1], self.images[1]),
            cell(nf[2], self.images[2])
        )?;
        let one_class: Vec<String> = SplitName::ALL
            .iter()
            .enumerate()
            .filter_map(|(si, s)| {
                let names: Vec<&str> = (0..NUM_LABELS)
                    .filter(|&k| {
                        self.positives[k][si] == 0 || self.positives[k][si] == self.images[si]
                    })
                    .map(|k| LABELS[k])
                    .collect();
                (!names.is_empty() && self.images[si] > 0)
                    .then(|| format!("{s}: {}", names.join(", ")))
            })
            .collect();
        if !one_class.is_empty() {
            writeln!(
                f,
                "\nlabels with a single class (AUC undefined there): {}",
                one_class.join("; ")
            )?;
        }
        Ok(())
    }
}
