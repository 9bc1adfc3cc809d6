//! SGD against PyTorch's numbers, the split update against the serial one, the fit loop's bits
//! across thread counts, and a run stopped mid-epoch and resumed.

use backprop_data::{Normalization, Subset};
use backprop_init::{rng, Init};
use backprop_layers::{Linear, Module};
use backprop_model::{mlp, Sequential};
use backprop_train::engine;
use backprop_train::{
    fit, BatchInfo, Callbacks, EpochReport, FitConfig, Flow, Schedule, Sgd, Task, TrainError, TrainState,
};
use ndarray::{array, Array2, ArrayD};
use rand::Rng;

fn pool(threads: usize) -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap()
}

/// Every parameter, gradient and momentum buffer as raw bits, by name.
fn bits(model: &Sequential<f32>, sgd: &Sgd) -> Vec<(String, Vec<u32>)> {
    let mut out = Vec::new();
    model.visit_parameters(&mut |name, value, grad| {
        out.push((name.to_string(), value.iter().map(|v| v.to_bits()).collect()));
        out.push((format!("{name}.grad"), grad.iter().map(|v| v.to_bits()).collect()));
    });
    for (name, v) in sgd.state() {
        out.push((format!("{name}.velocity"), v.iter().map(|v| v.to_bits()).collect()));
    }
    out
}

#[test]
fn momentum_and_weight_decay_match_torch_optim_sgd() {
    // torch.optim.SGD(lr=0.5, momentum=0.9, weight_decay=0.1) on nn.Linear(2, 1) with weight
    // [[1, -2]], bias [0.5] and the gradients below set before each of two steps (PyTorch 2.15).
    let mut layer = Linear::from_parameters(array![[1.0f32, -2.0]], array![0.5f32]).unwrap();
    let mut sgd = Sgd::new(0.9, 0.1);
    // PyTorch's f32 results, as it prints them (in f64).
    let expected: [([f64; 2], f64, [f64; 2]); 2] = [
        (
            [0.8999999761581421, -2.0],
            0.32499998807907104,
            [0.20000000298023224, 0.0],
        ),
        (
            [0.7149999737739563, -2.0],
            0.0012499690055847168,
            [0.3700000047683716, 0.0],
        ),
    ];
    for (weight, bias, velocity) in expected {
        let (weight, bias, velocity) = (weight.map(|v| v as f32), bias as f32, velocity.map(|v| v as f32));
        layer.weight_grad.assign(&array![[0.1f32, 0.2]]);
        layer.bias_grad.assign(&array![0.3f32]);
        sgd.step(&mut layer, 0.5);
        assert_eq!(layer.weight.as_slice().unwrap(), &weight);
        assert_eq!(layer.bias[0], bias);
        assert_eq!(sgd.state()["weight"].as_slice().unwrap(), &velocity);
        // `step` leaves the gradients alone, as PyTorch does.
        assert_eq!(layer.bias_grad[0], 0.3);
    }
}

/// A model whose gradients hold one backward pass of a random batch (the same model and
/// gradients on every call).
fn model_with_gradients(sizes: &[usize]) -> Sequential<f32> {
    let mut gen = rng(7);
    let mut model = mlp(sizes, Init::KAIMING_RELU, &mut gen);
    let x = Array2::from_shape_fn((32, sizes[0]), |_| gen.random_range(-1.0f32..1.0));
    let out = model.forward(x.view()).unwrap();
    let g = out.mapv(|v| v * 0.01 + 0.001);
    model.backward(g.view()).unwrap();
    model
}

#[test]
fn the_engines_split_update_gives_the_bits_of_the_lessons_step() {
    let run = |threads: usize, split: bool| {
        let mut model = model_with_gradients(&[784, 300, 10]);
        let mut sgd = Sgd::new(0.9, 5e-4);
        pool(threads).install(|| {
            for _ in 0..4 {
                if split {
                    engine::update::sgd_step(&mut model, &mut sgd, 0.05, threads);
                } else {
                    sgd.step(&mut model, 0.05);
                }
            }
        });
        bits(&model, &sgd)
    };
    let serial = run(1, false);
    assert_eq!(serial, run(2, false));
    assert_eq!(serial, run(1, true));
    assert_eq!(serial, run(2, true));
    // And the update did something.
    assert_ne!(
        serial,
        bits(&model_with_gradients(&[784, 300, 10]), &Sgd::new(0.9, 5e-4))
    );
}

/// 640 random 28×28 "images" with random labels.
fn synthetic(rows: usize) -> Subset {
    let mut gen = rng(11);
    Subset {
        name: "synthetic",
        rows: 28,
        cols: 28,
        pixels: (0..rows * 784).map(|_| gen.random::<u8>()).collect(),
        labels: (0..rows).map(|_| gen.random_range(0..10u8)).collect(),
    }
}

/// An affine map for [`synthetic`] pixels.
fn synthetic_normalization() -> Normalization {
    Normalization {
        scale: 255.0,
        mean: 0.5,
        std: 0.29,
    }
}

/// Batch 64, SGD with momentum and weight decay on a one-cycle schedule.
fn config(epochs: usize, seed: u64) -> FitConfig {
    FitConfig {
        epochs,
        batch_size: 64,
        lr: 0.05,
        schedule: Schedule::OneCycle,
        momentum: 0.9,
        weight_decay: 1e-4,
        seed,
        task: Task::Classification,
    }
}

