//! Downloading a dataset's files: mirror by mirror, into a temporary file in the destination
//! folder, checksum-verified while streaming, then renamed into place. A failed or corrupt
//! transfer leaves nothing behind.

use std::fs::File;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::dataset::{hex, locate, DatasetSpec, RemoteFile};
use crate::error::{DataError, Result};

/// What a download reports as it goes, for a progress bar (this crate draws nothing itself).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FetchEvent {
    /// The file is already present; nothing to do.
    Present { file: String, path: PathBuf },
    /// A request to `url` is starting; `total` is the expected size.
    Start { file: String, url: String, total: u64 },
    /// `bytes` have arrived so far from the current URL.
    Progress { bytes: u64 },
    /// The attempt at `url` failed; the next mirror is tried.
    Failed { url: String, reason: String },
    /// The file is verified and in place.
    Done { file: String, path: PathBuf },
}

/// Downloads every file of `spec` that is not yet in `<data_dir>/<name>/`.
/// Returns the paths of all four files.
pub fn fetch(spec: &DatasetSpec, data_dir: &Path, on_event: &mut dyn FnMut(FetchEvent)) -> Result<Vec<PathBuf>> {
    let dir = spec.dir(data_dir);
    spec.files
        .iter()
        .map(|file| match locate(&dir, file) {
            Some(path) => {
                on_event(FetchEvent::Present {
                    file: file.name.clone(),
                    path: path.clone(),
                });
                Ok(path)
            }
            None => download_file(file, &dir, &spec.mirrors, on_event),
        })
        .collect()
}

/// Downloads one file into `dir`, trying each mirror in turn until one gives the published bytes.
pub fn download_file(
    file: &RemoteFile,
    dir: &Path,
    mirrors: &[String],
    on_event: &mut dyn FnMut(FetchEvent),
) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).map_err(|e| DataError::io(dir, e))?;
    let dest = dir.join(&file.name);
    let part = dir.join(format!(".{}.{}.part", file.name, std::process::id()));
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(15))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut attempts = Vec::new();
    for mirror in mirrors {
        let url = format!("{mirror}{}", file.name);
        on_event(FetchEvent::Start {
            file: file.name.clone(),
            url: url.clone(),
            total: file.size,
        });
        let result = download_to(&agent, &url, &part, file, on_event)
            .and_then(|()| std::fs::rename(&part, &dest).map_err(|e| format!("cannot move into place: {e}")));
        match result {
            Ok(()) => {
                on_event(FetchEvent::Done {
                    file: file.name.clone(),
                    path: dest.clone(),
                });
                return Ok(dest);
            }
            Err(reason) => {
                let _ = std::fs::remove_file(&part);
                on_event(FetchEvent::Failed {
                    url: url.clone(),
                    reason: reason.clone(),
                });
                attempts.push((url, reason));
            }
        }
    }
    if mirrors.is_empty() {
        attempts.push(("(no mirrors)".into(), "no download mirror is configured".into()));
    }
    Err(DataError::Download {
        file: file.name.clone(),
        dir: dir.to_owned(),
        attempts,
    })
}

/// Streams `url` into `part`, checking size and checksums. The error is the reason, in words.
fn download_to(
    agent: &ureq::Agent,
    url: &str,
    part: &Path,
    file: &RemoteFile,
    on_event: &mut dyn FnMut(FetchEvent),
) -> std::result::Result<(), String> {
    let response = agent.get(url).call().map_err(|e| match e {
        ureq::Error::Status(code, r) => format!("HTTP {code} {}", r.status_text()),
        ureq::Error::Transport(t) => t.to_string(),
    })?;
    let mut body = response.into_reader();
    let mut out = File::create(part).map_err(|e| format!("cannot create {}: {e}", part.display()))?;
    let (mut sha, mut md5) = (Sha256::new(), Md5::new());
    let mut buf = vec![0u8; 1 << 16];
    let mut received = 0u64;
    loop {
        let n = body
            .read(&mut buf)
            .map_err(|e| format!("transfer broken after {received} bytes: {e}"))?;
        if n == 0 {
            break;
        }
        received += n as u64;
        if received > file.size {
            return Err(format!("server sent more than the {} bytes expected", file.size));
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
        out.write_all(&buf[..n])
            .map_err(|e| format!("cannot write {}: {e}", part.display()))?;
        on_event(FetchEvent::Progress { bytes: received });
    }
    if received != file.size {
        return Err(format!("truncated: got {received} of {} bytes", file.size));
    }
    let (sha, md5) = (hex(&sha.finalize()), hex(&md5.finalize()));
    if sha != file.sha256 {
        return Err(format!("sha256 mismatch: expected {}, got {sha}", file.sha256));
    }
    if md5 != file.md5 {
        return Err(format!("md5 mismatch: expected {}, got {md5}", file.md5));
    }
    out.sync_all()
        .map_err(|e| format!("cannot flush {}: {e}", part.display()))
}
