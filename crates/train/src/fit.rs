//! The minibatch training loop.
//!
//! ```text
//! for epoch in done..epochs:
//!     for (x, y) in batches(train, shuffled by (seed, epoch)):
//!         η = schedule(step / total_steps)
//!         ŷ = model.forward(x);  L = loss(ŷ, y)          (stop if L is not finite)
//!         model.backward(∂L/∂ŷ)
//!         sgd.step(η);  model.zero_grad();  step += 1
//!         callbacks.on_batch (progress; may stop the run)
//!     evaluate on valid;  callbacks.on_epoch (checkpoint, log)
//! ```
//!
//! That is the loop for any model. A model made only of this workspace's `Linear` and plain
//! `ReLU` layers runs the same steps through the [`engine`](mod@crate::engine) instead, which
//! computes the same numbers with less memory traffic (same bits, or within 1e-6 relative
//! where the engine fuses an update into a product: see its docs).
//!
//! Everything that decides the result (weights, momentum, shuffle order, schedule position) is
//! a function of the seed and the number of steps done, so a run resumed from the state saved
//! after epoch k ends with the same bits as one that never stopped.

use std::time::Instant;

use ndarray::ArrayView2;

use backprop_data::{Batch, BatchBuffer, DataLoader, Epoch, Normalization, Order, Subset};
use backprop_layers::{Module, ModuleExt};
use backprop_model::Sequential;

use crate::engine::{self, Network, SharedConversion};
use crate::error::TrainError;
use crate::metrics::{evaluate, Evaluation, Mean};
use crate::optimizer::Sgd;
use crate::schedule::Schedule;
use crate::task::{Objective, Task};

/// The settings of a run that determine its result.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitConfig {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f32,
    pub schedule: Schedule,
    pub momentum: f32,
    pub weight_decay: f32,
    pub seed: u64,
    pub task: Task,
}

/// How far a run has got.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct TrainState {
    /// Completed epochs.
    pub epochs_done: usize,
    /// Optimizer steps taken.
    pub step: u64,
}

/// What the per-batch hook sees.
#[derive(Clone, Copy, Debug)]
pub struct BatchInfo {
    /// 1-based epoch and batch.
    pub epoch: usize,
    pub batch: usize,
    pub batches: usize,
    pub loss: f32,
    pub lr: f32,
    pub samples: usize,
}

/// One line of the training log.
#[derive(Clone, Debug, PartialEq)]
pub struct EpochReport {
    /// 1-based.
    pub epoch: usize,
    pub train_loss: f64,
    pub valid: Option<Evaluation>,
    /// Training time of the epoch (evaluation excluded).
    pub seconds: f64,
    pub samples: usize,
}

/// What the loop does after a batch or an epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flow {
    Continue,
    /// Stop now (early stopping, a run done in parts, Ctrl-C); the state says where it stopped.
    Stop,
}

/// Hooks into the loop, so users can watch or save without forking it.
pub trait Callbacks {
    /// After every optimizer step. [`Flow::Stop`] ends the run in the middle of its epoch:
    /// [`fit`] returns the reports of the whole epochs, and the [`TrainState`] is left as that
    /// last whole epoch left it (so `epochs_done` and `step` still match the last checkpoint
    /// `on_epoch` wrote, from which a resumed run is bit-identical), while the model holds the
    /// updates of the batches run since.
    fn on_batch(&mut self, _info: &BatchInfo) -> Flow {
        Flow::Continue
    }
    /// After every epoch, with everything needed to checkpoint.
    fn on_epoch(
        &mut self,
        _report: &EpochReport,
        _model: &Sequential<f32>,
        _sgd: &Sgd,
        _state: &TrainState,
    ) -> Result<Flow, TrainError> {
        Ok(Flow::Continue)
    }
}

/// No hooks.
impl Callbacks for () {}

/// Why the batches of an epoch ended early.
enum StepEnd {
    /// `on_batch` asked to stop.
    Stopped,
    Failed(TrainError),
}

impl<E: Into<TrainError>> From<E> for StepEnd {
    fn from(err: E) -> Self {
        StepEnd::Failed(err.into())
    }
}

