//! The one error type of the crate: every variant names the file and the problem.

use std::path::PathBuf;

/// Everything that can go wrong while finding, downloading, checking or reading a dataset.
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    /// The operating system refused a read, write, rename or directory listing.
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// The bytes are not a valid IDX file of the expected kind.
    #[error("{}: {problem}{}", path.display(), offset.map(|o| format!(" (at byte offset {o})")).unwrap_or_default())]
    Idx {
        path: PathBuf,
        offset: Option<u64>,
        problem: String,
    },

    /// Files that are each valid but do not belong together (image and label counts, dimensions).
    #[error("{}: {problem}", path.display())]
    Inconsistent { path: PathBuf, problem: String },

    /// A dataset file is not present where it was looked for.
    #[error("{}: file not found (run `cargo xtask data fetch`, or place the file there by hand)", path.display())]
    Missing { path: PathBuf },

    /// A file's content does not match its published checksum.
    #[error("{}: {algorithm} mismatch: expected {expected}, got {actual}", path.display())]
    Checksum {
        path: PathBuf,
        algorithm: &'static str,
        expected: String,
        actual: String,
    },

    /// Every mirror failed for one file. `attempts` holds each URL with its reason.
    #[error("{}", download_message(file, dir, attempts))]
    Download {
        file: String,
        dir: PathBuf,
        attempts: Vec<(String, String)>,
    },

    /// A request that cannot be met: a split or batch size that does not fit the data.
    #[error("{0}")]
    Invalid(String),
}

fn download_message(file: &str, dir: &std::path::Path, attempts: &[(String, String)]) -> String {
    let mut msg = format!("could not download {file}; every mirror failed:");
    for (url, reason) in attempts {
        // The HTTP client's messages often start with the address already.
        let reason = reason
            .strip_prefix(url.as_str())
            .map_or(reason.as_str(), |rest| rest.trim_start_matches(": "));
        msg.push_str(&format!("\n  {url}: {reason}"));
    }
    msg.push_str(&format!(
        "\nto install it by hand, copy {file} (gzip-compressed or not) into {}",
        dir.display()
    ));
    msg
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// The crate's result type.
pub type Result<T, E = DataError> = std::result::Result<T, E>;
