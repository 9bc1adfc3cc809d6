//! The datasets we know by name: their files, sizes, checksums and download mirrors, and where
//! their files are found on disk.

use std::io::Read;
use std::path::{Path, PathBuf};

use md5::Md5;
use sha2::{Digest, Sha256};

use crate::error::{DataError, Result};
use crate::idx::{self, Images};

/// One published file of a dataset.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RemoteFile {
    /// The published (gzip) name, e.g. `train-images-idx3-ubyte.gz`.
    pub name: String,
    pub size: u64,
    pub md5: String,
    pub sha256: String,
}

impl RemoteFile {
    fn new(name: &str, size: u64, md5: &str, sha256: &str) -> Self {
        RemoteFile {
            name: name.into(),
            size,
            md5: md5.into(),
            sha256: sha256.into(),
        }
    }

    /// The name without `.gz`: how the file is called once decompressed.
    pub fn raw_name(&self) -> &str {
        self.name.strip_suffix(".gz").unwrap_or(&self.name)
    }
}

/// A dataset in the MNIST layout: four IDX files and the mirrors they can be downloaded from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DatasetSpec {
    /// Folder name under the data directory, e.g. `mnist`.
    pub name: String,
    /// Train images, train labels, test images, test labels, in that order.
    pub files: [RemoteFile; 4],
    /// Base URLs, tried in order; a file's URL is the base followed by its name.
    pub mirrors: Vec<String>,
}

impl DatasetSpec {
    /// LeCun & Cortes' MNIST digits (sizes and MD5s as published; SHA-256 of the same bytes).
    pub fn mnist() -> Self {
        DatasetSpec {
            name: "mnist".into(),
            files: [
                RemoteFile::new(
                    "train-images-idx3-ubyte.gz",
                    9_912_422,
                    "f68b3c2dcbeaaa9fbdd348bbdeb94873",
                    "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
                ),
                RemoteFile::new(
                    "train-labels-idx1-ubyte.gz",
                    28_881,
                    "d53e105ee54ea40749a09fcbcd1e9432",
                    "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
                ),
                RemoteFile::new(
                    "t10k-images-idx3-ubyte.gz",
                    1_648_877,
                    "9fb629c4189551a2d022fa330f9573f3",
                    "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
                ),
                RemoteFile::new(
                    "t10k-labels-idx1-ubyte.gz",
                    4_542,
                    "ec29112dd5afa0611ce80d1b7f02629c",
                    "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
                ),
            ],
            mirrors: vec![
                "https://ossci-datasets.s3.amazonaws.com/mnist/".into(),
                "https://storage.googleapis.com/cvdf-datasets/mnist/".into(),
            ],
        }
    }

    /// Zalando's Fashion-MNIST (same layout and names as MNIST).
    pub fn fashion_mnist() -> Self {
        DatasetSpec {
            name: "fashion-mnist".into(),
            files: [
                RemoteFile::new(
                    "train-images-idx3-ubyte.gz",
                    26_421_880,
                    "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
                    "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
                ),
                RemoteFile::new(
                    "train-labels-idx1-ubyte.gz",
                    29_515,
                    "25c81989df183df01b3e8a0aad5dffbe",
                    "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
                ),
                RemoteFile::new(
                    "t10k-images-idx3-ubyte.gz",
                    4_422_102,
                    "bef4ecab320f06d8554ea6380940ec79",
                    "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
                ),
                RemoteFile::new(
                    "t10k-labels-idx1-ubyte.gz",
                    5_148,
                    "bb300cfdad3c16e7a12a480ee83cd310",
                    "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
                ),
            ],
            mirrors: vec!["http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/".into()],
        }
    }

    /// `mnist` or `fashion-mnist`.
    pub fn by_name(name: &str) -> Result<Self> {
        match name {
            "mnist" => Ok(Self::mnist()),
            "fashion-mnist" | "fashion_mnist" | "fashion" => Ok(Self::fashion_mnist()),
            other => Err(DataError::Invalid(format!(
                "unknown dataset `{other}`: expected `mnist` or `fashion-mnist`"
            ))),
        }
    }

    /// The folder this dataset's files live in under a data directory.
    pub fn dir(&self, data_dir: &Path) -> PathBuf {
        data_dir.join(&self.name)
    }
}

/// The data directory: the explicit one if given, else `$BACKPROP_DATA`, else `default`.
pub fn resolve_data_dir(explicit: Option<&Path>, default: &Path) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_owned();
    }
    match std::env::var_os("BACKPROP_DATA") {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => default.to_owned(),
    }
}

