//! Every layer and loss passes the f64 gradient check on random shapes, odd batch sizes
//! included, and so does a Linear-ReLU-Linear stack with each loss.

use backprop_layers::gradcheck::{self, LossObjective, Projection};
use backprop_layers::module::{ParamVisitor, ParamVisitorMut};
use backprop_layers::{CrossEntropy, Identity, LayerError, Linear, LogSoftmax, Module, Mse, Relu, Softmax};
use ndarray::{Array2, ArrayView2};
use proptest::prelude::*;
use rand::{Rng, SeedableRng};
use rand_distr::StandardNormal;

type Gen = rand_chacha::ChaCha8Rng;

/// Errors of a correct backward are ~1e-9 (see the gradcheck module docs); 1e-6 leaves room
/// for rounding and catches any real mistake (those are ~1).
const TOLERANCE: f64 = 1e-6;

fn normal(rows: usize, cols: usize, gen: &mut Gen) -> Array2<f64> {
    Array2::from_shape_simple_fn((rows, cols), || gen.sample::<f64, _>(StandardNormal))
}

/// Moves values away from the kinks at `points` (|x − k| ≥ 0.01), so that ±h never crosses one.
fn away_from(mut x: Array2<f64>, points: &[f64]) -> Array2<f64> {
    x.mapv_inplace(|v| {
        points
            .iter()
            .find(|&&k| (v - k).abs() < 0.01)
            .map_or(v, |&k| if v >= k { k + 0.01 } else { k - 0.01 })
    });
    x
}

fn linear(inp: usize, out: usize, gen: &mut Gen) -> Linear<f64> {
    Linear::from_parameters(
        normal(out, inp, gen),
        normal(1, out, gen).into_shape_with_order(out).unwrap(),
    )
    .unwrap()
}

fn assert_passes(report: gradcheck::Report, what: &str) {
    assert!(report.checked > 0, "{what}: nothing was checked");
    assert!(report.max_error() < TOLERANCE, "{what}: {report}");
}

fn projection_check(module: &mut dyn Module<f64>, x: &Array2<f64>, gen: &mut Gen) -> gradcheck::Report {
    let out = module.output_features(x.ncols()).unwrap();
    let r = normal(x.nrows(), out, gen);
    gradcheck::check(module, x, &mut Projection(r)).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(16))]

    #[test]
    fn linear_passes(batch in 1usize..9, inp in 1usize..12, out in 1usize..9, seed: u64) {
        let gen = &mut Gen::seed_from_u64(seed);
        let mut layer = linear(inp, out, gen);
        let x = normal(batch, inp, gen);
        assert_passes(projection_check(&mut layer, &x, gen), "Linear");
    }

    #[test]
    fn relu_variants_pass(batch in 1usize..9, features in 1usize..12, seed: u64) {
        let gen = &mut Gen::seed_from_u64(seed);
        let x = normal(batch, features, gen);
        let variants: Vec<(Relu<f64>, Vec<f64>)> = vec![
            (Relu::new(), vec![0.0]),
            (Relu::shifted(), vec![0.0]),
            (Relu::general(0.1, 0.4, Some(0.8)), vec![0.0, 1.2]),
        ];
        for (mut relu, kinks) in variants {
            let x = away_from(x.clone(), &kinks);
            assert_passes(projection_check(&mut relu, &x, gen), &relu.name());
        }
    }

    #[test]
    fn softmaxes_pass(batch in 1usize..7, classes in 1usize..9, seed: u64) {
        let gen = &mut Gen::seed_from_u64(seed);
        let x = normal(batch, classes, gen) * 3.0;
        assert_passes(projection_check(&mut Softmax::default(), &x, gen), "Softmax");
        assert_passes(projection_check(&mut LogSoftmax::default(), &x, gen), "LogSoftmax");
    }

    #[test]
    fn losses_pass(batch in 1usize..10, classes in 1usize..9, seed: u64) {
        let gen = &mut Gen::seed_from_u64(seed);
        let logits = normal(batch, classes, gen) * 2.0;
        let labels: Vec<usize> = (0..batch).map(|_| gen.random_range(0..classes)).collect();
        assert_passes(gradcheck::check_loss(CrossEntropy::new(), &logits, &labels[..]).unwrap(), "CrossEntropy");
        let prediction = normal(batch, 1, gen);
        let targets: Vec<f64> = (0..batch).map(|_| gen.random_range(0.0..9.0)).collect();
        assert_passes(gradcheck::check_loss(Mse::new(), &prediction, &targets[..]).unwrap(), "MSE");
    }

    #[test]
    fn a_linear_relu_linear_stack_passes_with_each_loss(batch in 1usize..8, inp in 1usize..10, hidden in 1usize..8, seed: u64) {
        let gen = &mut Gen::seed_from_u64(seed);
        let x = normal(batch, inp, gen);
        let classes = 4;
        let labels: Vec<usize> = (0..batch).map(|_| gen.random_range(0..classes)).collect();
        let mut stack = Stack(vec![Box::new(linear(inp, hidden, gen)), Box::new(Relu::new()), Box::new(linear(hidden, classes, gen))]);
        let mut ce = LossObjective { loss: CrossEntropy::new(), target: &labels[..] };
        let report = gradcheck::check(&mut stack, &x, &mut ce).unwrap();
        // Skip (rarely) draws whose hidden pre-activations sit on the ReLU kink.
        if !near_kink(&mut stack, &x) { assert_passes(report, "Linear-ReLU-Linear + CE"); }

        let targets: Vec<f64> = (0..batch).map(|i| (i % 10) as f64).collect();
        let mut stack = Stack(vec![Box::new(linear(inp, hidden, gen)), Box::new(Relu::new()), Box::new(linear(hidden, 1, gen))]);
        let mut mse = LossObjective { loss: Mse::new(), target: &targets[..] };
        let report = gradcheck::check(&mut stack, &x, &mut mse).unwrap();
        if !near_kink(&mut stack, &x) { assert_passes(report, "Linear-ReLU-Linear + MSE"); }
    }
}

