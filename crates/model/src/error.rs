//! Errors of models and checkpoints.

use backprop_layers::LayerError;

#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("checkpoint is not valid safetensors: {0}")]
    Format(String),
    #[error("checkpoint has no tensor `{key}` that the model needs")]
    MissingKey { key: String },
    #[error("checkpoint has a tensor `{key}` that the model does not have")]
    UnexpectedKey { key: String },
    #[error("tensor `{key}` has shape {got:?} in the checkpoint but {expected:?} in the model")]
    Shape {
        key: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    #[error("tensor `{key}` has dtype {got}, expected {expected}")]
    Dtype {
        key: String,
        expected: &'static str,
        got: String,
    },
    #[error(transparent)]
    Layer(#[from] LayerError),
}