/// Where `file` is in `dir`: `NAME.gz` if present, else the decompressed `NAME`, else `None`.
pub fn locate(dir: &Path, file: &RemoteFile) -> Option<PathBuf> {
    [file.name.as_str(), file.raw_name()]
        .into_iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

fn locate_or_missing(dir: &Path, file: &RemoteFile) -> Result<PathBuf> {
    locate(dir, file).ok_or_else(|| DataError::Missing {
        path: dir.join(&file.name),
    })
}

/// A split's images with their labels, checked to belong together.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LabelledImages {
    pub images: Images,
    pub labels: Vec<u8>,
}

/// The four files of a dataset, read and cross-checked.
#[derive(Clone, Debug)]
pub struct RawDataset {
    pub name: String,
    pub train: LabelledImages,
    pub test: LabelledImages,
}

/// Reads a dataset's four files from `<data_dir>/<name>/`. Only the structure is checked (not
/// the checksums), so any IDX files in the MNIST layout can be used under the same names.
pub fn load(spec: &DatasetSpec, data_dir: &Path) -> Result<RawDataset> {
    let dir = spec.dir(data_dir);
    let paths = spec
        .files
        .iter()
        .map(|f| locate_or_missing(&dir, f))
        .collect::<Result<Vec<_>>>()?;
    // The two image files are the slow part (inflate); read them on two threads.
    let (train_images, test_images) = std::thread::scope(|s| {
        let train = s.spawn(|| idx::read_images(&paths[0]));
        let test = idx::read_images(&paths[2]);
        (train.join().expect("IDX reader thread panicked"), test)
    });
    let train = pair(train_images?, idx::read_labels(&paths[1])?, &paths[0], &paths[1])?;
    let test = pair(test_images?, idx::read_labels(&paths[3])?, &paths[2], &paths[3])?;
    if (train.images.rows, train.images.cols) != (test.images.rows, test.images.cols) {
        return Err(DataError::Inconsistent {
            path: paths[2].clone(),
            problem: format!(
                "test images are {}×{} but training images ({}) are {}×{}",
                test.images.rows,
                test.images.cols,
                paths[0].display(),
                train.images.rows,
                train.images.cols
            ),
        });
    }
    Ok(RawDataset {
        name: spec.name.clone(),
        train,
        test,
    })
}

fn pair(images: Images, labels: Vec<u8>, images_path: &Path, labels_path: &Path) -> Result<LabelledImages> {
    if images.count != labels.len() {
        return Err(DataError::Inconsistent {
            path: labels_path.to_owned(),
            problem: format!(
                "{} labels for {} images in {}",
                labels.len(),
                images.count,
                images_path.display()
            ),
        });
    }
    Ok(LabelledImages { images, labels })
}

/// SHA-256 and MD5 of a file, as lowercase hex, read in one streaming pass.
pub fn file_digests(path: &Path) -> Result<(String, String)> {
    let mut file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut sha = Sha256::new();
    let mut md5 = Md5::new();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = file.read(&mut buf).map_err(|e| DataError::io(path, e))?;
        if n == 0 {
            break;
        }
        sha.update(&buf[..n]);
        md5.update(&buf[..n]);
    }
    Ok((hex(&sha.finalize()), hex(&md5.finalize())))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// What `verify` found for one file.
#[derive(Debug)]
pub enum FileStatus {
    /// The published `.gz` file, byte for byte (SHA-256 and MD5 match).
    Verified(PathBuf),
    /// Only a decompressed copy is present: its checksum is not published, structure is checked
    /// when it is loaded.
    Decompressed(PathBuf),
    Missing(PathBuf),
    /// Present but not the published bytes.
    Mismatch(DataError),
}

/// Checks the checksums of the files present for a dataset.
pub fn verify(spec: &DatasetSpec, data_dir: &Path) -> Result<Vec<(String, FileStatus)>> {
    let dir = spec.dir(data_dir);
    let mut out = Vec::new();
    for file in &spec.files {
        let gz = dir.join(&file.name);
        let status = if gz.is_file() {
            match check_file(&gz, file)? {
                None => FileStatus::Verified(gz),
                Some(err) => FileStatus::Mismatch(err),
            }
        } else if dir.join(file.raw_name()).is_file() {
            FileStatus::Decompressed(dir.join(file.raw_name()))
        } else {
            FileStatus::Missing(gz)
        };
        out.push((file.name.clone(), status));
    }
    Ok(out)
}

/// `Ok(None)` when `path` holds exactly the published bytes of `file`, `Ok(Some(mismatch))`
/// when it does not.
pub fn check_file(path: &Path, file: &RemoteFile) -> Result<Option<DataError>> {
    let (sha, md5) = file_digests(path)?;
    let mismatch = |algorithm, expected: &str, actual: String| {
        Some(DataError::Checksum {
            path: path.to_owned(),
            algorithm,
            expected: expected.to_owned(),
            actual,
        })
    };
    Ok(if sha != file.sha256 {
        mismatch("sha256", &file.sha256, sha)
    } else if md5 != file.md5 {
        mismatch("md5", &file.md5, md5)
    } else {
        None
    })
}
