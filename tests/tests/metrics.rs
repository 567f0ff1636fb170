//! Metrics against sklearn. The fixture `tests/fixtures/metrics.json` is
//! written by `tests/fixtures/make_metrics_fixture.py` (sklearn 1.9.1):
//! random labels, scores rounded to one decimal (many ties), a label whose
//! scores are all exactly 0.5, a label without positives and one without
//! negatives.
use chestcam::metrics::{average_precision, evaluate, roc_auc, roc_curve};

fn fixture() -> serde_json::Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/metrics.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

#[test]
fn auc_ap_acc_and_roc_equal_sklearn() {
    let f = fixture();
    let scores: Vec<f32> = f["scores"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap() as f32)
        .collect();
    let labels: Vec<u8> = f["labels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u8)
        .collect();
    let e = evaluate(&scores, &labels, None).unwrap();
    for k in 0..14 {
        let m = &e.per_label[k];
        match f["auc"][k].as_f64() {
            Some(want) => assert!(
                close(m.auc.unwrap(), want),
                "label {k}: auc {:?} vs sklearn {want}",
                m.auc
            ),
            None => assert!(m.auc.is_none(), "label {k}: auc must be undefined"),
        }
        match f["ap"][k].as_f64() {
            Some(want) => assert!(
                close(m.ap.unwrap(), want),
                "label {k}: ap {:?} vs sklearn {want}",
                m.ap
            ),
            None => assert!(m.ap.is_none(), "label {k}: ap must be undefined"),
        }
        let want_acc = f["acc"][k].as_f64().unwrap();
        assert!(
            close(m.acc, want_acc),
            "label {k}: acc {} vs {want_acc}",
            m.acc
        );
        let n = labels.len() / 14;
        let s: Vec<f64> = (0..n).map(|i| scores[i * 14 + k] as f64).collect();
        let y: Vec<u8> = (0..n).map(|i| labels[i * 14 + k]).collect();
        let roc = roc_curve(&s, &y);
        let want: Vec<(f64, f64)> = f["roc"][k]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p[0].as_f64().unwrap(), p[1].as_f64().unwrap()))
            .collect();
        assert_eq!(roc.len(), want.len(), "label {k}");
        for (a, b) in roc.iter().zip(&want) {
            assert!(
                close(a.0, b.0) && close(a.1, b.1),
                "label {k}: {a:?} vs {b:?}"
            );
        }
    }
    assert!(close(e.auc, f["mean_auc_defined"].as_f64().unwrap()));
    assert!(close(e.acc, f["mean_acc"].as_f64().unwrap()));
    assert_eq!(
        e.undefined,
        vec!["pleural".to_string(), "hernia".to_string()]
    );
    let table = e.to_string();
    assert!(
        table.contains("AUC undefined") && table.contains("pleural, hernia"),
        "{table}"
    );
}

#[test]
fn small_cases_by_hand() {
    // roc_auc_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.75
    assert_eq!(roc_auc(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]), Some(0.75));
    // All tied: 0.5. average_precision_score([0, 1], [0.5, 0.5]) == 0.5
    assert_eq!(roc_auc(&[0.5, 0.5], &[0, 1]), Some(0.5));
    assert_eq!(average_precision(&[0.5, 0.5], &[0, 1]), Some(0.5));
    // average_precision_score([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == 0.8333333333333333
    assert!(close(
        average_precision(&[0.1, 0.4, 0.35, 0.8], &[0, 0, 1, 1]).unwrap(),
        0.833_333_333_333_333_3
    ));
    assert_eq!(roc_auc(&[0.3, 0.2], &[1, 1]), None);
    assert!(evaluate(&[0.5; 14], &[0; 28], None).is_err());
    assert!(evaluate(&[f32::NAN; 14], &[0; 14], None)
        .unwrap_err()
        .to_string()
        .contains("NaN"));
}
