//! Downloads into the cache: `.part` file under a lock, MD5 verified, then
//! renamed into place. Interrupted downloads resume with a Range request.
//! Every failure leaves nothing under the final name.
use crate::progress::Progress;
use crate::{Error, Result};
use md5::{Digest, Md5};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `CHESTCAM_OFFLINE=1` (or `true`) refuses all network access.
pub fn offline_from_env() -> bool {
    std::env::var("CHESTCAM_OFFLINE").is_ok_and(|v| v == "1" || v.eq_ignore_ascii_case("true"))
}

/// A blocking HTTP downloader with timeouts, resume and checksum.
#[derive(Debug, Clone)]
pub struct Downloader {
    /// Time allowed to establish a connection.
    pub connect_timeout: Duration,
    /// Time allowed without receiving any data before the connection counts as stalled.
    pub read_timeout: Duration,
    /// How many times an interrupted transfer is resumed within one call.
    pub resume_attempts: u32,
    /// Refuse the network (defaults to `CHESTCAM_OFFLINE`).
    pub offline: bool,
}

impl Default for Downloader {
    fn default() -> Self {
        Downloader {
            connect_timeout: Duration::from_secs(20),
            read_timeout: Duration::from_secs(60),
            resume_attempts: 3,
            offline: offline_from_env(),
        }
    }
}

/// Why one transfer attempt stopped.
enum Attempt {
    Complete,
    /// Interrupted after some bytes: worth resuming.
    Interrupted(String),
}

impl Downloader {
    /// Downloads `url` to `dest` unless `dest` already exists, checking the
    /// MD5 (`expected_md5`, lower-case hex) before the file appears at `dest`.
    /// A file already at `dest` is checked against the MD5 too, once: its
    /// size and modification time are remembered in `<dest>.verified`.
    pub fn fetch(
        &self,
        url: &str,
        dest: &Path,
        expected_md5: &str,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf> {
        if dest.is_file() {
            verify_cached(dest, expected_md5)?;
            return Ok(dest.to_path_buf());
        }
        if self.offline {
            return Err(Error::Offline {
                url: url.to_string(),
                expected: dest.to_path_buf(),
            });
        }
        let dir = dest
            .parent()
            .filter(|d| !d.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        std::fs::create_dir_all(dir).map_err(|e| Error::io(dir, e))?;
        let part = with_suffix(dest, ".part");
        let lock_path = with_suffix(dest, ".lock");
        let lock = File::create(&lock_path).map_err(|e| Error::io(&lock_path, e))?;
        lock.lock().map_err(|e| Error::io(&lock_path, e))?;
        // Another process may have finished while we waited for the lock.
        if dest.is_file() {
            verify_cached(dest, expected_md5)?;
            return Ok(dest.to_path_buf());
        }
        let result = self.fetch_locked(url, dest, &part, expected_md5, progress);
        progress.finish();
        let _ = lock.unlock();
        let _ = std::fs::remove_file(&lock_path);
        result
    }

    fn fetch_locked(
        &self,
        url: &str,
        dest: &Path,
        part: &Path,
        expected_md5: &str,
        progress: &mut dyn Progress,
    ) -> Result<PathBuf> {
        let client = reqwest::blocking::Client::builder()
            .connect_timeout(self.connect_timeout)
            .timeout(self.read_timeout)
            .user_agent(concat!("chestcam/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| download_err(url, format!("cannot build HTTP client: {e}")))?;
        let label = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut started = false;
        let mut attempts = 0;
        loop {
            match self.attempt(&client, url, part, &label, &mut started, progress)? {
                Attempt::Complete => break,
                Attempt::Interrupted(why) => {
                    attempts += 1;
                    if attempts > self.resume_attempts {
                        return Err(download_err(
                            url,
                            format!("{why}; gave up after {attempts} attempts (the partial file {} is kept and the next call resumes it)", part.display()),
                        ));
                    }
                }
            }
        }
        let actual = md5_file(part)?;
        if !actual.eq_ignore_ascii_case(expected_md5) {
            let _ = std::fs::remove_file(part);
            return Err(Error::Checksum {
                url: url.to_string(),
                expected: expected_md5.to_string(),
                actual,
            });
        }
        std::fs::rename(part, dest).map_err(|e| Error::io(dest, e))?;
        remember_verified(dest, expected_md5)?;
        Ok(dest.to_path_buf())
    }

    /// One HTTP request, resuming from the `.part` file's length.
    fn attempt(
        &self,
        client: &reqwest::blocking::Client,
        url: &str,
        part: &Path,
        label: &str,
        started: &mut bool,
        progress: &mut dyn Progress,
    ) -> Result<Attempt> {
        let have = std::fs::metadata(part).map(|m| m.len()).unwrap_or(0);
        let mut req = client.get(url);
        if have > 0 {
            req = req.header(reqwest::header::RANGE, format!("bytes={have}-"));
        }
        let mut resp = req
            .send()
            .map_err(|e| download_err(url, describe_reqwest(&e, self)))?;
        let status = resp.status();
        let (offset, total) = match status.as_u16() {
            206 => {
                let remaining = resp.content_length();
                (have, remaining.map(|r| r + have))
            }
            200 => (0, resp.content_length()),
            416 if have > 0 => {
                // The server has nothing after our bytes: the part may be complete.
                return Ok(Attempt::Complete);
            }
            _ => {
                let hint = if status.is_server_error() {
                    " (server error; try again later)"
                } else if status.as_u16() == 404 {
                    " (no such file on the server)"
                } else {
                    ""
                };
                return Err(download_err(url, format!("HTTP {status}{hint}")));
            }
        };
        if !*started {
            progress.start(label, total);
            *started = true;
        }
        let mut file = if offset > 0 {
            OpenOptions::new().append(true).open(part)
        } else {
            File::create(part)
        }
        .map_err(|e| Error::io(part, e))?;
        let mut done = offset;
        progress.update(done);
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match resp.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    let of = total.map(|t| format!(" of {t}")).unwrap_or_default();
                    let why = if is_timeout(&e) {
                        format!(
                            "stalled: no data for {:?} after {done}{of} bytes",
                            self.read_timeout
                        )
                    } else {
                        format!(
                            "truncated body: got {done}{of} bytes before the connection broke ({})",
                            chain(&e)
                        )
                    };
                    flush_part(&mut file, part)?;
                    return Ok(Attempt::Interrupted(why));
                }
            };
            if let Err(e) = file.write_all(&buf[..n]) {
                drop(file);
                // Free the space: a full disk gains nothing from a kept part.
                let _ = std::fs::remove_file(part);
                return Err(Error::io(part, e));
            }
            done += n as u64;
            progress.update(done);
        }
        flush_part(&mut file, part)?;
        match total {
            Some(t) if done < t => Ok(Attempt::Interrupted(format!(
                "truncated body: got {done} of {t} bytes"
            ))),
            Some(t) if done > t => {
                let _ = std::fs::remove_file(part);
                Err(download_err(
                    url,
                    format!("server sent {done} bytes, more than the {t} it announced"),
                ))
            }
            _ => Ok(Attempt::Complete),
        }
    }
}

fn flush_part(file: &mut File, part: &Path) -> Result<()> {
    file.flush()
        .and_then(|_| file.sync_data())
        .map_err(|e| Error::io(part, e))
}

fn download_err(url: &str, reason: impl Into<String>) -> Error {
    Error::Download {
        url: url.to_string(),
        reason: reason.into(),
    }
}

fn is_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if matches!(
                io.kind(),
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock
            ) {
                return true;
            }
            // io::Error::source skips its own payload: look inside it.
            if let Some(inner) = io.get_ref() {
                if is_timeout(inner) {
                    return true;
                }
            }
        }
        if let Some(r) = err.downcast_ref::<reqwest::Error>() {
            if r.is_timeout() {
                return true;
            }
        }
        cur = err.source();
    }
    false
}

