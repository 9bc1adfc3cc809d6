//! # backprop-data
//!
//! MNIST-style datasets from the IDX files on disk to normalized `f32` minibatches.
//!
//! - [`idx`]: the IDX format, read from gzip or raw bytes, every length validated.
//! - [`dataset`]: the known datasets (MNIST, Fashion-MNIST) with sizes, MD5 and SHA-256, where
//!   their files are found, and loading the four files with cross-checks.
//! - [`download`]: mirror by mirror into a temporary file, checksum-verified, renamed into place.
//! - [`split`]: train / valid / test splits (the standard one and fastai's `mnist.pkl.gz`) and
//!   normalization `x = (p/scale − mean)/std`, with mean and std of the training split.
//! - [`loader`]: seeded, portable shuffling and reused batch buffers.
//!
//! Pixels stay `u8` in memory (47 MB for MNIST's training set instead of 188 MB as `f32`); each
//! batch is normalized on the fly with one multiply-add per pixel.
//!
//! This crate touches the disk only to read and download datasets, and draws nothing on the
//! terminal: downloads report progress through a callback.
//!
//! ```no_run
//! use backprop_data::{dataset, DataLoader, DatasetSpec, Order, SplitScheme, Splits};
//! # fn main() -> Result<(), backprop_data::DataError> {
//! let raw = dataset::load(&DatasetSpec::mnist(), "data".as_ref())?;
//! let splits = Splits::new(&raw, SplitScheme::Fastai)?;
//! let mut loader = DataLoader::new(&splits.train, &splits.normalization, 64, Order::Shuffled { seed: 0 })?;
//! let mut epoch = loader.epoch(0);
//! while let Some(batch) = epoch.next_batch() {
//!     assert_eq!(batch.x.ncols(), 784);
//!     assert_eq!(batch.x.nrows(), batch.y.len());
//! }
//! # Ok(()) }
//! ```

pub mod dataset;
pub mod download;
pub mod error;
pub mod idx;
pub mod loader;
pub mod split;

pub use dataset::{load, resolve_data_dir, DatasetSpec, RawDataset, RemoteFile};
pub use error::{DataError, Result};
pub use loader::{convert_rows, Batch, BatchBuffer, DataLoader, Epoch, Order};
pub use split::{Normalization, SplitScheme, Splits, Subset};
