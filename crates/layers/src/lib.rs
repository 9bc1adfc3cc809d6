//! # backprop-layers
//!
//! The layers of fastai's lesson 8 (`02_fully_connected`, and the cross-entropy of `03`), each
//! with its forward pass and its hand-written backward pass side by side:
//!
//! | layer | forward | backward (g = ∂L/∂output) |
//! |---|---|---|
//! | [`Linear`] (`lin`, `lin_grad`) | `y = x·Wᵀ + b` | `∂W += gᵀ·x`, `∂b += Σ g`, `∂x = g·W` |
//! | [`Relu`] (`relu`, `relu_grad`) | `y = max(x, 0)` (leak, shift, clamp optional) | `∂x = g·[x > 0]` |
//! | [`Softmax`] / [`LogSoftmax`] | `exp(x − logsumexp(x))` / `x − logsumexp(x)` | see each type |
//! | [`Mse`] (`mse`, `mse_grad`) | `mean (p − t)²` | `2(p − t)/B` |
//! | [`CrossEntropy`] | `mean logsumexp(x) − x_y` | `(softmax(x) − onehot(y))/B` |
//!
//! Layers are generic over the element type ([`Float`]): `f32` for training (matrix products on
//! `backprop-matmul`), `f64` for [`gradcheck`], which compares every backward against central
//! finite differences and reports the worst element. [`snapshot::format_tensor`] prints tensors
//! at fixed precision for snapshot tests of your own layers.
//!
//! A [`Module`] has a forward and a backward and nothing else that matters: `forward` keeps
//! what `backward` needs, and parameter gradients accumulate (`+=`) until
//! [`ModuleExt::zero_grad`], as in PyTorch. A layer of your own is a dozen lines (see
//! [`Module`]); anything done only for speed lives in `backprop-train`'s engine, not here.
//!
//! A two-layer network, forward and backward:
//!
//! ```
//! use backprop_layers::{CrossEntropy, Linear, Loss, Module, ModuleExt, Relu};
//! use backprop_init::{rng, Init};
//! use ndarray::Array2;
//!
//! let mut gen = rng(0);
//! let (mut lin1, mut relu, mut lin2) =
//!     (Linear::new(784, 50, Init::KAIMING_RELU, &mut gen), Relu::new(), Linear::new(50, 10, Init::KAIMING_RELU, &mut gen));
//! let x = Array2::<f32>::ones((64, 784));
//! let labels = vec![3usize; 64];
//!
//! let h = relu.forward(lin1.forward(x.view())?.view())?;
//! let logits = lin2.forward(h.view())?;
//! let mut loss = CrossEntropy::new();
//! let value = loss.forward(logits.view(), &labels)?;
//!
//! let g = loss.backward()?;
//! let g = lin2.backward(g.view())?;
//! let g = relu.backward(g.view())?;
//! lin1.backward(g.view())?;
//! assert!(value > 0.0 && lin1.weight_grad.iter().any(|&v| v != 0.0));
//! lin1.zero_grad();
//! assert!(lin1.weight_grad.iter().all(|&v| v == 0.0));
//! # Ok::<(), backprop_layers::LayerError>(())
//! ```
//!
//! This crate computes; it never touches files or the terminal.

pub mod error;
pub mod exp;
pub mod float;
pub mod gradcheck;
pub mod linear;
pub mod loss;
pub mod module;
pub mod relu;
pub mod snapshot;
pub mod softmax;

pub use error::{LayerError, Result};
pub use float::Float;
pub use linear::{add_row_sums, Linear};
pub use loss::{accuracy, argmax_rows, correct_count, CrossEntropy, Loss, Mse};
pub use module::{Identity, Module, ModuleExt};
pub use relu::Relu;
pub use softmax::{log_softmax, logsumexp_rows, softmax, LogSoftmax, Softmax};
