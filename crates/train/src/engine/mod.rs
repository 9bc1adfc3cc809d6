//! The engine: everything the training loop does **only for speed**, in one place a reader can
//! skip.
//!
//! The lesson's path ([`fit()`](crate::fit()) with any model) is `model.forward`, the loss,
//! `model.backward`, [`Sgd::step`](crate::Sgd::step), `zero_grad`: every layer keeps its
//! input, every gradient is accumulated into zeros and then read by the optimizer. For a
//! [`Sequential`] made only of the crate's own [`Linear`] layers and plain [`Relu`]s, the loop
//! runs the same formulas here instead, with these savings:
//!
//! - **The batch is lent, not copied** ([`Network::forward`] / [`Network::backward`]): the
//!   engine keeps each layer's output itself (llm.c-style) and borrows the batch for the whole
//!   step, so the borrow checker guarantees backward sees the input forward saw.
//! - **Gradients are overwritten, not zeroed and accumulated**: `∂W = gᵀ·x` is written with
//!   β = 0, two passes over every weight gradient fewer.
//! - **Plain SGD is fused into the weight-gradient product**:
//!   `W ← (1 − lr·λ)·W − lr·gᵀ·x` is one product (α = −lr, β = 1 − lr·λ), and `∂W` is never
//!   stored.
//! - **Momentum SGD's update is split over threads** the way the products split the weight
//!   ([`update`]).
//! - **The pool's other workers are kept polling** through an epoch ([`awake`]), so a split
//!   product starts at once, and in the gaps between products **they convert the next batch in
//!   pieces** ([`conversion`]).
//!
//! **What it must give.** The lesson's bits where the formulas are the same operations: plain
//! SGD with λ = 0 while a weight-gradient product adds the batch in one panel (batch ≤ 384), and
//! momentum SGD always. Otherwise (λ ≠ 0 fused, or a long batch added a panel at a time) the
//! same values to rounding, within 1e-6 relative. `tests/engine.rs` holds the two paths to
//! this, step by step, for each optimizer setting.
//!
//! [`Linear`]: backprop_layers::Linear
//! [`Sequential`]: backprop_model::Sequential
//! [`Relu`]: backprop_layers::Relu

pub mod awake;
pub mod conversion;
mod network;
pub mod update;

pub use awake::{with_workers_awake, with_workers_awake_and, Contention, Helpers};
pub use conversion::SharedConversion;
pub use network::{Network, Update};
