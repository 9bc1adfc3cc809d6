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

    /// One update of every parameter of `model` with learning rate `lr`. The gradients are
    /// left as they are (as `torch.optim.SGD.step`): a training loop then calls [`Module::discard_grad`] (the fit loop does), or
    /// [`Module::zero_grad`] for gradients that read as zeros until the next backward.
    pub fn step(&mut self, model: &mut dyn Module<f32>, lr: f32) {
        let (momentum, decay) = (self.momentum, self.weight_decay);
        let velocity = &mut self.velocity;
        model.visit_parameters_mut(&mut |name, mut value, grad| {
            let velocity = if momentum == 0.0 {
                None
            } else {
                // Look up before inserting: the key is allocated once, not on every step.
                if !velocity.contains_key(name) {
                    velocity.insert(name.to_string(), ArrayD::zeros(value.raw_dim()));
                }
                Some(velocity.get_mut(name).expect("inserted above"))
            };
            match (value.as_slice_mut(), grad.as_slice()) {
                (Some(value), Some(grad)) => {
                    let velocity = velocity.map(|v| v.as_slice_mut().expect("created in standard layout"));
                    update_slices(value, grad, velocity, lr, momentum, decay);
                }
                // Not contiguous (no layer of ours does this): the same formulas, element by element.
                _ => {
                    let mut scratch = ArrayD::zeros(value.raw_dim());
                    let v = velocity.unwrap_or(&mut scratch);
                    Zip::from(&mut value)
                        .and(&grad)
                        .and(v)
                        .for_each(|p, &g, v| update_one(p, g, v, lr, momentum, decay));
                }
            }
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

/// Parameters updated in parallel when a tensor has at least this many elements (and the step
/// runs inside a pool of more than one thread). Each element's update is independent of every other, so the
/// split cannot change a bit.
///
/// A tensor is cut into one contiguous part per thread, and the calling thread updates the
/// first: the same halves, on the same cores, as the matrix products that read the weight and
/// write its gradient (`backprop_matmul` computes a split product's first block on the calling
/// thread). Parts of 16K elements, handed out by rayon's recursive halving, put some of each
/// half on the other core: on two threads of an Intel Xeon, 784-256-10 at batch 64 took
/// 0.245-0.292 s an epoch that way and 0.232-0.242 s this way, 784-256-256-10 0.420-0.446 s and
/// 0.374-0.379 s.
const PARALLEL_UPDATE: usize = 1 << 16;

/// The update of contiguous parameter, gradient and (with momentum) velocity slices.
fn update_slices(value: &mut [f32], grad: &[f32], velocity: Option<&mut [f32]>, lr: f32, momentum: f32, decay: f32) {
    // One loop per case, each without branches inside, so that each vectorizes.
    let serial = |value: &mut [f32], grad: &[f32], velocity: Option<&mut [f32]>| match velocity {
        None => {
            for (p, g) in value.iter_mut().zip(grad) {
                *p -= lr * (*g + decay * *p);
            }
        }
        Some(velocity) => {
            for ((p, g), v) in value.iter_mut().zip(grad).zip(velocity.iter_mut()) {
                *v = momentum * *v + (*g + decay * *p);
                *p -= lr * *v;
            }
        }
    };
    // Split only from inside a pool of several threads (the fit loop runs in one): from
    // outside, reaching the workers costs more than the update.
    let in_pool = rayon::current_thread_index().is_some();
    if value.len() < PARALLEL_UPDATE || !in_pool || rayon::current_num_threads() == 1 {
        return serial(value, grad, velocity);
    }
    use rayon::prelude::*;
    // One part per thread, in whole 64-byte lines.
    let chunk = value.len().div_ceil(rayon::current_num_threads()).next_multiple_of(16);
    let chunks = value.par_chunks_mut(chunk).zip(grad.par_chunks(chunk));
    match velocity {
        None => chunks.for_each(|(value, grad)| serial(value, grad, None)),
        Some(velocity) => chunks
            .zip(velocity.par_chunks_mut(chunk))
            .for_each(|((value, grad), velocity)| serial(value, grad, Some(velocity))),
    }
}

/// One element, as [`update_slices`] does it (for tensors that are not contiguous).
fn update_one(p: &mut f32, g: f32, v: &mut f32, lr: f32, momentum: f32, decay: f32) {
    if momentum == 0.0 {
        *p -= lr * (g + decay * *p);
    } else {
        *v = momentum * *v + (g + decay * *p);
        *p -= lr * *v;
    }
}
