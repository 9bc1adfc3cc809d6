//! The two floors held to each other: `fit` on the engine (a model of the crate's own layers)
//! against `fit` on the lesson's plain path (the same model, each layer wrapped so that the
//! engine does not recognize it), step by step for each optimizer setting; and a layer defined
//! here, which only the plain path can run, training through `fit`.

use backprop_data::{Normalization, Subset};
use backprop_init::{rng, Init};
use backprop_layers::gradcheck::{self, Projection};
use backprop_layers::module::{ParamVisitor, ParamVisitorMut};
use backprop_layers::{Float, LayerError, Linear, Module, Relu, Result};
use backprop_model::{mlp, Sequential};
use backprop_train::engine::Network;
use backprop_train::{fit, FitConfig, Schedule, Sgd, Task, TrainState};
use ndarray::{Array2, ArrayView2};
use rand::{Rng, SeedableRng};

/// A module the engine does not know: it forwards everything to the layer inside, so the
/// numbers are the layer's own, computed on the lesson's path.
struct Wrapped<M>(M);

impl<M: Module<f32>> Module<f32> for Wrapped<M> {
    fn name(&self) -> String {
        self.0.name()
    }
    fn forward(&mut self, x: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.0.forward(x)
    }
    fn backward(&mut self, g: ArrayView2<f32>) -> Result<Array2<f32>> {
        self.0.backward(g)
    }
    fn output_features(&self, f: usize) -> Result<usize> {
        self.0.output_features(f)
    }
    fn visit_parameters(&self, f: &mut ParamVisitor<f32>) {
        self.0.visit_parameters(f)
    }
    fn visit_parameters_mut(&mut self, f: &mut ParamVisitorMut<f32>) {
        self.0.visit_parameters_mut(f)
    }
}

/// `mlp(sizes)` with every layer wrapped: the same parameters, on the plain path.
fn plain_mlp(sizes: &[usize], seed: u64) -> Sequential<f32> {
    let mut gen = rng(seed);
    let mut model = Sequential::new();
    for (i, pair) in sizes.windows(2).enumerate() {
        if i > 0 {
            model.push(Wrapped(Relu::new()));
        }
        model.push(Wrapped(Linear::new(pair[0], pair[1], Init::KAIMING_RELU, &mut gen)));
    }
    model
}

/// `rows` random 28×28 "images" with random labels, and an affine map for them.
fn synthetic(rows: usize) -> (Subset, Normalization) {
    let mut gen = rand_chacha::ChaCha8Rng::seed_from_u64(11);
    let subset = Subset {
        name: "synthetic",
        rows: 28,
        cols: 28,
        pixels: (0..rows * 784).map(|_| gen.random::<u8>()).collect(),
        labels: (0..rows).map(|_| gen.random_range(0..10u8)).collect(),
    };
    let norm = Normalization {
        scale: 255.0,
        mean: 0.5,
        std: 0.29,
    };
    (subset, norm)
}

fn values(model: &Sequential<f32>, sgd: &Sgd) -> Vec<(String, Vec<f32>)> {
    let mut out = Vec::new();
    model.visit_parameters(&mut |name, value, grad| {
        out.push((name.to_string(), value.iter().copied().collect()));
        out.push((format!("{name}.grad"), grad.iter().copied().collect()));
    });
    for (name, v) in sgd.state() {
        out.push((format!("{name}.velocity"), v.iter().copied().collect()));
    }
    out
}

/// Trains the engine's model and the plain one side by side, one epoch at a time, and compares
/// every tensor (and the losses) after every epoch with `compare`.
fn side_by_side(config: FitConfig, rows: usize, compare: impl Fn(&str, &[f32], &[f32])) {
    let (train, norm) = synthetic(rows);
    let sizes = [784, 64, 32, 10];
    let mut fast = mlp(&sizes, Init::KAIMING_RELU, &mut rng(5));
    let mut plain = plain_mlp(&sizes, 5);
    assert!(Network::plan(&fast).is_some() && Network::plan(&plain).is_none());
    let (mut fast_sgd, mut plain_sgd) = (
        Sgd::new(config.momentum, config.weight_decay),
        Sgd::new(config.momentum, config.weight_decay),
    );
    let (mut fast_state, mut plain_state) = (TrainState::default(), TrainState::default());
    for epochs in 1..=config.epochs {
        let config = FitConfig {
            epochs,
            ..config.clone()
        };
        let fast_reports = fit(
            &mut fast,
            &mut fast_sgd,
            &mut fast_state,
            &train,
            Some(&train),
            &norm,
            &config,
            &mut (),
        )
        .unwrap();
        let plain_reports = fit(
            &mut plain,
            &mut plain_sgd,
            &mut plain_state,
            &train,
            Some(&train),
            &norm,
            &config,
            &mut (),
        )
        .unwrap();
        assert_eq!(fast_state, plain_state);
        let (f, p) = (values(&fast, &fast_sgd), values(&plain, &plain_sgd));
        assert_eq!(f.len(), p.len());
        for ((name, a), (_, b)) in f.iter().zip(&p) {
            compare(&format!("epoch {epochs} {name}"), a, b);
        }
        let (fr, pr) = (&fast_reports[0], &plain_reports[0]);
        compare("train loss", &[fr.train_loss as f32], &[pr.train_loss as f32]);
        let (fv, pv) = (fr.valid.as_ref().unwrap(), pr.valid.as_ref().unwrap());
        compare("valid loss", &[fv.loss as f32], &[pv.loss as f32]);
        assert_eq!(fv.confusion, pv.confusion);
    }
}

