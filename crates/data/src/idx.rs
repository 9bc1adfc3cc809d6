//! IDX, the file format of MNIST: a big-endian header, then the values in row-major order.
//!
//! ```text
//! offset  type   value
//! 0       u32    magic: 0x00000803 (2051) for images, 0x00000801 (2049) for labels
//! 4       u32    number of items N
//! 8       u32    rows     (images only)
//! 12      u32    columns  (images only)
//! ...     u8     N·rows·columns pixels, or N labels
//! ```
//!
//! Files may be gzip-compressed or raw; which one is decided by the first two bytes, never by
//! the name. Every length is checked before it is trusted: a header that claims more data than
//! the file holds is reported as truncated without ever allocating the claimed size.

use std::io::Read;
use std::path::Path;

use flate2::read::GzDecoder;

use crate::error::{DataError, Result};

/// Magic number of an IDX file of unsigned-byte images with three dimensions.
pub const IMAGES_MAGIC: u32 = 0x0000_0803;
/// Magic number of an IDX file of unsigned-byte labels with one dimension.
pub const LABELS_MAGIC: u32 = 0x0000_0801;
/// Labels are class indices in `0..NUM_CLASSES`.
pub const NUM_CLASSES: usize = 10;

/// No IDX file we accept decodes to more than this many bytes (16 GiB): a header claiming more
/// is rejected before any reading is done.
const MAX_DATA_BYTES: u64 = 1 << 34;
/// How much is reserved up front; the buffer grows only as real bytes arrive.
const INITIAL_RESERVE: u64 = 1 << 26;

/// A set of greyscale images, `count` of them, each `rows × cols` bytes, stored contiguously.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Images {
    pub count: usize,
    pub rows: usize,
    pub cols: usize,
    /// `count · rows · cols` pixels, image after image, row-major within an image.
    pub pixels: Vec<u8>,
}

impl Images {
    /// Pixels per image (`rows · cols`).
    pub fn pixels_per_image(&self) -> usize {
        self.rows * self.cols
    }

    /// The pixels of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        let n = self.pixels_per_image();
        &self.pixels[i * n..(i + 1) * n]
    }
}

/// Reads an IDX image file (gzip-compressed or raw).
pub fn read_images(path: &Path) -> Result<Images> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    images_from_bytes(bytes, path)
}

/// Reads an IDX label file (gzip-compressed or raw); every label must be below [`NUM_CLASSES`].
pub fn read_labels(path: &Path) -> Result<Vec<u8>> {
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, e))?;
    labels_from_bytes(bytes, path)
}

/// Decodes the bytes of an IDX image file; `path` is only used to name the file in errors.
pub fn images_from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Images> {
    let (dims, pixels) = decode(bytes, path, IMAGES_MAGIC, 3)?;
    let (count, rows, cols) = (dims[0], dims[1], dims[2]);
    if rows == 0 || cols == 0 {
        return Err(idx_error(
            path,
            Some(8),
            format!("images have zero size ({rows}×{cols})"),
        ));
    }
    Ok(Images {
        count,
        rows,
        cols,
        pixels,
    })
}

/// Decodes the bytes of an IDX label file; `path` is only used to name the file in errors.
pub fn labels_from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Vec<u8>> {
    let (_, labels) = decode(bytes, path, LABELS_MAGIC, 1)?;
    if let Some(i) = labels.iter().position(|&l| l as usize >= NUM_CLASSES) {
        return Err(idx_error(
            path,
            Some(8 + i as u64),
            format!(
                "label {} of item {i} is not a class index in 0..={}",
                labels[i],
                NUM_CLASSES - 1
            ),
        ));
    }
    Ok(labels)
}

fn idx_error(path: &Path, offset: Option<u64>, problem: impl Into<String>) -> DataError {
    DataError::Idx {
        path: path.to_owned(),
        offset,
        problem: problem.into(),
    }
}

fn is_gzip(bytes: &[u8]) -> bool {
    bytes.starts_with(&[0x1f, 0x8b])
}

