//! SGD's update, split over threads for large tensors.
//!
//! The formula is [`Sgd::step`]'s, element for element, so the result has the same bits; only
//! who computes which elements changes.

use ndarray::{ArrayView1, ArrayViewMut1};

use backprop_layers::Module;

use crate::optimizer::Sgd;

/// Parameters updated in parallel when a tensor has at least this many elements (and the step
/// runs inside a pool of more than one thread). Each element's update is independent of every
/// other, so the split cannot change a bit.
///
/// A tensor is cut into one contiguous part per thread, and the calling thread updates the
/// first: the same halves, on the same cores, as the matrix products that read the weight and
/// write its gradient (`backprop_matmul` computes a split product's first block on the calling
/// thread). Smaller parts handed out by rayon's recursive halving would put some of each half
/// on the other core, and move it between the caches every step.
const PARALLEL_UPDATE: usize = 1 << 16;

/// [`Sgd::step`] on `model`, with large tensors split into at most `threads` parts over the
/// pool's threads.
pub fn sgd_step(model: &mut dyn Module<f32>, sgd: &mut Sgd, lr: f32, threads: usize) {
    let (momentum, decay) = (sgd.momentum, sgd.weight_decay);
    model.visit_parameters_mut(&mut |name, mut value, grad| {
        let velocity = sgd.velocity_for(name, value.shape());
        match (value.as_slice_mut(), grad.as_slice()) {
            (Some(value), Some(grad)) => {
                let velocity = velocity.map(|v| v.as_slice_mut().expect("created in standard layout"));
                update_split(value, grad, velocity, lr, momentum, decay, threads);
            }
            // Not contiguous (no layer of ours does this): on this thread.
            _ => Sgd::update(value, grad.view(), velocity.map(|v| v.view_mut()), lr, momentum, decay),
        }
    });
}

/// [`Sgd::update`] on contiguous parameter, gradient and (with momentum) velocity slices, one
/// part per thread when the tensor is large.
fn update_split(
    value: &mut [f32],
    grad: &[f32],
    velocity: Option<&mut [f32]>,
    lr: f32,
    momentum: f32,
    decay: f32,
    threads: usize,
) {
    let serial = |value: &mut [f32], grad: &[f32], velocity: Option<&mut [f32]>| {
        let velocity = velocity.map(|v| ArrayViewMut1::from(v).into_dyn());
        let (value, grad) = (ArrayViewMut1::from(value).into_dyn(), ArrayView1::from(grad).into_dyn());
        Sgd::update(value, grad, velocity, lr, momentum, decay)
    };
    // Split only from inside a pool of several threads (the fit loop runs in one): from
    // outside, reaching the workers costs more than the update.
    let in_pool = rayon::current_thread_index().is_some();
    let threads = threads.min(rayon::current_num_threads());
    if value.len() < PARALLEL_UPDATE || !in_pool || threads <= 1 {
        return serial(value, grad, velocity);
    }
    use rayon::prelude::*;
    // One part per thread, in whole 64-byte lines.
    let chunk = value.len().div_ceil(threads).next_multiple_of(16);
    let chunks = value.par_chunks_mut(chunk).zip(grad.par_chunks(chunk));
    match velocity {
        None => chunks.for_each(|(value, grad)| serial(value, grad, None)),
        Some(velocity) => chunks
            .zip(velocity.par_chunks_mut(chunk))
            .for_each(|((value, grad), velocity)| serial(value, grad, Some(velocity))),
    }
}
