//! The minibatch training loop.
//!
//! ```text
//! for epoch in done..epochs:
//!     for (x, y) in batches(train, shuffled by (seed, epoch)):
//!         η = schedule(step / total_steps)
//!         ŷ = model(x);  L = loss(ŷ, y)                   (stop if L is not finite)
//!         backward(∂L/∂ŷ)  (the first layer's input gradient skipped)
//!         sgd.step(η);  discard_grad (the next backward overwrites);  step += 1
//!             (plain SGD: the layers apply the step inside backward instead)
//!         callbacks.on_batch (progress; may stop the run)
//!     evaluate on valid;  callbacks.on_epoch (checkpoint, log)
//! ```
//!
//! Everything that decides the result (weights, momentum, shuffle order, schedule position) is
//! a function of the seed and the number of steps done, so a run resumed from the state saved
//! after epoch k ends with the same bits as one that never stopped.

use std::time::Instant;

use backprop_data::{Batch, DataLoader, Normalization, Order, SharedConversion, Subset};
use backprop_layers::{Module, SgdStep};
use backprop_matmul::with_workers_awake_and;
use backprop_model::Sequential;

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
/// run now.
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
    let mut reports = Vec::new();
    // Nothing reads a step's gradients after its update, so each backward overwrites them
    // (`Module::discard_grad`) instead of adding to zeros written after the previous step:
    // the same bits, two passes over every weight gradient fewer (784-256-10 at batch 64 on
    // an Intel Xeon: 0.459-0.469 -> 0.439-0.452 s an epoch on one thread, 0.260-0.276 ->
    // 0.245-0.260 s on two).
    model.discard_grad();
    // Plain SGD (no momentum buffer to keep) is applied by the layers inside the backward pass,
    // as each gradient is computed (`Module::step_in_next_backward`): no pass over the weight
    // gradients at all (784-256-10 at batch 64 on an Intel Xeon: 0.409-0.425 -> 0.361-0.367 s
    // an epoch on one thread, 0.241-0.245 -> 0.225-0.234 s on two).
    let fused_step = sgd.momentum == 0.0 && model.can_step_in_backward();
    for epoch in state.epochs_done..config.epochs {
        let started = Instant::now();
        let step_at_start = state.step;
        let mut train_loss = Mean::default();
        let batches_of_epoch = loader.epoch(epoch as u64);
        // The other workers of the pool stay awake for the epoch: each step's products are
        // too short to wait for a sleeping worker (see `backprop_matmul::with_workers_awake`).
        // Between their shares of the products they convert the next batch, a few rows at a
        // time (`SharedConversion`): on two threads of an Intel Xeon, 784-256-256-10 at batch
        // 64 went from 0.337-0.353 to 0.323-0.340 s an epoch, 784-256-10 from 0.208-0.223 to
        // 0.197-0.205, against converting each batch in two halves at the start of its step.
        let shared = SharedConversion::new();
        let idle_work = || shared.convert_piece();
        let epoch_run = with_workers_awake_and(&idle_work, || -> Result<(), StepEnd> {
            let each_step = |batch: Batch<'_>| {
                let lr = config.schedule.lr_at(config.lr, state.step, total_steps);
                // The batch stays in the loader until this step ends: lent to the first layer,
                // not copied (`forward_lent_input`).
                let output = model.forward_lent_input(batch.x)?;
                let loss = objective.loss(output.view(), batch.y)?;
                if !loss.is_finite() {
                    return Err(StepEnd::Failed(TrainError::NonFinite {
                        epoch: epoch + 1,
                        batch: batch.index + 1,
                        value: loss,
                        lr,
                    }));
                }
                if fused_step {
                    model.step_in_next_backward(SgdStep {
                        lr,
                        weight_decay: sgd.weight_decay,
                    });
                }
                model.backward_lent_input(batch.x, objective.grad()?.view(), false)?;
                if !fused_step {
                    sgd.step(model, lr);
                    model.discard_grad();
                }
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
            batches_of_epoch.try_for_each_batch(&shared, each_step)
        });
        match epoch_run {
            Ok(()) => {}
            Err(StepEnd::Stopped) => {
                state.step = step_at_start;
                break;
            }
            Err(StepEnd::Failed(err)) => return Err(err),
        }
        let seconds = started.elapsed().as_secs_f64();
        state.epochs_done = epoch + 1;
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
    Ok(reports)
}
