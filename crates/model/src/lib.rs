//! # backprop-model
//!
//! Models built from `backprop-layers` modules: [`Sequential`] (forward through all modules,
//! backward in reverse, PyTorch parameter names, a summary table), [`mlp`] to build the
//! lesson's networks, and [`checkpoint`] to move parameters in and out of safetensors bytes
//! that PyTorch reads and writes.
//!
//! ```
//! use backprop_init::{rng, Init};
//! use backprop_layers::ModuleExt;
//! use backprop_model::{checkpoint, mlp};
//!
//! let model = mlp(&[784, 50, 10], Init::KAIMING_RELU, &mut rng(0));
//! let names: Vec<String> = model.parameter_shapes().into_iter().map(|(n, _)| n).collect();
//! assert_eq!(names, ["0.weight", "0.bias", "2.weight", "2.bias"]);
//! assert_eq!(model.parameter_count(), 39_760);
//!
//! let bytes = checkpoint::to_safetensors(&model)?;
//! let (tensors, _) = checkpoint::tensors_from_bytes(&bytes)?;
//! let rebuilt = checkpoint::mlp_from_tensors(&tensors)?;
//! assert_eq!(checkpoint::state_dict(&rebuilt), checkpoint::state_dict(&model));
//! # Ok::<(), backprop_model::ModelError>(())
//! ```
//!
//! This crate never touches the disk: it produces and reads bytes.

pub mod checkpoint;
pub mod error;
pub mod sequential;

pub use error::ModelError;
pub use sequential::{group_thousands, mlp, Sequential};
