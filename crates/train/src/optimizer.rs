//! Stochastic gradient descent with momentum and weight decay, as `torch.optim.SGD`
//! (dampening 0, no Nesterov):
//!
//! ```text
//! d  = ∂L/∂θ + λ·θ                 weight decay λ
//! v  = μ·v + d                     momentum μ (v starts at 0, so the first v is d)
//! θ ← θ − η·v                      learning rate η   (μ = 0: θ ← θ − η·d)
//! ```

use std::collections::BTreeMap;

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn, Zip};

use backprop_layers::Module;

/// SGD and its momentum buffers, one per parameter, by parameter name.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Sgd {
    pub momentum: f32,
    pub weight_decay: f32,
    velocity: BTreeMap<String, ArrayD<f32>>,
}

impl Sgd {
    pub fn new(momentum: f32, weight_decay: f32) -> Self {
        Sgd {
            momentum,
            weight_decay,
            velocity: BTreeMap::new(),
        }
    }

    /// One update of every parameter of `model` with learning rate `lr`. The gradients are
    /// left as they are (as `torch.optim.SGD.step`): a training loop then calls `zero_grad`.
    pub fn step(&mut self, model: &mut dyn Module<f32>, lr: f32) {
        let (momentum, decay) = (self.momentum, self.weight_decay);
        model.visit_parameters_mut(&mut |name, value, grad| {
            let velocity = self.velocity_for(name, value.shape()).map(|v| v.view_mut());
            Sgd::update(value, grad.view(), velocity, lr, momentum, decay);
        });
    }

    /// The formulas above on one parameter (or a part of one), element by element.
    pub(crate) fn update(
        value: ArrayViewMutD<f32>,
        grad: ArrayViewD<f32>,
        velocity: Option<ArrayViewMutD<f32>>,
        lr: f32,
        momentum: f32,
        decay: f32,
    ) {
        match velocity {
            None => Zip::from(value).and(grad).for_each(|p, &g| *p -= lr * (g + decay * *p)),
            Some(v) => Zip::from(value).and(grad).and(v).for_each(|p, &g, v| {
                *v = momentum * *v + (g + decay * *p);
                *p -= lr * *v;
            }),
        }
    }

    /// The momentum buffer of parameter `name`, created as zeros on first use; `None` without
    /// momentum.
    pub(crate) fn velocity_for(&mut self, name: &str, shape: &[usize]) -> Option<&mut ArrayD<f32>> {
        if self.momentum == 0.0 {
            return None;
        }
        // Look up before inserting: the key is allocated once, not on every step.
        if !self.velocity.contains_key(name) {
            self.velocity.insert(name.to_string(), ArrayD::zeros(IxDyn(shape)));
        }
        self.velocity.get_mut(name)
    }

    /// The momentum buffers (empty without momentum or before the first step).
    pub fn state(&self) -> &BTreeMap<String, ArrayD<f32>> {
        &self.velocity
    }

    /// Restores momentum buffers saved from [`Sgd::state`].
    pub fn load_state(&mut self, velocity: BTreeMap<String, ArrayD<f32>>) {
        self.velocity = velocity;
    }
}