/// Checks the header and reads exactly the data it announces. Returns the dimensions and data.
fn decode(bytes: Vec<u8>, path: &Path, magic: u32, ndims: usize) -> Result<(Vec<usize>, Vec<u8>)> {
    let gzip = is_gzip(&bytes);
    let mut reader: Box<dyn Read + '_> = if gzip {
        Box::new(GzDecoder::new(&bytes[..]))
    } else {
        Box::new(&bytes[..])
    };
    let read_err = |e: std::io::Error, what: &str| {
        if gzip && e.kind() != std::io::ErrorKind::UnexpectedEof {
            idx_error(path, None, format!("corrupt gzip stream while reading the {what}: {e}"))
        } else {
            idx_error(path, Some(0), format!("file ends inside the {what}"))
        }
    };

    let header_len = 4 + 4 * ndims;
    let mut header = vec![0u8; header_len];
    // The magic number first: a file of the wrong kind is named as such even when it is shorter
    // than the header we expected.
    reader.read_exact(&mut header[..4]).map_err(|e| read_err(e, "header"))?;
    let word = |header: &[u8], i: usize| u32::from_be_bytes(header[4 * i..4 * i + 4].try_into().unwrap());
    let found = word(&header, 0);
    if found != magic {
        let kind = if magic == IMAGES_MAGIC { "images" } else { "labels" };
        let hint = match found {
            IMAGES_MAGIC => " (this is an image file)",
            LABELS_MAGIC => " (this is a label file)",
            _ if !gzip && bytes.len() >= 2 && bytes[0] != 0 => " (neither IDX nor gzip)",
            _ => "",
        };
        return Err(idx_error(
            path,
            Some(0),
            format!("bad magic number {found:#010x}, expected {magic:#010x} for IDX {kind}{hint}"),
        ));
    }
    reader.read_exact(&mut header[4..]).map_err(|e| read_err(e, "header"))?;
    let dims: Vec<usize> = (1..=ndims).map(|i| word(&header, i) as usize).collect();
    let expected = dims
        .iter()
        .try_fold(1u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&n| n <= MAX_DATA_BYTES)
        .ok_or_else(|| {
            idx_error(
                path,
                Some(4),
                format!("header claims dimensions {dims:?}, more than the 16 GiB this reader accepts"),
            )
        })?;
    if !gzip && (bytes.len() as u64) < header_len as u64 + expected {
        return Err(truncated(
            path,
            header_len as u64,
            expected,
            bytes.len() as u64 - header_len as u64,
            &dims,
        ));
    }

    // Reserve what the header announces, but never more than the input could possibly hold
    // (deflate expands at most 1032:1), so a lying header cannot make us allocate much.
    let plausible = (bytes.len() as u64).saturating_mul(if gzip { 1032 } else { 1 });
    let mut data = Vec::with_capacity(expected.min(INITIAL_RESERVE).min(plausible) as usize);
    // One byte more than announced, so that trailing data is noticed.
    reader
        .take(expected + 1)
        .read_to_end(&mut data)
        .map_err(|e| read_err(e, "data"))?;
    let got = data.len() as u64;
    if got < expected {
        return Err(truncated(path, header_len as u64, expected, got, &dims));
    }
    if got > expected {
        return Err(idx_error(
            path,
            Some(header_len as u64 + expected),
            format!("trailing bytes after the {expected} data bytes announced by dimensions {dims:?}"),
        ));
    }
    Ok((dims, data))
}

fn truncated(path: &Path, header_len: u64, expected: u64, got: u64, dims: &[usize]) -> DataError {
    idx_error(
        path,
        Some(header_len + got),
        format!("truncated: dimensions {dims:?} need {expected} data bytes, the file has {got}"),
    )
}

/// Encodes images as a raw (uncompressed) IDX file. Used by tests and by anyone writing their
/// own IDX data.
pub fn encode_images(images: &Images) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 + images.pixels.len());
    for word in [
        IMAGES_MAGIC,
        images.count as u32,
        images.rows as u32,
        images.cols as u32,
    ] {
        out.extend_from_slice(&word.to_be_bytes());
    }
    out.extend_from_slice(&images.pixels);
    out
}

