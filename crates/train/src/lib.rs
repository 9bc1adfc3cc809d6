//! # backprop-train
//!
//! Training: [`Sgd`] (momentum, weight decay, as `torch.optim.SGD`), learning-rate
//! [`Schedule`]s (constant, linear, cosine, one-cycle), the [`fit()`] loop with per-batch and
//! per-epoch [`Callbacks`], metrics weighted by batch size ([`metrics`]), and run folders
//! written atomically ([`checkpoint`]).
//!
//! **Two floors.** Everything above is the lesson: `fit` runs `forward`, the loss,
//! `backward`, `Sgd::step` and `zero_grad` for any model. The [`engine`] is the floor beneath,
//! which a reader can skip: for a model made only of the workspace's `Linear` and plain `ReLU`
//! layers, `fit` runs the same formulas there with the savings only speed needs, and
//! `tests/engine.rs` holds the two floors to each other.
//!
//! Reproducible by construction: with a seed, a run gives bit-identical weights every time and
//! for any number of threads (the matrix products are deterministic, the shuffle is a function
//! of the seed and the epoch, and every reduction runs in a fixed order), and a run resumed from
//! its checkpoint ends exactly where an uninterrupted one does.
//!
//! ```no_run
//! use backprop_data::{dataset, DatasetSpec, SplitScheme, Splits};
//! use backprop_init::{rng, Init};
//! use backprop_model::mlp;
//! use backprop_train::{fit, FitConfig, Schedule, Sgd, Task, TrainState};
//!
//! let raw = dataset::load(&DatasetSpec::mnist(), "data".as_ref())?;
//! let splits = Splits::new(&raw, SplitScheme::Fastai)?;
//! let mut model = mlp(&[784, 50, 10], Init::KAIMING_RELU, &mut rng(0));
//! let config = FitConfig { epochs: 3, batch_size: 64, lr: 0.1, schedule: Schedule::Constant,
//!                          momentum: 0.9, weight_decay: 0.0, seed: 0, task: Task::Classification };
//! let reports = fit(&mut model, &mut Sgd::new(0.9, 0.0), &mut TrainState::default(), &splits.train,
//!                   splits.valid.as_ref(), &splits.normalization, &config, &mut ())?;
//! println!("valid accuracy {:.4}", reports.last().unwrap().valid.as_ref().unwrap().accuracy);
//! # Ok::<(), backprop_train::TrainError>(())
//! ```

pub mod checkpoint;
pub mod engine;
pub mod error;
pub mod fit;
pub mod metrics;
pub mod optimizer;
pub mod schedule;
pub mod task;

pub use error::TrainError;
pub use fit::{fit, BatchInfo, Callbacks, EpochReport, FitConfig, Flow, TrainState};
pub use metrics::{evaluate, Evaluation, Mean};
pub use optimizer::Sgd;
pub use schedule::Schedule;
pub use task::{Objective, Task};
