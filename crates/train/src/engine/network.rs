//! A [`Sequential`] of `Linear` and plain `ReLU` layers, run with the engine's savings.

use std::any::Any;

use ndarray::{Array2, ArrayView2};

use backprop_layers::{add_row_sums, LayerError, Linear, Module, Relu};
use backprop_model::Sequential;

use crate::optimizer::Sgd;

/// What the backward pass does with the parameter gradients.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Update {
    /// Plain SGD fused into the products: `W ← (1 − lr·λ)·W − lr·gᵀ·x` and
    /// `b ← b − lr·(Σ_rows g + λ·b)`. The weight gradient is never stored; the bias gradient is
    /// left in `bias_grad`.
    FusedSgd { lr: f32, weight_decay: f32 },
    /// Write `∂W = gᵀ·x` and `∂b = Σ_rows g` over whatever the gradients held (β = 0: never
    /// read, never zeroed), for an optimizer to read next.
    OverwriteGradients,
}

/// One `Linear` of the model (by its index in the Sequential), and whether a plain ReLU follows
/// it.
#[derive(Clone, Copy, Debug)]
struct Layer {
    module: usize,
    relu_after: bool,
}

/// The engine's view of a model: which modules are Linear layers, and each one's output from
/// the last forward (after its ReLU), kept here rather than in the layers.
#[derive(Debug)]
pub struct Network {
    layers: Vec<Layer>,
    /// `outputs[k]`: the output of layer k (after its ReLU), `[B, out_k]`.
    outputs: Vec<Array2<f32>>,
    /// The lesson's ReLU, whose element formulas the engine applies.
    relu: Relu<f32>,
    /// The matrix products' kernel (the CPU's best).
    kernel: backprop_matmul::Kernel,
}

fn linear(model: &Sequential<f32>, index: usize) -> &Linear<f32> {
    let module: &dyn Any = model.modules()[index].as_ref();
    module.downcast_ref().expect("the network was planned from this model")
}

fn linear_mut(model: &mut Sequential<f32>, index: usize) -> &mut Linear<f32> {
    let module: &mut dyn Any = model.modules_mut()[index].as_mut();
    module.downcast_mut().expect("the network was planned from this model")
}

impl Network {
    /// The engine's plan for `model`, when it is made only of the crate's own layers: a
    /// `Linear` first, then `Linear` layers, each optionally followed by one plain `ReLU`.
    /// `None` for anything else (a layer of the user's, a GeneralReLU, a Softmax, …), which
    /// trains on the lesson's path.
    pub fn plan(model: &Sequential<f32>) -> Option<Network> {
        let mut layers: Vec<Layer> = Vec::new();
        for (index, module) in model.modules().iter().enumerate() {
            let module: &dyn Any = module.as_ref();
            if module.is::<Linear<f32>>() {
                layers.push(Layer {
                    module: index,
                    relu_after: false,
                });
            } else if module.downcast_ref::<Relu<f32>>().is_some_and(Relu::is_plain) {
                let last = layers.last_mut().filter(|l| !l.relu_after && l.module + 1 == index)?;
                last.relu_after = true;
            } else {
                return None;
            }
        }
        (!layers.is_empty()).then(|| Network {
            layers,
            outputs: Vec::new(),
            relu: Relu::new(),
            kernel: backprop_matmul::detect(),
        })
    }