/// Encodes labels as a raw (uncompressed) IDX file.
pub fn encode_labels(labels: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + labels.len());
    out.extend_from_slice(&LABELS_MAGIC.to_be_bytes());
    out.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    out.extend_from_slice(labels);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use flate2::{write::GzEncoder, Compression};
    use std::io::Write;

    fn sample() -> Images {
        Images {
            count: 3,
            rows: 2,
            cols: 2,
            pixels: (0..12).collect(),
        }
    }

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut enc = GzEncoder::new(Vec::new(), Compression::default());
        enc.write_all(bytes).unwrap();
        enc.finish().unwrap()
    }

    fn err_text(r: Result<impl std::fmt::Debug>) -> String {
        r.expect_err("expected an error").to_string()
    }

    const P: &str = "x/file-idx3-ubyte";

    #[test]
    fn round_trips_raw_and_gzip() {
        let raw = encode_images(&sample());
        assert_eq!(images_from_bytes(raw.clone(), Path::new(P)).unwrap(), sample());
        assert_eq!(images_from_bytes(gzip(&raw), Path::new(P)).unwrap(), sample());
        let labels = encode_labels(&[0, 9, 3]);
        assert_eq!(labels_from_bytes(gzip(&labels), Path::new(P)).unwrap(), vec![0, 9, 3]);
    }

    #[test]
    fn truncated_data_is_reported_with_offset() {
        let mut raw = encode_images(&sample());
        raw.pop();
        let msg = err_text(images_from_bytes(raw.clone(), Path::new(P)));
        assert!(
            msg.contains(P) && msg.contains("truncated") && msg.contains("offset 27"),
            "{msg}"
        );
        let msg = err_text(images_from_bytes(gzip(&raw), Path::new(P)));
        assert!(msg.contains("truncated") && msg.contains("has 11"), "{msg}");
    }

    #[test]
    fn trailing_bytes_are_an_error() {
        let mut raw = encode_labels(&[1, 2]);
        raw.push(7);
        let msg = err_text(labels_from_bytes(raw, Path::new(P)));
        assert!(msg.contains("trailing bytes") && msg.contains("offset 10"), "{msg}");
    }

    #[test]
    fn wrong_magic_names_what_was_found() {
        let msg = err_text(images_from_bytes(encode_labels(&[1]), Path::new(P)));
        assert!(msg.contains("bad magic") && msg.contains("label file"), "{msg}");
        let msg = err_text(labels_from_bytes(b"hello world".to_vec(), Path::new(P)));
        assert!(msg.contains("bad magic"), "{msg}");
    }

    #[test]
    fn short_header_and_empty_file() {
        for bytes in [vec![], vec![0, 0, 8, 3, 0, 0]] {
            let msg = err_text(images_from_bytes(bytes, Path::new(P)));
            assert!(msg.contains("ends inside the header"), "{msg}");
        }
    }

    #[test]
    fn huge_header_is_rejected_without_allocating() {
        // 4 billion images of 65535×65535: rejected by the size cap.
        let mut raw = Vec::new();
        for w in [IMAGES_MAGIC, u32::MAX, 65535, 65535] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        let msg = err_text(images_from_bytes(raw, Path::new(P)));
        assert!(msg.contains("16 GiB"), "{msg}");
        // Within the cap but far beyond the data: a gzip stream claiming 2 billion images
        // of 28×28 is reported truncated (and only the real bytes were ever buffered).
        let mut raw = Vec::new();
        for w in [IMAGES_MAGIC, 20_000_000, 28, 28] {
            raw.extend_from_slice(&w.to_be_bytes());
        }
        raw.extend_from_slice(&[0; 100]);
        let msg = err_text(images_from_bytes(gzip(&raw), Path::new(P)));
        assert!(msg.contains("truncated"), "{msg}");
    }

    #[test]
    fn corrupt_gzip_is_reported() {
        let mut gz = gzip(&encode_images(&sample()));
        let mid = gz.len() / 2;
        gz[mid] ^= 0xff;
        gz[mid + 1] ^= 0xff;
        let msg = err_text(images_from_bytes(gz, Path::new(P)));
        assert!(msg.contains(P), "{msg}");
    }

    #[test]
    fn labels_out_of_range() {
        let msg = err_text(labels_from_bytes(encode_labels(&[1, 2, 10]), Path::new(P)));
        assert!(msg.contains("label 10 of item 2") && msg.contains("offset 10"), "{msg}");
    }

    #[test]
    fn zero_sized_images() {
        let imgs = Images {
            count: 0,
            rows: 0,
            cols: 28,
            pixels: vec![],
        };
        let msg = err_text(images_from_bytes(encode_images(&imgs), Path::new(P)));
        assert!(msg.contains("zero size"), "{msg}");
    }
}