/// Whether any pre-activation of the stack's ReLU is within 1e-4 of zero.
fn near_kink(stack: &mut Stack, x: &Array2<f64>) -> bool {
    let pre = stack.0[0].forward(x.view()).unwrap();
    pre.iter().any(|v| v.abs() < 1e-4)
}

/// A minimal sequential container for these tests (the real one is `backprop-model`'s).
struct Stack(Vec<Box<dyn Module<f64>>>);

impl Module<f64> for Stack {
    fn name(&self) -> String {
        "Stack".into()
    }
    fn forward(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>, LayerError> {
        let mut h = x.to_owned();
        for m in &mut self.0 {
            h = m.forward(h.view())?;
        }
        Ok(h)
    }
    fn backward(&mut self, g: ArrayView2<f64>) -> Result<Array2<f64>, LayerError> {
        let mut g = g.to_owned();
        for m in self.0.iter_mut().rev() {
            g = m.backward(g.view())?;
        }
        Ok(g)
    }
    fn output_features(&self, f: usize) -> Result<usize, LayerError> {
        self.0.iter().try_fold(f, |f, m| m.output_features(f))
    }
    fn visit_parameters(&self, f: &mut ParamVisitor<f64>) {
        for m in &self.0 {
            m.visit_parameters(f);
        }
    }
    fn visit_parameters_mut(&mut self, f: &mut ParamVisitorMut<f64>) {
        for m in &mut self.0 {
            m.visit_parameters_mut(f);
        }
    }
}

#[test]
fn a_wrong_backward_is_caught() {
    /// Linear whose backward forgets to accumulate the bias gradient: the check must fail.
    struct Broken(Linear<f64>);
    impl Module<f64> for Broken {
        fn name(&self) -> String {
            "Broken".into()
        }
        fn forward(&mut self, x: ArrayView2<f64>) -> Result<Array2<f64>, LayerError> {
            self.0.forward(x)
        }
        fn backward(&mut self, g: ArrayView2<f64>) -> Result<Array2<f64>, LayerError> {
            let r = self.0.backward(g);
            self.0.bias_grad.fill(0.0);
            r
        }
        fn output_features(&self, f: usize) -> Result<usize, LayerError> {
            self.0.output_features(f)
        }
        fn visit_parameters(&self, f: &mut ParamVisitor<f64>) {
            self.0.visit_parameters(f)
        }
        fn visit_parameters_mut(&mut self, f: &mut ParamVisitorMut<f64>) {
            self.0.visit_parameters_mut(f)
        }
    }
    let gen = &mut Gen::seed_from_u64(1);
    let mut broken = Broken(linear(3, 2, gen));
    let report = projection_check(&mut broken, &normal(4, 3, gen), gen);
    assert!(report.max_error() > 0.01, "{report}");
    assert_eq!(report.worst.unwrap().tensor, "bias");
}

#[test]
fn identity_and_the_report_text() {
    let gen = &mut Gen::seed_from_u64(2);
    let x = normal(3, 2, gen);
    let report = projection_check(&mut Identity, &x, gen);
    assert_eq!(report.checked, 6);
    assert!(report.to_string().contains("6 elements checked"));
}