#[test]
fn fit_gives_the_same_bits_on_one_and_two_threads() {
    // With momentum (the optimizer's step after backward) and without (the engine fuses the
    // step into the weight-gradient product).
    for momentum in [0.9, 0.0] {
        fit_on_one_and_two_threads(FitConfig {
            momentum,
            ..config(2, 3)
        });
    }
}

fn fit_on_one_and_two_threads(config: FitConfig) {
    let train = synthetic(640);
    let norm = synthetic_normalization();
    let run = |threads: usize| {
        // 784-300-10 at batch 64: the first layer's products (15M multiply-adds) and its
        // update (235k weights) are both split across threads when there are two.
        let mut model = mlp(&[784, 300, 10], Init::KAIMING_RELU, &mut rng(1));
        let mut sgd = Sgd::new(config.momentum, config.weight_decay);
        let reports = pool(threads)
            .install(|| {
                fit(
                    &mut model,
                    &mut sgd,
                    &mut TrainState::default(),
                    &train,
                    None,
                    &norm,
                    &config,
                    &mut (),
                )
            })
            .unwrap();
        assert!(reports.iter().all(|r| r.train_loss.is_finite()));
        bits(&model, &sgd)
    };
    assert_eq!(run(1), run(2), "momentum {}", config.momentum);
}

/// The parameter values of `model`, in visiting order.
fn parameters(model: &Sequential<f32>) -> Vec<ArrayD<f32>> {
    let mut out = Vec::new();
    model.visit_parameters(&mut |_, value, _| out.push(value.to_owned()));
    out
}

/// Stops the run at one batch, and keeps what a checkpoint after each epoch would hold.
struct StopAt {
    epoch: usize,
    batch: usize,
    batches_seen: usize,
    saved: Option<(Vec<ArrayD<f32>>, Sgd, TrainState)>,
}

impl Callbacks for StopAt {
    fn on_batch(&mut self, info: &BatchInfo) -> Flow {
        self.batches_seen += 1;
        if (info.epoch, info.batch) == (self.epoch, self.batch) {
            Flow::Stop
        } else {
            Flow::Continue
        }
    }

    fn on_epoch(
        &mut self,
        _report: &EpochReport,
        model: &Sequential<f32>,
        sgd: &Sgd,
        state: &TrainState,
    ) -> Result<Flow, TrainError> {
        self.saved = Some((parameters(model), sgd.clone(), *state));
        Ok(Flow::Continue)
    }
}

#[test]
fn a_run_stopped_mid_epoch_resumes_from_its_last_epoch_to_the_same_bits() {
    // With momentum, and without (the engine's SGD step fused into the product).
    for momentum in [0.9, 0.0] {
        stop_and_resume(FitConfig {
            momentum,
            ..config(3, 5)
        });
    }
}

fn stop_and_resume(config: FitConfig) {
    let train = synthetic(640); // 10 batches of 64
    let norm = synthetic_normalization();
    let arch = [784, 32, 10];
    let new_model = || mlp(&arch, Init::KAIMING_RELU, &mut rng(2));

    // Never stopped.
    let mut straight = new_model();
    let mut straight_sgd = Sgd::new(config.momentum, config.weight_decay);
    fit(
        &mut straight,
        &mut straight_sgd,
        &mut TrainState::default(),
        &train,
        None,
        &norm,
        &config,
        &mut (),
    )
    .unwrap();

    // Stopped by the callback at batch 4 of epoch 2.
    let mut model = new_model();
    let mut sgd = Sgd::new(config.momentum, config.weight_decay);
    let mut state = TrainState::default();
    let mut stop = StopAt {
        epoch: 2,
        batch: 4,
        batches_seen: 0,
        saved: None,
    };
    let reports = fit(
        &mut model, &mut sgd, &mut state, &train, None, &norm, &config, &mut stop,
    )
    .unwrap();
    assert_eq!(reports.len(), 1, "only the whole epoch is reported");
    assert_eq!(stop.batches_seen, 14);
    assert_eq!(
        state,
        TrainState {
            epochs_done: 1,
            step: 10
        },
        "the state of the last whole epoch"
    );
    let (saved_parameters, saved_sgd, saved_state) = stop.saved.unwrap();
    assert_eq!(saved_state, state);
    assert_ne!(
        parameters(&model),
        saved_parameters,
        "the model keeps the 4 batches since"
    );

    // Resumed from what epoch 1's checkpoint held.
    let mut resumed = new_model();
    let mut saved = saved_parameters.into_iter();
    resumed.visit_parameters_mut(&mut |_, mut value, _| value.assign(&saved.next().unwrap()));
    let mut resumed_sgd = saved_sgd;
    let mut resumed_state = saved_state;
    fit(
        &mut resumed,
        &mut resumed_sgd,
        &mut resumed_state,
        &train,
        None,
        &norm,
        &config,
        &mut (),
    )
    .unwrap();
    assert_eq!(
        resumed_state,
        TrainState {
            epochs_done: 3,
            step: 30
        }
    );
    assert_eq!(bits(&resumed, &resumed_sgd), bits(&straight, &straight_sgd));
}
