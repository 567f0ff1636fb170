//! Progress reporting as a small trait: silent, plain lines (notebooks, logs)
//! or a terminal bar. The library never prints unless given a reporter.
use std::io::IsTerminal;

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
}

impl Lines {
    /// Lines counting `unit`s ("steps") instead of bytes.
    pub fn counting(unit: &'static str) -> Self {
        Lines {
            unit: Some(unit),
            ..Default::default()
        }
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
        match total {
            Some(t) => eprintln!("{label}: starting ({})", self.amount(t)),
            None => eprintln!("{label}: starting (size unknown)"),
        }
    }

    fn update(&mut self, done: u64) {
        self.done = done;
        if let Some(t) = self.total.filter(|t| *t > 0) {
            while self.next_tenth <= 10 && done * 10 >= t * self.next_tenth {
                if self.next_tenth < 10 {
                    let of = match self.unit {
                        Some(u) => format!("{done} of {t} {u}"),
                        None => format!("{} of {}", human_bytes(done), human_bytes(t)),
                    };
                    eprintln!("{}: {}% ({of})", self.label, self.next_tenth * 10);
                }
                self.next_tenth += 1;
            }
        }
    }

    fn finish(&mut self) {
        let Some(started) = self.started.take() else {
            return;
        };
        let secs = started.elapsed().as_secs_f64();
        eprintln!(
            "{}: done, {} in {secs:.1} s",
            self.label,
            self.amount(self.done)
        );
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
