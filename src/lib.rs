//! # backprop
//!
//! The facade of the workspace: it re-exports each crate under a short name, so an application
//! can depend on `backprop` alone. Libraries should depend on the single crates they need
//! (`backprop-layers` is useful by itself).
//!
//! | module | crate | what it holds |
//! |---|---|---|
//! | [`data`] | `backprop-data` | IDX files, datasets, splits, normalization, batches |
//! | [`init`] | `backprop-init` | Kaiming / Xavier / PyTorch-default initialization |
//! | [`matmul`] | `backprop-matmul` | the SGEMM every layer's products run on |
//! | [`layers`] | `backprop-layers` | `Module`; Linear, ReLU, softmax, MSE, cross-entropy |
//! | [`model`] | `backprop-model` | `Sequential`, `mlp`, safetensors checkpoints |
//! | [`train`] | `backprop-train` | SGD, schedules, the fit loop, metrics, run folders, the engine |
//!
//! A network built, run forward and backward, and stepped, all through the facade:
//!
//! ```
//! use backprop::init::{rng, Init};
//! use backprop::layers::{CrossEntropy, Linear, Loss, Module, ModuleExt, Relu};
//! use backprop::model::Sequential;
//! use backprop::train::Sgd;
//! use ndarray::Array2;
//!
//! let mut gen = rng(0);
//! let mut model = Sequential::new();
//! model
//!     .push(Linear::new(784, 50, Init::KAIMING_RELU, &mut gen))
//!     .push(Relu::new())
//!     .push(Linear::new(50, 10, Init::KAIMING_RELU, &mut gen));
//! let x = Array2::<f32>::from_elem((8, 784), 0.5);
//! let logits = model.forward(x.view())?;
//! let mut loss = CrossEntropy::new();
//! let before = loss.forward(logits.view(), &[3; 8])?;
//! model.backward(loss.backward()?.view())?;
//! Sgd::new(0.0, 0.0).step(&mut model, 0.1);
//! model.zero_grad();
//! let after = loss.forward(model.forward(x.view())?.view(), &[3; 8])?;
//! assert!(after < before);
//! assert_eq!(backprop::matmul::matmul(x.view(), Array2::ones((784, 1)).view())[[0, 0]], 392.0);
//! # Ok::<(), backprop::layers::LayerError>(())
//! ```

pub use backprop_data as data;
pub use backprop_init as init;
pub use backprop_layers as layers;
pub use backprop_matmul as matmul;
pub use backprop_model as model;
pub use backprop_train as train;
