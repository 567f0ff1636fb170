//! Progress reporting as a small trait: silent, plain lines (notebooks, logs)
//! or a terminal bar. The library never prints unless given a reporter.
use std::io::IsTerminal;

/// Writes one line to standard error, as `eprintln!` does, but a closed
/// stderr (`2>&1 | head`) is not a panic: the line is dropped and the work
/// goes on (its results go to files and standard output).
pub fn note_line(args: std::fmt::Arguments) {
    use std::io::Write;
    let _ = writeln!(std::io::stderr().lock(), "{args}");
}

/// `eprintln!` through [`note_line`]: never panics on a closed stderr.
#[macro_export]
macro_rules! note {
    ($($arg:tt)*) => {
        $crate::progress::note_line(format_args!($($arg)*))
    };
}

/// Receives progress of one long job (a download, an epoch).
pub trait Progress: Send {
    /// A job starts; `total` is its size in units when known.
    fn start(&mut self, label: &str, total: Option<u64>);
    /// `done` units of `total` are finished (absolute, not a delta).
    fn update(&mut self, done: u64);
    /// The job is over (successfully or not).
    fn finish(&mut self);
}

/// Prints nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

impl Progress for Silent {
    fn start(&mut self, _: &str, _: Option<u64>) {}
    fn update(&mut self, _: u64) {}
    fn finish(&mut self) {}
}

/// A line on stderr at start, at each 10% step, and at the end: readable in
/// a notebook cell or a CI log.
#[derive(Debug, Default)]
pub struct Lines {
    /// What is counted ("steps", "images"); bytes when None.
    unit: Option<&'static str>,
    label: String,
    total: Option<u64>,
    done: u64,
    next_tenth: u64,
    started: Option<std::time::Instant>,
    /// Say nothing about a job until it has run this long (see
    /// [`Lines::patient`]); `None`: speak from the start.
    patience: Option<std::time::Duration>,
    /// Whether this job has printed a line yet.
    spoke: bool,
}

impl Lines {
    /// Lines counting `unit`s ("steps") instead of bytes.
    pub fn counting(unit: &'static str) -> Self {
        Lines {
            unit: Some(unit),
            ..Default::default()
        }
    }

    /// Lines counting `unit`s that stay silent for a job done within
    /// `after`: a validation pass of a second says nothing, one of minutes
    /// (224 px images on a CPU) prints its 10% marks from `after` on, and
    /// its end. For logs, where a bar cannot be drawn.
    pub fn patient(unit: &'static str, after: std::time::Duration) -> Self {
        Lines {
            unit: Some(unit),
            patience: Some(after),
            ..Default::default()
        }
    }

    /// Whether the job is still within its quiet time (never without
    /// patience); once it is over, the job speaks until it ends.
    fn quiet(&mut self) -> bool {
        if self.spoke {
            return false;
        }
        let waited = self.started.map(|s| s.elapsed()).unwrap_or_default();
        if self.patience.is_some_and(|p| waited < p) {
            return true;
        }
        self.spoke = true;
        false
    }

    /// The line an update to `done` prints, if any: one line when a 10%
    /// mark is passed (however many marks one update passes), with the
    /// true percentage; none at 100%, which `finish` reports.
    fn line(&mut self, done: u64) -> Option<String> {
        self.done = done;
        let t = self.total.filter(|t| *t > 0)?;
        let mut passed = false;
        while self.next_tenth <= 10 && done.saturating_mul(10) >= t.saturating_mul(self.next_tenth)
        {
            passed = true;
            self.next_tenth += 1;
        }
        if !passed || done >= t {
            return None;
        }
        let of = match self.unit {
            Some(u) => format!("{done} of {t} {u}"),
            None => format!("{} of {}", human_bytes(done), human_bytes(t)),
        };
        let pct = (done as u128 * 100 / t as u128) as u64;
        Some(format!("{}: {pct}% ({of})", self.label))
    }

    fn amount(&self, n: u64) -> String {
        match self.unit {
            Some(u) => format!("{n} {u}"),
            None => human_bytes(n),
        }
    }
}

impl Progress for Lines {
    fn start(&mut self, label: &str, total: Option<u64>) {
        self.label = label.to_string();
        self.total = total;
        self.done = 0;
        self.next_tenth = 1;
        self.started = Some(std::time::Instant::now());
        self.spoke = false;
        if self.patience.is_some() {
            return;
        }
        match (total, self.unit) {
            (Some(t), _) => crate::note!("{label}: starting ({})", self.amount(t)),
            (None, None) => crate::note!("{label}: starting (size unknown)"),
            (None, Some(_)) => crate::note!("{label}: starting"),
        }
    }

    fn update(&mut self, done: u64) {
        let line = self.line(done);
        if self.quiet() {
            return;
        }
        if let Some(line) = line {
            crate::note!("{line}");
        }
    }

    fn finish(&mut self) {
        let Some(started) = self.started.take() else {
            return;
        };
        if self.patience.is_some() && !self.spoke {
            return;
        }
        let secs = started.elapsed().as_secs_f64();
        match (self.total, self.unit) {
            // One piece of work of no countable size.
            (None, Some(_)) => crate::note!("{}: done in {secs:.1} s", self.label),
            _ => crate::note!(
                "{}: done, {} in {secs:.1} s",
                self.label,
                self.amount(self.done)
            ),
        }
    }
}

