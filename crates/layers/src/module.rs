//! The [`Module`] trait: forward on a batch, backward from the output's gradient.

use std::any::Any;

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMutD};

use crate::error::Result;
use crate::float::Float;

/// What [`Module::visit_parameters`] calls: `(name, value, gradient)`.
pub type ParamVisitor<'a, T> = dyn FnMut(&str, ArrayViewD<T>, ArrayViewD<T>) + 'a;
/// What [`Module::visit_parameters_mut`] calls: `(name, value, gradient)`, mutable.
pub type ParamVisitorMut<'a, T> = dyn FnMut(&str, ArrayViewMutD<T>, ArrayViewMutD<T>) + 'a;

/// A differentiable function of a batch `[B, in] → [B, out]`, possibly with parameters: the
/// notebook's layer classes (`Lin`, `Relu`, …), each with a `forward` and a `backward`.
///
/// **What is kept.** `forward` keeps what `backward` needs (Linear and ReLU their input, Softmax
/// its output); `backward` uses the most recent `forward`. Nothing else in a module changes
/// what a later call does.
///
/// **Gradient rule (PyTorch's).** Parameter gradients **accumulate**: each `backward` adds
/// into them (`+=`), and [`ModuleExt::zero_grad`] clears them. The input gradient returned by
/// `backward` is a fresh array each time.
///
/// A layer of your own is a few lines, written once for any [`Float`], so the same code trains
/// in f32 and is checked in f64 by [`gradcheck`](crate::gradcheck):
///
/// ```
/// use backprop_layers::{Float, LayerError, Module, Result};
/// use ndarray::{Array2, ArrayView2};
///
/// /// `y = tanh(x)`, `∂x = g·(1 − y²)`.
/// #[derive(Default)]
/// struct Tanh<T: Float> { output: Option<Array2<T>> }
///
/// impl<T: Float> Module<T> for Tanh<T> {
///     fn name(&self) -> String { "Tanh".into() }
///     fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
///         let y = x.mapv(T::tanh);
///         self.output = Some(y.clone());
///         Ok(y)
///     }
///     fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
///         let y = self.output.as_ref().ok_or(LayerError::NoForward { layer: self.name() })?;
///         Ok(&g * &y.mapv(|y| T::one() - y * y))
///     }
/// }
///
/// let mut tanh = Tanh::<f64>::default();
/// let y = tanh.forward(ndarray::array![[0.0, 1.0]].view())?;
/// let dx = tanh.backward(ndarray::array![[1.0, 1.0]].view())?;
/// assert_eq!(dx[[0, 0]], 1.0);
/// assert!((dx[[0, 1]] - (1.0 - y[[0, 1]] * y[[0, 1]])).abs() < 1e-15);
/// # Ok::<(), LayerError>(())
/// ```
///
/// The trait is `Any`, so code that knows a concrete layer (a training engine, say) can find it
/// behind a `dyn Module` with `downcast_ref`.
pub trait Module<T: Float = f32>: Any + Send {
    /// A short description for errors and summaries, e.g. `Linear(784 → 50)`.
    fn name(&self) -> String;

    /// The output for a batch `input` of shape `[B, in]`; keeps what `backward` needs.
    fn forward(&mut self, input: ArrayView2<T>) -> Result<Array2<T>>;

    /// Given `∂L/∂output` for the last `forward`, adds `∂L/∂θ` into each parameter's gradient
    /// and returns `∂L/∂input`.
    fn backward(&mut self, grad_output: ArrayView2<T>) -> Result<Array2<T>>;

    /// Output features for `input_features` inputs (an error if the layer cannot take them).
    /// The default keeps the width, as elementwise layers do.
    fn output_features(&self, input_features: usize) -> Result<usize> {
        Ok(input_features)
    }

    /// Calls `f(name, value, grad)` for each parameter, in a fixed order. The default has none.
    fn visit_parameters(&self, _f: &mut ParamVisitor<T>) {}

    /// Calls `f(name, value, grad)` for each parameter, mutably, in the same order.
    fn visit_parameters_mut(&mut self, _f: &mut ParamVisitorMut<T>) {}
}

/// What every [`Module`] can do through its parameters; provided for all of them, never
/// implemented by hand.
pub trait ModuleExt<T: Float>: Module<T> {
    /// Sets every parameter gradient to zero (PyTorch's `zero_grad`).
    fn zero_grad(&mut self) {
        self.visit_parameters_mut(&mut |_, _, mut grad| grad.fill(T::zero()));
    }

    /// Number of scalar parameters.
    fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.visit_parameters(&mut |_, value, _| count += value.len());
        count
    }
}

impl<T: Float, M: Module<T> + ?Sized> ModuleExt<T> for M {}

/// `y = x`. Useful as a placeholder and for checking a loss on its own.
#[derive(Clone, Debug, Default)]
pub struct Identity;

impl<T: Float> Module<T> for Identity {
    fn name(&self) -> String {
        "Identity".into()
    }
    fn forward(&mut self, input: ArrayView2<T>) -> Result<Array2<T>> {
        Ok(input.to_owned())
    }
    fn backward(&mut self, grad_output: ArrayView2<T>) -> Result<Array2<T>> {
        Ok(grad_output.to_owned())
    }
}

/// Copies `src` into `buffer`, reusing its allocation when the shape is unchanged.
pub(crate) fn keep<T: Float>(buffer: &mut Option<Array2<T>>, src: ArrayView2<T>) {
    match buffer {
        Some(b) if b.dim() == src.dim() => b.assign(&src),
        _ => *buffer = Some(src.as_standard_layout().into_owned()),
    }
}
