//! One error type for the whole library. Every variant names the file, key,
//! shape or value at fault.
use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// An I/O error with the path it happened on.
    #[error("{path}: {}", io_words_at(path, source))]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// A file whose content is not what the MedMNIST layout requires.
    #[error("{path}: {reason}")]
    BadFile { path: PathBuf, reason: String },

    /// A network download that failed.
    #[error("download of {url} failed: {reason}")]
    Download { url: String, reason: String },

    /// Network access was refused by `CHESTCAM_OFFLINE=1`.
    #[error("network access is disabled (CHESTCAM_OFFLINE=1): cannot fetch {url}; put the file at {expected} or unset CHESTCAM_OFFLINE")]
    Offline { url: String, expected: PathBuf },

    /// A downloaded file whose MD5 does not match the registry.
    #[error("checksum mismatch for {url}: expected md5 {expected}, got {actual} (the partial file was removed)")]
    Checksum {
        url: String,
        expected: String,
        actual: String,
    },

    /// A bad argument value (configuration, label name, size...).
    #[error("invalid {what}: {reason}")]
    Invalid { what: String, reason: String },

    /// Training stopped part-way (a diverging loss, a failed save); the
    /// text says what the run folder still holds.
    #[error("training stopped: {0}")]
    Training(String),

    /// An error from libtorch.
    #[error("libtorch: {0}")]
    Torch(#[from] tch::TchError),

    /// An error while encoding or decoding a picture.
    #[error("{path}: image error: {source}")]
    Image {
        path: PathBuf,
        #[source]
        source: image::ImageError,
    },
}

pub type Result<T> = std::result::Result<T, Error>;

impl Error {
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            source,
        }
    }

    pub fn bad_file(path: impl Into<PathBuf>, reason: impl Into<String>) -> Self {
        Error::BadFile {
            path: path.into(),
            reason: reason.into(),
        }
    }

    pub fn invalid(what: impl Into<String>, reason: impl Into<String>) -> Self {
        Error::Invalid {
            what: what.into(),
            reason: reason.into(),
        }
    }
}

/// [`io_words`] for an error on `path`: creating a folder where a file
/// stands says so, rather than a bare "already exists".
fn io_words_at(path: &std::path::Path, e: &std::io::Error) -> String {
    if e.kind() == std::io::ErrorKind::AlreadyExists && path.is_file() {
        return "is a file, where a folder is needed".into();
    }
    io_words(e)
}

/// An I/O error in words: "disk full", "permission denied", without the
/// `(os error N)` or debug text a user cannot act on.
pub fn io_words(e: &std::io::Error) -> String {
    use std::io::ErrorKind as K;
    match e.kind() {
        K::StorageFull => "disk full (no space left on the device)".into(),
        K::NotFound => "no such file or folder".into(),
        K::PermissionDenied => "permission denied".into(),
        K::IsADirectory => "is a folder, not a file".into(),
        K::NotADirectory => "a part of this path is a file, not a folder".into(),
        K::AlreadyExists => "already exists".into(),
        K::ReadOnlyFilesystem => "the file system is read-only".into(),
        K::QuotaExceeded => "disk quota exceeded".into(),
        K::UnexpectedEof => "ends too early (truncated)".into(),
        _ => {
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}
