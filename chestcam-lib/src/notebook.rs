//! Helpers that keep notebook cells short: the data source from the
//! environment, quick mode, banners shown inline.
use crate::data::phantom::PhantomConfig;
use crate::data::source::DataSource;
use crate::data::Dataset;
use crate::viz::display::html_escape as escape;
use crate::Result;

/// True when `CHESTCAM_QUICK=1`: fewer images and epochs, same cells.
pub fn quick() -> bool {
    std::env::var("CHESTCAM_QUICK").is_ok_and(|v| v == "1")
}

/// The source named by `CHESTCAM_SOURCE` (`chestmnist` by default).
pub fn source_from_env() -> Result<DataSource> {
    let s = std::env::var("CHESTCAM_SOURCE").unwrap_or_else(|_| "chestmnist".to_string());
    let mut src: DataSource = s.parse()?;
    if let DataSource::Synthetic(cfg) = &mut src {
        if quick() {
            cfg.counts = [400, 100, 100];
        }
    }
    Ok(src)
}

/// A data set ready for a notebook, with the banner to show when it is not
/// what was asked for.
pub struct NotebookData {
    pub data: Dataset,
    pub banner: Option<String>,
}

/// Loads the source from the environment; when ChestMNIST cannot be had,
/// falls back to phantoms and says so in a banner.
pub fn load_data() -> Result<NotebookData> {
    let src = source_from_env()?;
    let mut progress = crate::progress::Lines::default();
    let (mut data, banner) = src.load_or_synthetic(&mut progress)?;
    if banner.is_some() && quick() {
        let cfg = PhantomConfig {
            size: data.size,
            counts: [400, 100, 100],
            ..PhantomConfig::default()
        };
        data = cfg.generate()?.0;
    }
    Ok(NotebookData { data, banner })
}

impl NotebookData {
    /// evcxr display: the banner (if any) and the source in one line.
    pub fn evcxr_display(&self) {
        let mut html = String::new();
        if let Some(b) = &self.banner {
            html.push_str(&format!(
                "<div style=\"background:#fff3cd;border:1px solid #e0a800;padding:8px;margin:4px 0\"><b>SYNTHETIC DATA.</b> {}</div>",
                escape(b).replace('\n', "<br>")
            ));
        }
        let d = &self.data;
        html.push_str(&format!(
            "<div>Data: <b>{}</b>, {}x{} px, train {} / val {} / test {} images</div>",
            escape(&d.provenance.to_string()),
            d.size,
            d.size,
            d.train.len(),
            d.val.len(),
            d.test.len(),
        ));
        crate::viz::emit_text("text/html", &html);
    }
}
