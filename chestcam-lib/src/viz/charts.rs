//! Charts as SVG (plotters' SVG backend: text stays text, no system fonts
//! needed): label prevalence, training curves, ROC curves.
use crate::data::registry::LABELS;
use crate::{Error, Result};
use plotters::prelude::*;

/// An SVG chart; shows itself inline in evcxr and saves to a file.
pub struct Chart {
    pub svg: String,
}

impl Chart {
    pub fn save(&self, path: impl AsRef<std::path::Path>) -> Result<()> {
        crate::util::write_atomic(path, self.svg.as_bytes())
    }
    pub fn evcxr_display(&self) {
        super::emit_text("image/svg+xml", &self.svg);
    }
}

fn err(e: impl std::fmt::Display) -> Error {
    Error::invalid("chart", e.to_string())
}

const COLORS: [RGBColor; 14] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
    RGBColor(188, 189, 34),
    RGBColor(23, 190, 207),
    RGBColor(0, 0, 128),
    RGBColor(128, 0, 0),
    RGBColor(0, 128, 128),
    RGBColor(80, 80, 0),
];

/// Horizontal bars: percentage of images positive per label, one bar per split.
pub fn prevalence(title: &str, splits: &[(&str, [f64; 14])]) -> Result<Chart> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (760, 520)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let max = splits
            .iter()
            .flat_map(|(_, p)| p.iter())
            .cloned()
            .fold(0.0, f64::max)
            * 100.0;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(110)
            .build_cartesian_2d(0.0..(max * 1.1).max(1.0), 0.0..14.0)
            .map_err(err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc("% of images positive")
            .y_labels(0)
            .draw()
            .map_err(err)?;
        // One name per bar group (plotters' own ticks would skip some).
        for (k, name) in LABELS.iter().enumerate() {
            let (px, py) = chart.backend_coord(&(0.0, (13 - k) as f64 + 0.5));
            let style = TextStyle::from(("sans-serif", 13).into_font()).pos(
                plotters::style::text_anchor::Pos::new(
                    plotters::style::text_anchor::HPos::Right,
                    plotters::style::text_anchor::VPos::Center,
                ),
            );
            root.draw(&Text::new(name.to_string(), (px - 6, py), style))
                .map_err(err)?;
        }
        let n = splits.len().max(1) as f64;
        for (si, (name, p)) in splits.iter().enumerate() {
            let c = COLORS[si % COLORS.len()];
            chart
                .draw_series(p.iter().enumerate().map(|(k, v)| {
                    let y0 = (13 - k) as f64 + 0.1 + 0.8 * si as f64 / n;
                    Rectangle::new([(0.0, y0), (v * 100.0, y0 + 0.8 / n)], c.filled())
                }))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| Rectangle::new([(x, y - 5), (x + 12, y + 5)], c.filled()));
        }
        chart
            .configure_series_labels()
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Chart { svg })
}

/// A line chart: each `(name, points)` a coloured line with a legend entry.
fn line_chart(
    title: &str,
    size: (u32, u32),
    x: (std::ops::Range<f64>, &str),
    y: (std::ops::Range<f64>, &str),
    series: &[(&str, Vec<(f64, f64)>)],
    diagonal: bool,
    legend: SeriesLabelPosition,
) -> Result<Chart> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 20))
            .margin(10)
            .x_label_area_size(35)
            .y_label_area_size(55)
            .build_cartesian_2d(x.0.clone(), y.0.clone())
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x.1)
            .y_desc(y.1)
            .draw()
            .map_err(err)?;
        if diagonal {
            chart
                .draw_series(LineSeries::new(
                    vec![(x.0.start, y.0.start), (x.0.end, y.0.end)],
                    BLACK.mix(0.3),
                ))
                .map_err(err)?;
        }
        for (i, (name, pts)) in series
            .iter()
            .enumerate()
            .filter(|(_, (_, p))| !p.is_empty())
        {
            let c = COLORS[i % COLORS.len()];
            chart
                .draw_series(LineSeries::new(pts.iter().copied(), c.stroke_width(2)))
                .map_err(err)?
                .label(*name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 15, y)], c.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .position(legend)
            .border_style(BLACK)
            .background_style(WHITE)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(Chart { svg })
}

/// Curves of `(x, y)` points on shared axes (`x` over `x_range`, `y` over
/// `y_range`): trust curves such as deletion or the randomisation cascade.
pub fn xy_curves(
    title: &str,
    x: (std::ops::Range<f64>, &str),
    y: (std::ops::Range<f64>, &str),
    series: &[(&str, Vec<(f64, f64)>)],
) -> Result<Chart> {
    line_chart(
        title,
        (640, 380),
        x,
        y,
        series,
        false,
        SeriesLabelPosition::UpperRight,
    )
}

/// Curves over epochs: each `(name, values)` on a shared y axis.
pub fn curves(title: &str, y_desc: &str, series: &[(&str, Vec<f64>)]) -> Result<Chart> {
    let n = series
        .iter()
        .map(|(_, v)| v.len())
        .max()
        .unwrap_or(1)
        .max(2);
    let vals = series
        .iter()
        .flat_map(|(_, v)| v.iter())
        .filter(|v| v.is_finite());
    let (lo, hi) = vals.fold((f64::MAX, f64::MIN), |(a, b), &v| (a.min(v), b.max(v)));
    let (lo, hi) = if lo > hi {
        (0.0, 1.0)
    } else {
        (
            lo - 0.05 * (hi - lo).max(1e-3),
            hi + 0.05 * (hi - lo).max(1e-3),
        )
    };
    let pts: Vec<(&str, Vec<(f64, f64)>)> = series
        .iter()
        .map(|(name, v)| {
            (
                *name,
                v.iter()
                    .enumerate()
                    .map(|(e, y)| ((e + 1) as f64, *y))
                    .collect(),
            )
        })
        .collect();
    line_chart(
        title,
        (640, 360),
        (1.0..n as f64, "epoch"),
        (lo..hi, y_desc),
        &pts,
        false,
        SeriesLabelPosition::UpperRight,
    )
}

/// ROC curves of every label (those with both classes) in one chart.
pub fn roc_curves(title: &str, curves: &[(String, Vec<(f64, f64)>)]) -> Result<Chart> {
    let series: Vec<(&str, Vec<(f64, f64)>)> = curves
        .iter()
        .map(|(n, p)| (n.as_str(), p.clone()))
        .collect();
    line_chart(
        title,
        (620, 560),
        (0.0..1.0, "false positive rate"),
        (0.0..1.0, "true positive rate"),
        &series,
        true,
        SeriesLabelPosition::LowerRight,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charts_render_text_without_fonts() {
        let c = prevalence("prevalence", &[("train", [0.1; 14]), ("test", [0.05; 14])]).unwrap();
        assert!(
            c.svg.starts_with("<svg")
                && c.svg.contains("effusion")
                && c.svg.contains("% of images positive")
        );
        let c = curves(
            "loss",
            "BCE",
            &[
                ("train", vec![0.5, 0.3, 0.2]),
                ("val", vec![0.6, 0.4, 0.35]),
            ],
        )
        .unwrap();
        assert!(c.svg.contains("epoch") && c.svg.contains("<polyline"));
        let c = roc_curves(
            "ROC",
            &[
                ("effusion".into(), vec![(0.0, 0.0), (0.2, 0.7), (1.0, 1.0)]),
                ("hernia".into(), vec![]),
            ],
        )
        .unwrap();
        assert!(c.svg.contains("effusion") && !c.svg.contains("hernia"));
    }
}