fn bit_for_bit(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}");
    for (&a, &b) in a.iter().zip(b) {
        assert_eq!(a.to_bits(), b.to_bits(), "{what}: engine {a} vs plain {b}");
    }
}

/// Within 1e-6 relative to the tensor's scale: `max |a − b| ≤ 1e-6 · max |b|`. (Per element it
/// would not be a fair measure: a weight near zero differs by the rounding of updates made at the
/// scale of the whole tensor, a few ulps of its largest values, not of its own.)
fn relative(what: &str, a: &[f32], b: &[f32]) {
    assert_eq!(a.len(), b.len(), "{what}");
    let scale = b.iter().fold(0f32, |m, v| m.max(v.abs()));
    let worst = a.iter().zip(b).fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        worst <= 1e-6 * scale,
        "{what}: max difference {worst:e} against a scale of {scale:e}"
    );
}

fn config(batch_size: usize, momentum: f32, weight_decay: f32) -> FitConfig {
    FitConfig {
        epochs: 3,
        batch_size,
        lr: 0.05,
        schedule: Schedule::OneCycle,
        momentum,
        weight_decay,
        seed: 3,
        task: Task::Classification,
    }
}

#[test]
fn plain_sgd_fused_into_the_product_gives_the_lessons_bits() {
    // Batch 64: each weight-gradient product adds the batch in one panel, so
    // W + (−lr)·(gᵀ·x) rounds as the lesson's ∂W = gᵀ·x, then W − lr·∂W.
    side_by_side(config(64, 0.0, 0.0), 640, bit_for_bit);
}

#[test]
fn momentum_sgd_on_the_engine_gives_the_lessons_bits() {
    for weight_decay in [0.0, 1e-3] {
        side_by_side(config(64, 0.9, weight_decay), 640, bit_for_bit);
    }
}

#[test]
fn fused_weight_decay_and_long_batches_agree_to_rounding() {
    // (1 − lr·λ)·W − lr·gᵀ·x rounds otherwise than W − lr·(gᵀ·x + λ·W).
    side_by_side(config(64, 0.0, 1e-3), 640, relative);
    // A batch of 1024 is added to W a panel of rows at a time.
    side_by_side(config(1024, 0.0, 0.0), 2048, relative);
}

/// `y = tanh(x)`, `∂x = g·(1 − y²)`: a layer of the user's, written once for any float.
#[derive(Default)]
struct Tanh<T: Float> {
    output: Option<Array2<T>>,
}

impl<T: Float> Module<T> for Tanh<T> {
    fn name(&self) -> String {
        "Tanh".into()
    }
    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let y = x.mapv(T::tanh);
        self.output = Some(y.clone());
        Ok(y)
    }
    fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
        let y = self
            .output
            .as_ref()
            .ok_or(LayerError::NoForward { layer: self.name() })?;
        Ok(&g * &y.mapv(|y| T::one() - y * y))
    }
}

#[test]
fn a_layer_of_the_users_passes_gradcheck_and_trains_through_fit() {
    // The same impl, in f64, against finite differences.
    let mut gen = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let x = Array2::from_shape_simple_fn((4, 3), || gen.random_range(-2.0f64..2.0));
    let weights = Array2::from_shape_simple_fn((4, 3), || gen.random_range(-1.0f64..1.0));
    let report = gradcheck::check(&mut Tanh::<f64>::default(), &x, &mut Projection(weights)).unwrap();
    assert!(report.max_error() < 1e-6, "{report}");

    // And in f32, inside a Sequential, through `fit` (the plain path, since the engine does not
    // know Tanh), on one and two threads with the same bits.
    let (train, norm) = synthetic(640);
    let run = |threads: usize| {
        let mut gen = rng(4);
        let mut model = Sequential::new();
        model
            .push(Linear::new(784, 32, Init::XAVIER, &mut gen))
            .push(Tanh::<f32>::default())
            .push(Linear::new(32, 10, Init::XAVIER, &mut gen));
        assert!(Network::plan(&model).is_none());
        let mut sgd = Sgd::new(0.9, 0.0);
        let config = FitConfig {
            epochs: 4,
            lr: 0.1,
            schedule: Schedule::Constant,
            ..config(64, 0.9, 0.0)
        };
        let pool = rayon::ThreadPoolBuilder::new().num_threads(threads).build().unwrap();
        let reports = pool
            .install(|| {
                fit(
                    &mut model,
                    &mut sgd,
                    &mut TrainState::default(),
                    &train,
                    Some(&train),
                    &norm,
                    &config,
                    &mut (),
                )
            })
            .unwrap();
        (reports, values(&model, &sgd))
    };
    let (reports, one_thread) = run(1);
    assert_eq!(one_thread, run(2).1);
    // Random labels: the network can only memorize them, which it starts to do.
    let (first, last) = (reports[0].train_loss, reports[3].train_loss);
    assert!(first > 2.0 && last < first - 0.2, "train loss {first} -> {last}");
}