/// An indicatif bar on the terminal.
pub struct Bar {
    bar: Option<indicatif::ProgressBar>,
    template: &'static str,
}

impl Bar {
    /// A bar counting bytes (downloads).
    pub fn new() -> Self {
        Bar {
            bar: None,
            template: "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
        }
    }

    /// A bar counting images (training).
    pub fn images() -> Self {
        Bar {
            bar: None,
            template: "{msg} [{bar:30}] {pos}/{len} img {per_sec} eta {eta}",
        }
    }

    /// A bar counting steps of a job (the trust checks).
    pub fn steps() -> Self {
        Bar {
            bar: None,
            template: "{msg} [{bar:30}] {pos}/{len} eta {eta}",
        }
    }
}

impl Default for Bar {
    fn default() -> Self {
        Self::new()
    }
}

impl Progress for Bar {
    fn start(&mut self, label: &str, total: Option<u64>) {
        let bar = match total {
            Some(t) => indicatif::ProgressBar::new(t),
            None => indicatif::ProgressBar::new_spinner(),
        };
        let style = indicatif::ProgressStyle::with_template(self.template)
            .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
        bar.set_style(style.progress_chars("=> "));
        bar.set_message(label.to_string());
        self.bar = Some(bar);
    }

    fn update(&mut self, done: u64) {
        if let Some(b) = &self.bar {
            b.set_position(done);
        }
    }

    fn finish(&mut self) {
        if let Some(b) = self.bar.take() {
            b.finish_and_clear();
        }
    }
}

/// Silent when `CHESTCAM_QUIET=1`, `bar` on a terminal, else `lines`.
fn pick(bar: Bar, lines: Lines) -> Box<dyn Progress> {
    if std::env::var("CHESTCAM_QUIET").is_ok_and(|v| v == "1") {
        Box::new(Silent)
    } else if std::io::stderr().is_terminal() {
        Box::new(bar)
    } else {
        Box::new(lines)
    }
}

/// For a job counting images that is usually short but can take minutes
/// (a split's evaluation): a bar on a terminal; elsewhere (logs) lines once
/// it has run for 10 s, nothing before; silent with `CHESTCAM_QUIET=1`.
pub fn patient_images() -> Box<dyn Progress> {
    pick(
        Bar::images(),
        Lines::patient("images", std::time::Duration::from_secs(10)),
    )
}

/// Like [`auto`], counting steps instead of bytes.
pub fn auto_steps() -> Box<dyn Progress> {
    pick(Bar::steps(), Lines::counting("steps"))
}

/// The sensible default: silent when `CHESTCAM_QUIET=1`, a bar on a
/// terminal, plain lines otherwise (notebooks, logs).
pub fn auto() -> Box<dyn Progress> {
    pick(Bar::new(), Lines::default())
}

/// `1536` -> `"1.5 KiB"`.
pub fn human_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{n} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every line `Lines` prints for updates 1..=total, one call each.
    fn lines_for(total: u64, unit: Option<&'static str>) -> Vec<String> {
        let mut p = Lines {
            unit,
            ..Default::default()
        };
        p.label = "job".into();
        p.total = Some(total);
        p.next_tenth = 1;
        (1..=total).filter_map(|d| p.line(d)).collect()
    }

    #[test]
    fn few_steps_print_one_line_each_with_the_true_percentage() {
        // 6 steps pass 10% marks 1-2 at a time: one line per step, never
        // "30% (2 of 6 steps)", and nothing at 6 of 6 (finish says done).
        assert_eq!(
            lines_for(6, Some("steps")),
            [
                "job: 16% (1 of 6 steps)",
                "job: 33% (2 of 6 steps)",
                "job: 50% (3 of 6 steps)",
                "job: 66% (4 of 6 steps)",
                "job: 83% (5 of 6 steps)",
            ]
        );
    }

    #[test]
    fn many_units_print_a_line_per_tenth() {
        let l = lines_for(1000, Some("images"));
        assert_eq!(l.len(), 9);
        assert_eq!(l[0], "job: 10% (100 of 1000 images)");
        assert_eq!(l[8], "job: 90% (900 of 1000 images)");
        // Bytes, one update crossing three marks at once: one line.
        let mut p = Lines::default();
        p.start("download", Some(2048));
        assert_eq!(
            p.line(700).as_deref(),
            Some("download: 34% (700 B of 2.0 KiB)")
        );
        assert_eq!(p.line(710), None);
        assert_eq!(p.line(2048), None);
    }

    #[test]
    fn patient_lines_speak_only_once_their_quiet_time_is_over() {
        use std::time::Duration;
        // Within its quiet time a job says nothing, start and end included.
        let mut p = Lines::patient("images", Duration::from_secs(3600));
        p.start("validation", Some(100));
        assert!(p.quiet());
        p.update(50);
        p.finish();
        assert!(!p.spoke);
        // Past it (here at once), it speaks from the next update to its end.
        let mut p = Lines::patient("images", Duration::ZERO);
        p.start("validation", Some(100));
        assert!(!p.quiet());
        assert!(p.spoke);
        assert_eq!(
            p.line(30).as_deref(),
            Some("validation: 30% (30 of 100 images)")
        );
        // A new job is quiet again.
        let mut p = Lines::patient("images", Duration::from_secs(3600));
        p.start("a", Some(10));
        p.spoke = true;
        p.start("b", Some(10));
        assert!(p.quiet());
    }
}
