//! Small helpers shared by modules: atomic writes, cache folders.
use crate::{Error, Result};
use std::path::{Path, PathBuf};

/// `dir/.name.<pid>.tmp` beside `path`: same file system, so a rename is atomic.
pub(crate) fn tmp_sibling(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.tmp", std::process::id()))
}

/// Writes `bytes` to `path` atomically: a temp file beside it, synced, then
/// renamed over it and the folder synced. On any failure the temp file is
/// removed and `path` is as it was.
pub fn write_atomic(path: impl AsRef<Path>, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let path = path.as_ref();
    let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
    if let Some(dir) = dir {
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
    }
    let tmp = tmp_sibling(path);
    let res = (|| {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    failpoint(path, "tmp");
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        Error::io(path, e)
    })?;
    if let Some(d) = dir.and_then(|d| std::fs::File::open(d).ok()) {
        let _ = d.sync_all();
    }
    failpoint(path, "done");
    Ok(())
}

/// Removes temp files (`.NAME.PID.tmp`, as [`write_atomic`] names them)
/// left in `dir` by a process that was killed while writing.
pub fn remove_stale_temps(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut removed = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io(dir, e))?;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let is_file = entry.file_type().map(|t| t.is_file()).unwrap_or(false);
        if is_file && name.starts_with('.') && name.ends_with(".tmp") {
            std::fs::remove_file(entry.path()).map_err(|e| Error::io(entry.path(), e))?;
            removed.push(entry.path());
        }
    }
    Ok(removed)
}

/// A kill switch for crash tests: with `CHESTCAM_KILL_AT=NAME:STAGE:N`
/// the process kills itself with SIGKILL (nothing flushed or cleaned) at the `N`-th time file `NAME` reaches `STAGE` (`tmp`: written
/// and synced under its temp name; `done`: renamed into place). Unset, it
/// costs one environment lookup per file written.
pub(crate) fn failpoint(path: &Path, stage: &str) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let Some(spec) = std::env::var_os("CHESTCAM_KILL_AT") else {
        return;
    };
    let spec = spec.to_string_lossy();
    let mut parts = spec.rsplitn(3, ':');
    let (Some(n), Some(st), Some(name)) = (parts.next(), parts.next(), parts.next()) else {
        return;
    };
    let here = path.file_name().map(|f| f.to_string_lossy() == name);
    if here == Some(true) && st == stage {
        let hit = HITS.fetch_add(1, Ordering::SeqCst) + 1;
        if n.parse::<usize>().ok() == Some(hit) {
            // SAFETY: kill(2) on our own pid; no memory is touched.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
            }
        }
    }
}

/// The chestcam data cache: `$CHESTCAM_HOME`, else `$XDG_CACHE_HOME/chestcam`,
/// else `~/.cache/chestcam`.
pub fn cache_dir() -> PathBuf {
    if let Some(h) = std::env::var_os("CHESTCAM_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(h);
    }
    if let Some(x) = std::env::var_os("XDG_CACHE_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(x).join("chestcam");
    }
    match std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        Some(h) => PathBuf::from(h).join(".cache").join("chestcam"),
        None => std::env::temp_dir().join("chestcam"),
    }
}

/// A small deterministic PRNG (SplitMix64): the same seed gives the same
/// stream on every platform and version, which the phantoms and shuffles
/// promise.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [lo, hi).
    pub fn range(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.f64()
    }

    /// Uniform integer in [0, n) (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    /// True with probability p.
    pub fn chance(&mut self, p: f64) -> bool {
        self.f64() < p
    }

    /// Standard normal (Box-Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = self.f64().max(1e-12);
        let u2 = self.f64();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// A Fisher-Yates permutation of 0..n.
    pub fn permutation(&mut self, n: usize) -> Vec<usize> {
        let mut v: Vec<usize> = (0..n).collect();
        for i in (1..n).rev() {
            let j = self.below(i + 1);
            v.swap(i, j);
        }
        v
    }
}

/// Checks a thread count: at least 1, at most the machine's cores (more
/// only oversubscribes them; 100000 would spawn that many threads).
pub fn check_threads(what: &str, n: i64) -> Result<()> {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get() as i64)
        .unwrap_or(1);
    if n < 1 || n > cores {
        return Err(Error::invalid(
            what,
            format!("{n} threads (1 to {cores}, the cores of this machine)"),
        ));
    }
    Ok(())
}

/// A small host tensor (label indices, random weights) copied to `device`
/// without waiting for the device: a blocking host-to-GPU copy synchronises
/// the stream, so the host would stop queueing kernels until the work in
/// flight (a backbone's forward) is done. From pageable memory CUDA stages
/// the bytes before the call returns, so the host tensor may go at once.
pub fn upload(t: &tch::Tensor, device: tch::Device) -> Result<tch::Tensor> {
    Ok(t.f_to_device_(device, t.kind(), true, false)?)
}

/// Label lists whose device index tensors [`label_indices`] keeps.
const KEPT_LABEL_LISTS: usize = 64;

type KeptIndices = Vec<((Vec<usize>, tch::Device), tch::Tensor)>;

thread_local! {
    static LABEL_INDICES: std::cell::RefCell<KeptIndices> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// `labels` as an int64 index tensor on `device`, [`upload`]ed. On CUDA
/// the tensor of each label list is made once per thread and kept (up to
/// `KEPT_LABEL_LISTS` lists; the device is synchronised before they are
/// dropped, since a kernel queued on another stream may still read one):
/// a CAM call captured as a CUDA graph may not copy from host memory, so
/// its warm-up calls make the indices that the capture then reuses. The
/// tensor is shared: read it, never write to it.
pub fn label_indices(labels: &[usize], device: tch::Device) -> Result<tch::Tensor> {
    let make = || {
        let idx = tch::Tensor::f_from_slice(&labels.iter().map(|&l| l as i64).collect::<Vec<_>>())?;
        upload(&idx, device)
    };
    if !device.is_cuda() {
        return make();
    }
    LABEL_INDICES.with(|kept| {
        let mut kept = kept.borrow_mut();
        if let Some((_, t)) = kept
            .iter()
            .find(|((l, d), _)| l.as_slice() == labels && *d == device)
        {
            return Ok(t.shallow_clone());
        }
        if kept.len() >= KEPT_LABEL_LISTS {
            for d in kept.iter().map(|((_, d), _)| *d).collect::<Vec<_>>() {
                sync(d);
            }
            kept.clear();
        }
        let t = make()?;
        kept.push(((labels.to_vec(), device), t.shallow_clone()));
        Ok(t)
    })
}

/// Row `labels[i]` of the `n x n` identity for each `i` (`[labels.len(), n]`,
/// float, on `device`): one-hot rows built without a device sync (ATen's
/// `one_hot` reads its input's range back to the host on a GPU).
pub fn one_hot_rows(labels: &[usize], n: i64, device: tch::Device) -> Result<tch::Tensor> {
    let eye = tch::Tensor::f_eye(n, (tch::Kind::Float, device))?;
    Ok(eye.f_index_select(0, &label_indices(labels, device)?)?)
}

/// Waits until `device` has finished its queued work (nothing on the CPU).
pub fn sync(device: tch::Device) {
    if let tch::Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}
