//! Stochastic gradient descent with momentum and weight decay, as `torch.optim.SGD`
//! (dampening 0, no Nesterov):
//!
//! ```text
//! d  = ∂L/∂θ + λ·θ                 weight decay λ
//! v  = μ·v + d                     momentum μ (v starts at 0, so the first v is d)
//! θ ← θ − η·v                      learning rate η   (μ = 0: θ ← θ − η·d)
//! ```

use std::collections::BTreeMap;

use ndarray::{ArrayD, Zip};

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

    /// One update of every parameter of `model` with learning rate `lr`.
    pub fn step(&mut self, model: &mut dyn Module<f32>, lr: f32) {
        let (momentum, decay) = (self.momentum, self.weight_decay);
        let velocity = &mut self.velocity;
        model.visit_parameters_mut(&mut |name, mut value, grad| {
            if momentum == 0.0 {
                Zip::from(&mut value)
                    .and(&grad)
                    .for_each(|p, &g| *p -= lr * (g + decay * *p));
                return;
            }
            // Look up before inserting: the key is allocated once, not on every step.
            if !velocity.contains_key(name) {
                velocity.insert(name.to_string(), ArrayD::zeros(value.raw_dim()));
            }
            let v = velocity.get_mut(name).expect("inserted above");
            Zip::from(&mut value).and(&grad).and(v).for_each(|p, &g, v| {
                *v = momentum * *v + (g + decay * *p);
                *p -= lr * *v;
            });
        });
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