/// A one-line reason for a request that got no response.
fn describe_reqwest(e: &reqwest::Error, d: &Downloader) -> String {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            if io.kind() == std::io::ErrorKind::ConnectionRefused {
                return "connection refused (is the server up, is the address right?)".into();
            }
        }
        cur = err.source();
    }
    if e.is_timeout() {
        return format!(
            "timed out (connect limit {:?}, read limit {:?})",
            d.connect_timeout, d.read_timeout
        );
    }
    if e.is_connect() {
        return format!("cannot connect: {}", chain(e));
    }
    chain(e)
}

fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(err) = cur {
        s.push_str(": ");
        s.push_str(&err.to_string());
        cur = err.source();
    }
    s
}

/// What identifies a verified file: its size, modification time and MD5.
fn stamp(dest: &Path, md5: &str) -> Result<String> {
    let meta = std::fs::metadata(dest).map_err(|e| Error::io(dest, e))?;
    let mtime = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    Ok(format!(
        "{} {mtime} {}\n",
        meta.len(),
        md5.to_ascii_lowercase()
    ))
}

fn remember_verified(dest: &Path, md5: &str) -> Result<()> {
    crate::util::write_atomic(with_suffix(dest, ".verified"), stamp(dest, md5)?.as_bytes())
}

/// Checks a file found in the cache against the registry's MD5, unless it
/// was verified before and has not changed since; refuses a mismatch (any
/// file put there would otherwise be reported as the data set).
fn verify_cached(dest: &Path, expected_md5: &str) -> Result<()> {
    let side = with_suffix(dest, ".verified");
    if std::fs::read_to_string(&side).ok() == Some(stamp(dest, expected_md5)?) {
        return Ok(());
    }
    let actual = md5_file(dest)?;
    if !actual.eq_ignore_ascii_case(expected_md5) {
        return Err(Error::bad_file(
            dest,
            format!(
                "has md5 {actual}, but the file of this name has md5 {expected_md5}: it is not the real file; delete it to download again"
            ),
        ));
    }
    remember_verified(dest, expected_md5)
}

fn with_suffix(p: &Path, suffix: &str) -> PathBuf {
    let mut s = p.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

/// MD5 of a file, lower-case hex.
pub fn md5_file(path: &Path) -> Result<String> {
    let mut f = File::open(path).map_err(|e| Error::io(path, e))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf).map_err(|e| Error::io(path, e))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(hex(&h.finalize()))
}

/// MD5 of bytes, lower-case hex.
pub fn md5_bytes(bytes: &[u8]) -> String {
    hex(&Md5::digest(bytes))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
