//! # backprop
//!
//! The facade of the workspace: it re-exports each crate under a short name, so an application
//! can depend on `backprop` alone. Libraries should depend on the single crates they need
//! (`backprop-layers` is useful by itself).

pub use backprop_data as data;