    /// The forward pass on a batch `x`, the same formulas as the layers' (`y = x·Wᵀ + b`, then
    /// `max(y, 0)`); returns the model's output. Nothing of `x` is kept: [`Network::backward`]
    /// is given it again. The products are split into at most `threads` blocks (any number gives
    /// the same bits).
    pub fn forward(
        &mut self,
        model: &Sequential<f32>,
        x: ArrayView2<f32>,
        threads: usize,
    ) -> Result<ArrayView2<'_, f32>, LayerError> {
        self.outputs.clear();
        for (k, layer) in self.layers.iter().enumerate() {
            let lin = linear(model, layer.module);
            let input = if k == 0 { x.view() } else { self.outputs[k - 1].view() };
            if input.ncols() != lin.in_features() {
                return Err(LayerError::Shape {
                    layer: lin.name(),
                    what: "input",
                    expected: format!("[B, {}]", lin.in_features()),
                    got: input.shape().to_vec(),
                });
            }
            let mut y = backprop_matmul::matmul_with(self.kernel, threads, input, lin.weight.t());
            y += &lin.bias;
            if layer.relu_after {
                y.mapv_inplace(|v| self.relu.value(v));
            }
            self.outputs.push(y);
        }
        Ok(self.outputs.last().expect("at least one layer").view())
    }

    /// The backward pass after [`Network::forward`] on the same `x`, from `g = ∂L/∂output`:
    /// for each layer from the last, the ReLU's mask, then `∂x = g·W` (not for the first
    /// layer, whose input gradient nobody needs), then the parameters as `update` says.
    ///
    /// The ReLU's mask is taken from its output: for the plain ReLU, `y > 0` exactly where
    /// `x > 0`, so this is the lesson's `relu_grad`.
    pub fn backward(
        &mut self,
        model: &mut Sequential<f32>,
        x: ArrayView2<f32>,
        mut g: Array2<f32>,
        update: Update,
        threads: usize,
    ) -> Result<(), LayerError> {
        for k in (0..self.layers.len()).rev() {
            let layer = self.layers[k];
            let output = &self.outputs[k];
            if g.dim() != output.dim() {
                return Err(LayerError::Shape {
                    layer: linear(model, layer.module).name(),
                    what: "output gradient",
                    expected: format!("{:?}", output.shape()),
                    got: g.shape().to_vec(),
                });
            }
            if layer.relu_after {
                ndarray::Zip::from(&mut g)
                    .and(output)
                    .for_each(|g, &y| *g = self.relu.grad(y, *g));
            }
            let input = if k == 0 { x.view() } else { self.outputs[k - 1].view() };
            let lin = linear_mut(model, layer.module);
            // ∂x = g·W, from the weight before any update.
            let input_grad =
                (k > 0).then(|| backprop_matmul::matmul_with(self.kernel, threads, g.view(), lin.weight.view()));
            match update {
                Update::FusedSgd { lr, weight_decay } => {
                    let keep = 1.0 - lr * weight_decay;
                    backprop_matmul::gemm_with(self.kernel, threads, -lr, g.t(), input, keep, lin.weight.view_mut());
                    lin.bias_grad.fill(0.0);
                    add_row_sums(lin.bias_grad.view_mut(), g.view());
                    for (b, &d) in lin.bias.iter_mut().zip(&lin.bias_grad) {
                        *b -= lr * (d + weight_decay * *b);
                    }
                }
                Update::OverwriteGradients => {
                    backprop_matmul::gemm_with(
                        self.kernel,
                        threads,
                        1.0,
                        g.t(),
                        input,
                        0.0,
                        lin.weight_grad.view_mut(),
                    );
                    lin.bias_grad.fill(0.0);
                    add_row_sums(lin.bias_grad.view_mut(), g.view());
                }
            }
            match input_grad {
                Some(dx) => g = dx,
                None => break,
            }
        }
        Ok(())
    }

    /// One training step's update for `sgd`: fused into backward when there is no momentum
    /// buffer to keep, else gradients overwritten and then [`update::sgd_step`](super::update::sgd_step).
    pub fn step(
        &mut self,
        model: &mut Sequential<f32>,
        x: ArrayView2<f32>,
        g: Array2<f32>,
        sgd: &mut Sgd,
        lr: f32,
        threads: usize,
    ) -> Result<(), LayerError> {
        if sgd.momentum == 0.0 {
            let update = Update::FusedSgd {
                lr,
                weight_decay: sgd.weight_decay,
            };
            self.backward(model, x, g, update, threads)
        } else {
            self.backward(model, x, g, Update::OverwriteGradients, threads)?;
            super::update::sgd_step(model, sgd, lr, threads);
            Ok(())
        }
    }
}