/// Trains `model` from `state` up to `config.epochs` epochs. Returns the reports of the epochs
/// run now. Parameter gradients read as zeros afterwards, as after the lesson's `zero_grad`.
#[allow(clippy::too_many_arguments)]
pub fn fit(
    model: &mut Sequential<f32>,
    sgd: &mut Sgd,
    state: &mut TrainState,
    train: &Subset,
    valid: Option<&Subset>,
    normalization: &Normalization,
    config: &FitConfig,
    callbacks: &mut dyn Callbacks,
) -> Result<Vec<EpochReport>, TrainError> {
    let mut loader = DataLoader::new(
        train,
        normalization,
        config.batch_size,
        Order::Shuffled { seed: config.seed },
    )?;
    let batches = loader.num_batches();
    let total_steps = (config.epochs * batches) as u64;
    let mut objective = Objective::new(config.task);
    let mut path = Path::for_model(model, config.batch_size, train.features());
    let mut reports = Vec::new();
    model.zero_grad();
    for epoch in state.epochs_done..config.epochs {
        let started = Instant::now();
        let step_at_start = state.step;
        let mut train_loss = Mean::default();
        let mut each_step = |batch: Batch<'_>, path: &mut Step<'_>| -> Result<(), StepEnd> {
            let lr = config.schedule.lr_at(config.lr, state.step, total_steps);
            let scored = |output: ArrayView2<f32>, objective: &mut Objective| -> Result<f32, StepEnd> {
                let loss = objective.loss(output, batch.y)?;
                if !loss.is_finite() {
                    return Err(StepEnd::Failed(TrainError::NonFinite {
                        epoch: epoch + 1,
                        batch: batch.index + 1,
                        value: loss,
                        lr,
                    }));
                }
                Ok(loss)
            };
            let loss = match path {
                // The lesson's step.
                Step::Plain => {
                    let output = model.forward(batch.x)?;
                    let loss = scored(output.view(), &mut objective)?;
                    model.backward(objective.grad()?.view())?;
                    sgd.step(model, lr);
                    model.zero_grad();
                    loss
                }
                // The same step on the engine floor: the batch lent, gradients overwritten or
                // the update fused into the products.
                Step::Engine { network, threads } => {
                    let threads = *threads;
                    let loss = scored(network.forward(model, batch.x, threads)?, &mut objective)?;
                    network.step(model, batch.x, objective.grad()?, sgd, lr, threads)?;
                    loss
                }
            };
            state.step += 1;
            train_loss.add(loss as f64, batch.y.len());
            let flow = callbacks.on_batch(&BatchInfo {
                epoch: epoch + 1,
                batch: batch.index + 1,
                batches,
                loss,
                lr,
                samples: batch.y.len(),
            });
            match flow {
                Flow::Continue => Ok(()),
                Flow::Stop => Err(StepEnd::Stopped),
            }
        };
        let epoch_run = path.run_epoch(loader.epoch(epoch as u64), &mut each_step);
        match epoch_run {
            Ok(()) => {}
            Err(StepEnd::Stopped) => {
                state.step = step_at_start;
                break;
            }
            Err(StepEnd::Failed(err)) => {
                path.finish(model);
                return Err(err);
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        state.epochs_done = epoch + 1;
        path.finish(model);
        let valid = valid
            .map(|v| evaluate(model, v, normalization, config.task, 1000))
            .transpose()?;
        let report = EpochReport {
            epoch: epoch + 1,
            train_loss: train_loss.value(),
            valid,
            seconds,
            samples: train_loss.count(),
        };
        let flow = callbacks.on_epoch(&report, model, sgd, state)?;
        reports.push(report);
        if flow == Flow::Stop {
            break;
        }
    }
    path.finish(model);
    Ok(reports)
}

/// How a batch is trained: the lesson's way, or the engine's.
enum Step<'n> {
    Plain,
    /// The engine, with the number of threads its products may use for this batch.
    Engine {
        network: &'n mut Network,
        threads: usize,
    },
}

/// The loop's way through an epoch, chosen once per run from the model.
enum Path {
    /// Any model: the lesson's loop over [`Epoch::next_batch`].
    Plain,
    /// The engine: the batch lent to the network, the next one converted by idle workers.
    Engine {
        network: Box<Network>,
        buffers: Box<[BatchBuffer; 2]>,
        /// Whether the helpers are parked, kept from epoch to epoch.
        contention: engine::Contention,
    },
}

impl Path {
    fn for_model(model: &Sequential<f32>, batch_size: usize, features: usize) -> Path {
        match Network::plan(model) {
            Some(network) => Path::Engine {
                network: Box::new(network),
                buffers: Box::new(std::array::from_fn(|_| {
                    BatchBuffer::with_capacity(batch_size, features)
                })),
                contention: engine::Contention::default(),
            },
            None => Path::Plain,
        }
    }

    /// Runs `each_step` on every batch of `epoch`.
    fn run_epoch(
        &mut self,
        mut epoch: Epoch<'_, '_>,
        each_step: &mut dyn FnMut(Batch<'_>, &mut Step<'_>) -> Result<(), StepEnd>,
    ) -> Result<(), StepEnd> {
        match self {
            Path::Plain => {
                while let Some(batch) = epoch.next_batch() {
                    each_step(batch, &mut Step::Plain)?;
                }
                Ok(())
            }
            Path::Engine {
                network,
                buffers,
                contention,
            } => {
                // The other workers of the pool stay awake for the epoch (each step's products
                // are too short to wait for a sleeping worker), and between their shares of
                // the products they convert the next batch, a few rows at a time.
                let shared = SharedConversion::new();
                let idle_work = || shared.convert_piece();
                // On a busy machine, while the threads keep waiting for a core, the helpers are
                // parked (`engine::Contention`) and the products run unsplit on this thread.
                engine::with_workers_awake_and(&idle_work, |helpers| {
                    engine::conversion::for_each_batch(&epoch, &shared, buffers, |batch| {
                        contention.update(helpers);
                        let threads = if helpers.parked() {
                            1
                        } else {
                            rayon::current_num_threads()
                        };
                        each_step(batch, &mut Step::Engine { network, threads })
                    })
                })
            }
        }
    }

    /// Leaves the model as the lesson's loop leaves it: the engine's last update may have left
    /// gradients in the layers, which then read as zeros.
    fn finish(&mut self, model: &mut Sequential<f32>) {
        if let Path::Engine { .. } = self {
            model.zero_grad();
        }
    }
}
