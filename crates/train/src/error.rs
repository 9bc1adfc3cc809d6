//! Errors of training.

use std::path::PathBuf;

use backprop_data::DataError;
use backprop_layers::LayerError;
use backprop_model::ModelError;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    /// The loss stopped being a number: training cannot go on from here.
    #[error(
        "the loss is {value} at epoch {epoch}, batch {batch} (learning rate {lr}); training stopped. \
         Try a lower learning rate (--lr) or less momentum; the last good checkpoint is kept"
    )]
    NonFinite {
        epoch: usize,
        batch: usize,
        value: f32,
        lr: f32,
    },
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {problem}", path.display())]
    Checkpoint { path: PathBuf, problem: String },
    #[error("{0}")]
    Invalid(String),
    /// Another process holds the run folder's lock: one writer per run folder.
    #[error(
        "{} is in use by another run{}: wait for it to end, or choose another folder",
        path.display(),
        holder.map_or(String::new(), |pid| format!(" (process {pid})"))
    )]
    Busy { path: PathBuf, holder: Option<u32> },
    #[error(transparent)]
    Layer(#[from] LayerError),
    #[error(transparent)]
    Data(#[from] DataError),
    #[error(transparent)]
    Model(#[from] ModelError),
}

impl TrainError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        TrainError::Io {
            path: path.into(),
            source,
        }
    }
}
