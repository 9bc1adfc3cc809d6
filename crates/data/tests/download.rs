//! Downloads against a real HTTP server on 127.0.0.1 that the test starts: good files, corrupt
//! files, truncated bodies, 404s and refused connections.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;

use backprop_data::dataset::{self, RemoteFile};
use backprop_data::download::{self, FetchEvent};
use backprop_data::idx::{encode_images, encode_labels, Images};
use backprop_data::{DataError, DatasetSpec};
use flate2::{write::GzEncoder, Compression};
use md5::Md5;
use sha2::{Digest, Sha256};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut enc = GzEncoder::new(Vec::new(), Compression::default());
    enc.write_all(bytes).unwrap();
    enc.finish().unwrap()
}

/// A tiny dataset in the MNIST layout: (file, bytes) for the four files.
fn tiny_files() -> Vec<(RemoteFile, Vec<u8>)> {
    let images = |count: usize| Images {
        count,
        rows: 28,
        cols: 28,
        pixels: (0..count * 784).map(|i| (i * 7 % 251) as u8).collect(),
    };
    let labels = |count: usize| (0..count).map(|i| (i % 10) as u8).collect::<Vec<_>>();
    let contents = [
        ("train-images-idx3-ubyte.gz", gzip(&encode_images(&images(20)))),
        ("train-labels-idx1-ubyte.gz", gzip(&encode_labels(&labels(20)))),
        ("t10k-images-idx3-ubyte.gz", gzip(&encode_images(&images(5)))),
        ("t10k-labels-idx1-ubyte.gz", gzip(&encode_labels(&labels(5)))),
    ];
    contents
        .into_iter()
        .map(|(name, bytes)| {
            let file = RemoteFile {
                name: name.into(),
                size: bytes.len() as u64,
                md5: hex(&Md5::digest(&bytes)),
                sha256: hex(&Sha256::digest(&bytes)),
            };
            (file, bytes)
        })
        .collect()
}

/// Serves `/good/NAME`, `/corrupt/NAME` (one byte flipped), `/truncated/NAME` (announces the
/// full length, sends half, closes) and 404 for anything else. Handles at most `max_requests`
/// connections, then stops.
fn serve(files: Vec<(RemoteFile, Vec<u8>)>, max_requests: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for stream in listener.incoming().take(max_requests) {
            let Ok(mut stream) = stream else { continue };
            let _ = handle(&mut stream, &files);
        }
    });
    base
}

fn handle(stream: &mut TcpStream, files: &[(RemoteFile, Vec<u8>)]) -> std::io::Result<()> {
    let mut request = Vec::new();
    let mut byte = [0u8; 1];
    while !request.ends_with(b"\r\n\r\n") && stream.read(&mut byte)? == 1 {
        request.push(byte[0]);
    }
    let request = String::from_utf8_lossy(&request);
    let path = request.split_whitespace().nth(1).unwrap_or("/");
    let mut parts = path.trim_start_matches('/').splitn(2, '/');
    let (mode, name) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let found = files.iter().find(|(f, _)| f.name == name);
    match (mode, found) {
        ("good" | "corrupt" | "truncated", Some((_, bytes))) => {
            let mut body = bytes.clone();
            if mode == "corrupt" {
                let mid = body.len() / 2;
                body[mid] ^= 0x55;
            }
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            stream.write_all(header.as_bytes())?;
            let sent = if mode == "truncated" {
                body.len() / 2
            } else {
                body.len()
            };
            stream.write_all(&body[..sent])?;
        }
        _ => stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")?,
    }
    stream.flush()
}

fn refused_base() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    base
}

fn leftover_files(dir: &Path) -> Vec<String> {
    std::fs::read_dir(dir)
        .map(|rd| {
            rd.map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn temp_dir(tag: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("backprop-download-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn falls_through_bad_mirrors_to_the_good_one() {
    let files = tiny_files();
    let (file, bytes) = files[0].clone();
    let base = serve(files, 10);
    let mirrors = vec![
        format!("{}/", refused_base()),
        format!("{base}/missing/"),
        format!("{base}/corrupt/"),
        format!("{base}/truncated/"),
        format!("{base}/good/"),
    ];
    let dir = temp_dir("fallthrough");
    let mut failures = Vec::new();
    let mut progressed = 0u64;
    let path = download::download_file(&file, &dir, &mirrors, &mut |event| match event {
        FetchEvent::Failed { url, reason } => failures.push((url, reason)),
        FetchEvent::Progress { bytes } => progressed = progressed.max(bytes),
        _ => {}
    })
    .unwrap();
    assert_eq!(std::fs::read(&path).unwrap(), bytes);
    assert_eq!(progressed, bytes.len() as u64);
    let reasons: Vec<&str> = failures.iter().map(|(_, r)| r.as_str()).collect();
    assert_eq!(reasons.len(), 4, "{reasons:?}");
    assert!(reasons[1].contains("404"), "{reasons:?}");
    assert!(reasons[2].contains("sha256 mismatch"), "{reasons:?}");
    assert!(
        reasons[3].contains("truncated") || reasons[3].contains("broken"),
        "{reasons:?}"
    );
    assert_eq!(leftover_files(&dir), vec![file.name.clone()]);
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn when_every_mirror_fails_nothing_is_left_and_each_reason_is_listed() {
    let files = tiny_files();
    let (file, _) = files[1].clone();
    let base = serve(files, 10);
    let mirrors = vec![
        format!("{}/", refused_base()),
        format!("{base}/missing/"),
        format!("{base}/corrupt/"),
        format!("{base}/truncated/"),
    ];
    let dir = temp_dir("allfail");
    let err = download::download_file(&file, &dir, &mirrors, &mut |_| {}).unwrap_err();
    let DataError::Download { attempts, .. } = &err else {
        panic!("{err}")
    };
    assert_eq!(attempts.len(), 4);
    let msg = err.to_string();
    for mirror in &mirrors {
        assert!(msg.contains(mirror.as_str()), "{msg}");
    }
    // One line per mirror, its address once (the HTTP client's own messages repeat it).
    for (url, _) in attempts {
        let line = msg.lines().find(|l| l.contains(url.as_str())).unwrap();
        assert_eq!(line.matches(url.as_str()).count(), 1, "{msg}");
    }
    assert!(msg.contains("by hand") && msg.contains(&file.name), "{msg}");
    assert!(leftover_files(&dir).is_empty(), "{:?}", leftover_files(&dir));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn fetch_then_load_a_whole_dataset() {
    let files = tiny_files();
    let spec = DatasetSpec {
        name: "tiny".into(),
        files: std::array::from_fn(|i| files[i].0.clone()),
        mirrors: vec![],
    };
    let base = serve(files, 10);
    let spec = DatasetSpec {
        mirrors: vec![format!("{base}/good/")],
        ..spec
    };
    let root = temp_dir("fetch");
    let paths = download::fetch(&spec, &root, &mut |_| {}).unwrap();
    assert_eq!(paths.len(), 4);
    // A second fetch finds everything present and downloads nothing.
    let mut present = 0;
    download::fetch(&spec, &root, &mut |e| {
        present += matches!(e, FetchEvent::Present { .. }) as usize
    })
    .unwrap();
    assert_eq!(present, 4);
    let raw = dataset::load(&spec, &root).unwrap();
    assert_eq!((raw.train.images.count, raw.test.images.count), (20, 5));
    for (_, status) in dataset::verify(&spec, &root).unwrap() {
        assert!(matches!(status, dataset::FileStatus::Verified(_)), "{status:?}");
    }
    std::fs::remove_dir_all(&root).unwrap();
}
