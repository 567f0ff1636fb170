//! Evaluation exactly as MedMNIST's `Evaluator` for multi-label tasks, plus
//! average precision and ROC curves.
//!
//! - ACC: per label, the accuracy of `sigmoid score > 0.5` (strictly),
//!   averaged over all labels.
//! - AUC: per label, ROC AUC with ties handled as sklearn's `roc_auc_score`
//!   (average ranks), averaged over labels. A label with one class only in
//!   the split is *undefined* (sklearn raises), left out of the mean, and
//!   listed in [`Evaluation::undefined`].
//! - AP: sklearn's `average_precision_score` (sum over distinct thresholds of
//!   `(R_n - R_{n-1}) * P_n`), undefined without positives.
use crate::data::registry::{LABELS, NUM_LABELS};
use crate::{Error, Result};

/// ROC AUC of `scores` against 0/1 `labels`; `None` when only one class is present.
pub fn roc_auc(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let p = labels.iter().filter(|&&y| y == 1).count();
    let n = labels.len() - p;
    if p == 0 || n == 0 {
        return None;
    }
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[a].total_cmp(&scores[b]));
    // Average ranks over ties (1-based), summed over positives.
    let mut rank_sum = 0.0;
    let mut i = 0;
    while i < idx.len() {
        let mut j = i;
        while j + 1 < idx.len() && scores[idx[j + 1]] == scores[idx[i]] {
            j += 1;
        }
        let avg = (i + j) as f64 / 2.0 + 1.0;
        rank_sum += avg * idx[i..=j].iter().filter(|&&k| labels[k] == 1).count() as f64;
        i = j + 1;
    }
    Some((rank_sum - (p * (p + 1)) as f64 / 2.0) / (p as f64 * n as f64))
}

/// Cumulative (true positives, false positives) after each distinct
/// threshold, scores taken from the highest down (ties form one step).
fn threshold_steps(scores: &[f64], labels: &[u8]) -> Vec<(usize, usize)> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]));
    let (mut tp, mut fp, mut steps) = (0usize, 0usize, Vec::new());
    let mut i = 0;
    while i < idx.len() {
        let s = scores[idx[i]];
        while i < idx.len() && scores[idx[i]] == s {
            if labels[idx[i]] == 1 {
                tp += 1;
            } else {
                fp += 1;
            }
            i += 1;
        }
        steps.push((tp, fp));
    }
    steps
}

/// Average precision as sklearn computes it; `None` without positives.
pub fn average_precision(scores: &[f64], labels: &[u8]) -> Option<f64> {
    let p = labels.iter().filter(|&&y| y == 1).count();
    if p == 0 {
        return None;
    }
    let (mut prev_recall, mut ap) = (0.0, 0.0);
    for (tp, fp) in threshold_steps(scores, labels) {
        let recall = tp as f64 / p as f64;
        ap += (recall - prev_recall) * (tp as f64 / (tp + fp) as f64);
        prev_recall = recall;
    }
    Some(ap)
}

/// ROC points `(false positive rate, true positive rate)` at every distinct
/// threshold, from (0, 0) to (1, 1) (sklearn's `roc_curve` with
/// `drop_intermediate=False`); empty when only one class is present.
pub fn roc_curve(scores: &[f64], labels: &[u8]) -> Vec<(f64, f64)> {
    let p = labels.iter().filter(|&&y| y == 1).count();
    let n = labels.len() - p;
    if p == 0 || n == 0 {
        return vec![];
    }
    std::iter::once((0.0, 0.0))
        .chain(
            threshold_steps(scores, labels)
                .into_iter()
                .map(|(tp, fp)| (fp as f64 / n as f64, tp as f64 / p as f64)),
        )
        .collect()
}

/// Metrics of one label.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct LabelMetrics {
    pub label: String,
    pub positives: usize,
    pub count: usize,
    /// `None`: one class only in this split.
    pub auc: Option<f64>,
    pub ap: Option<f64>,
    pub acc: f64,
}

/// The evaluation of a split.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Evaluation {
    /// Mean BCE-with-logits loss when known.
    pub loss: Option<f64>,
    /// Mean AUC over labels where it is defined.
    pub auc: f64,
    /// Mean ACC over all 14 labels (MedMNIST).
    pub acc: f64,
    /// Mean AP over labels with positives.
    pub map: f64,
    pub per_label: Vec<LabelMetrics>,
    /// Labels whose AUC is undefined here (one class only).
    pub undefined: Vec<String>,
}

/// Evaluates sigmoid `probs` (`[n, 14]` row-major) against 0/1 `labels`.
pub fn evaluate(probs: &[f32], labels: &[u8], loss: Option<f64>) -> Result<Evaluation> {
    if probs.len() != labels.len() || !labels.len().is_multiple_of(NUM_LABELS) {
        return Err(Error::invalid(
            "evaluation input",
            format!(
                "{} scores and {} labels; both must be n x {NUM_LABELS}",
                probs.len(),
                labels.len()
            ),
        ));
    }
    if let Some(bad) = probs.iter().find(|p| !p.is_finite()) {
        return Err(Error::invalid(
            "evaluation input",
            format!("score {bad} is not finite"),
        ));
    }
    let n = labels.len() / NUM_LABELS;
    let mut per_label = Vec::with_capacity(NUM_LABELS);
    for (k, name) in LABELS.iter().enumerate() {
        let s: Vec<f64> = (0..n).map(|i| probs[i * NUM_LABELS + k] as f64).collect();
        let y: Vec<u8> = (0..n).map(|i| labels[i * NUM_LABELS + k]).collect();
        let correct = s
            .iter()
            .zip(&y)
            .filter(|(p, t)| (**p > 0.5) == (**t == 1))
            .count();
        per_label.push(LabelMetrics {
            label: name.to_string(),
            positives: y.iter().filter(|&&v| v == 1).count(),
            count: n,
            auc: roc_auc(&s, &y),
            ap: average_precision(&s, &y),
            acc: if n == 0 {
                0.0
            } else {
                correct as f64 / n as f64
            },
        });
    }
    let mean = |v: Vec<f64>| {
        if v.is_empty() {
            f64::NAN
        } else {
            v.iter().sum::<f64>() / v.len() as f64
        }
    };
    Ok(Evaluation {
        loss,
        auc: mean(per_label.iter().filter_map(|m| m.auc).collect()),
        acc: mean(per_label.iter().map(|m| m.acc).collect()),
        map: mean(per_label.iter().filter_map(|m| m.ap).collect()),
        undefined: per_label
            .iter()
            .filter(|m| m.auc.is_none())
            .map(|m| m.label.clone())
            .collect(),
        per_label,
    })
}

impl std::fmt::Display for Evaluation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let opt = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
        writeln!(
            f,
            "{:<14} {:>6} {:>7} {:>7} {:>7}",
            "label", "pos", "AUC", "AP", "ACC"
        )?;
        for m in &self.per_label {
            writeln!(
                f,
                "{:<14} {:>6} {:>7} {:>7} {:>7.3}",
                m.label,
                m.positives,
                opt(m.auc),
                opt(m.ap),
                m.acc
            )?;
        }
        writeln!(
            f,
            "{:<14} {:>6} {:>7.3} {:>7.3} {:>7.3}",
            "mean", "", self.auc, self.map, self.acc
        )?;
        if let Some(l) = self.loss {
            writeln!(f, "loss {l:.4}")?;
        }
        if !self.undefined.is_empty() {
            writeln!(
                f,
                "AUC undefined (one class only in this split), left out of the mean: {}",
                self.undefined.join(", ")
            )?;
        }
        Ok(())
    }
}
