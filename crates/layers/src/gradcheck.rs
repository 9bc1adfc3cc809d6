//! Gradient checking: the analytic backward against central finite differences, in f64.
//!
//! For a module `f` and input `x`, the checked scalar is `L = Σ_ij f(x)_ij · r_ij` for a fixed
//! random `r` (so `∂L/∂f(x) = r` is what `backward` receives), or a loss of `f(x)` against
//! targets. Each parameter element θ and each input element is perturbed by ±h:
//!
//! ```text
//! numeric  = ( L(θ + h) − L(θ − h) ) / 2h          (error O(h²) plus rounding ε·|L|/h)
//! error    = |analytic − numeric| / max(1, |analytic|, |numeric|)
//! ```
//!
//! With h = 10⁻⁶ in f64 a correct backward gives errors near 10⁻⁹; a wrong one (a missing
//! transpose, a forgotten 1/B) gives errors near 1. Inputs must not sit within h of a kink
//! (ReLU at 0): the check would measure the kink, not the backward.

use ndarray::{Array2, ArrayView2};

use crate::error::Result;
use crate::loss::Loss;
use crate::module::{Module, ModuleExt};

/// What the scalar `L` is, as a function of the module's output.
pub trait Objective {
    fn value(&mut self, output: ArrayView2<f64>) -> Result<f64>;
    /// `∂L/∂output` at the last `value`.
    fn grad(&mut self) -> Result<Array2<f64>>;
}

/// `L = Σ output ⊙ weights`.
pub struct Projection(pub Array2<f64>);

impl Objective for Projection {
    fn value(&mut self, output: ArrayView2<f64>) -> Result<f64> {
        Ok((&output * &self.0).sum())
    }
    fn grad(&mut self) -> Result<Array2<f64>> {
        Ok(self.0.clone())
    }
}

/// `L = loss(output, target)`.
pub struct LossObjective<'t, L: Loss<f64>> {
    pub loss: L,
    pub target: &'t L::Target,
}

impl<L: Loss<f64>> Objective for LossObjective<'_, L> {
    fn value(&mut self, output: ArrayView2<f64>) -> Result<f64> {
        self.loss.forward(output, self.target)
    }
    fn grad(&mut self) -> Result<Array2<f64>> {
        self.loss.backward()
    }
}

/// One compared element.
#[derive(Clone, Debug, PartialEq)]
pub struct Comparison {
    /// `input` or the parameter's name.
    pub tensor: String,
    /// Flat index in the tensor (row-major).
    pub index: usize,
    pub analytic: f64,
    pub numeric: f64,
    pub error: f64,
}

/// The result of a check.
#[derive(Clone, Debug, Default)]
pub struct Report {
    /// Elements compared.
    pub checked: usize,
    /// The worst element.
    pub worst: Option<Comparison>,
}

impl Report {
    /// The worst error (0 when nothing was compared).
    pub fn max_error(&self) -> f64 {
        self.worst.as_ref().map_or(0.0, |w| w.error)
    }

    fn add(&mut self, c: Comparison) {
        self.checked += 1;
        if self.worst.as_ref().is_none_or(|w| c.error > w.error) {
            self.worst = Some(c);
        }
    }
}

impl std::fmt::Display for Report {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.worst {
            None => write!(f, "nothing to check"),
            Some(w) => write!(
                f,
                "{} elements checked; worst error {:.3e} at {}[{}]: analytic {:.9e}, numeric {:.9e}",
                self.checked, w.error, w.tensor, w.index, w.analytic, w.numeric
            ),
        }
    }
}

/// The perturbation used by [`check`].
pub const STEP: f64 = 1e-6;

fn error(a: f64, n: f64) -> f64 {
    (a - n).abs() / 1f64.max(a.abs()).max(n.abs())
}

/// Checks every parameter and input gradient of `module` at `input` for `objective`.
pub fn check<M: Module<f64> + ?Sized>(
    module: &mut M,
    input: &Array2<f64>,
    objective: &mut dyn Objective,
) -> Result<Report> {
    // Analytic gradients.
    module.zero_grad();
    let output = module.forward(input.view())?;
    objective.value(output.view())?;
    let g = objective.grad()?;
    let input_grad = module.backward(g.view())?;
    let mut analytic: Vec<(String, Vec<f64>)> = Vec::new();
    module.visit_parameters(&mut |name, _, grad| analytic.push((name.to_string(), grad.iter().copied().collect())));

    let mut report = Report::default();
    // Parameters, element by element.
    for (p, (name, grads)) in analytic.iter().enumerate() {
        for (index, &a) in grads.iter().enumerate() {
            let mut at = |delta: f64, module: &mut M| -> Result<f64> {
                nudge(module, p, index, delta);
                let out = module.forward(input.view());
                nudge(module, p, index, -delta);
                objective.value(out?.view())
            };
            let numeric = (at(STEP, module)? - at(-STEP, module)?) / (2.0 * STEP);
            report.add(Comparison {
                tensor: name.clone(),
                index,
                analytic: a,
                numeric,
                error: error(a, numeric),
            });
        }
    }
    // The input.
    let mut x = input.clone();
    for index in 0..x.len() {
        let mut at = |delta: f64| -> Result<f64> {
            let slot = &mut x.as_slice_mut().expect("standard layout")[index];
            let original = *slot;
            *slot = original + delta;
            let out = module.forward(x.view());
            x.as_slice_mut().expect("standard layout")[index] = original;
            objective.value(out?.view())
        };
        let numeric = (at(STEP)? - at(-STEP)?) / (2.0 * STEP);
        let a = input_grad.as_slice().expect("fresh array")[index];
        report.add(Comparison {
            tensor: "input".into(),
            index,
            analytic: a,
            numeric,
            error: error(a, numeric),
        });
    }
    Ok(report)
}

/// Adds `delta` to element `index` of parameter number `p`.
fn nudge<M: Module<f64> + ?Sized>(module: &mut M, p: usize, index: usize, delta: f64) {
    let mut seen = 0;
    module.visit_parameters_mut(&mut |_, mut value, _| {
        if seen == p {
            let v = value.iter_mut().nth(index).expect("index within the parameter");
            *v += delta;
        }
        seen += 1;
    });
}

/// Checks a loss on its own: `∂loss/∂prediction` against finite differences.
pub fn check_loss<L: Loss<f64>>(loss: L, prediction: &Array2<f64>, target: &L::Target) -> Result<Report> {
    check(&mut crate::Identity, prediction, &mut LossObjective { loss, target })
}
