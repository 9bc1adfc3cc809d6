//! The [`Module`] trait: forward on a batch, backward from the output's gradient.

use ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMutD};

use crate::error::Result;
use crate::float::Float;

/// What [`Module::visit_parameters`] calls: `(name, value, gradient)`.
pub type ParamVisitor<'a, T> = dyn FnMut(&str, ArrayViewD<T>, ArrayViewD<T>) + 'a;
/// What [`Module::visit_parameters_mut`] calls: `(name, value, gradient)`, mutable.
pub type ParamVisitorMut<'a, T> = dyn FnMut(&str, ArrayViewMutD<T>, ArrayViewMutD<T>) + 'a;

/// A differentiable function of a batch `[B, in] → [B, out]`, possibly with parameters.
///
/// **What is kept.** `forward` keeps what `backward` needs (Linear its input, ReLU its input,
/// Softmax its output); `backward` uses the most recent `forward`.
///
/// **Gradient rule (PyTorch's).** Parameter gradients **accumulate**: each `backward` adds
/// into them (`+=`), and [`Module::zero_grad`] clears them. The input gradient returned by
/// `backward` is a fresh array each time (nothing accumulates there).
pub trait Module<T: Float = f32>: Send {
    /// A short description for errors and summaries, e.g. `Linear(784 → 50)`.
    fn name(&self) -> String;

    /// The output for a batch `input` of shape `[B, in]`.
    fn forward(&mut self, input: ArrayView2<T>) -> Result<Array2<T>>;

    /// Given `∂L/∂output`, adds `∂L/∂θ` into each parameter's gradient and returns `∂L/∂input`
    /// when `input_grad` is true. The first layer of a network never needs its input gradient;
    /// passing `false` skips that product (PyTorch skips it too).
    fn backward(&mut self, grad_output: ArrayView2<T>, input_grad: bool) -> Result<Option<Array2<T>>>;

    /// [`forward`](Module::forward) for an input the caller gives away: a module that keeps its
    /// input for `backward` keeps this array as it is instead of copying it. Same result.
    /// (Sequential hands each module's output to the next this way.)
    fn forward_owned(&mut self, input: Array2<T>) -> Result<Array2<T>> {
        self.forward(input.view())
    }

    /// [`forward`](Module::forward) when the caller will lend the same `input` again to
    /// [`backward_lent_input`](Module::backward_lent_input): a module that would keep its input
    /// keeps nothing, which saves copying a large batch. Same result as `forward`.
    ///
    /// A plain `backward` after this is an error (nothing kept) for such a module. The fit loop
    /// uses this pair with the batch, which lives in the loader until the step ends.
    ///
    /// ```
    /// use backprop_layers::{Linear, Module};
    /// use ndarray::{array, Array2};
    ///
    /// let mut lin = Linear::from_parameters(array![[1.0f32, 2.0], [3.0, 4.0]], array![0.5, -0.5])?;
    /// let batch = Array2::from_elem((8, 2), 1.0f32); // a large batch: not copied into the layer
    /// let y = lin.forward_lent_input(batch.view())?;
    /// lin.backward_lent_input(batch.view(), Array2::ones(y.dim()).view(), false)?;
    /// assert_eq!(lin.weight_grad, array![[8.0, 8.0], [8.0, 8.0]]); // gᵀ·x
    /// assert!(lin.backward(Array2::ones(y.dim()).view(), false).is_err()); // nothing kept
    /// # Ok::<(), backprop_layers::LayerError>(())
    /// ```
    fn forward_lent_input(&mut self, input: ArrayView2<T>) -> Result<Array2<T>> {
        self.forward(input)
    }

    /// [`backward`](Module::backward) after [`forward_lent_input`](Module::forward_lent_input),
    /// given the same `input` again. The input must be the one forward saw: only its shape can
    /// be checked.
    fn backward_lent_input(
        &mut self,
        input: ArrayView2<T>,
        grad_output: ArrayView2<T>,
        input_grad: bool,
    ) -> Result<Option<Array2<T>>> {
        let _ = input;
        self.backward(grad_output, input_grad)
    }

    /// Output features for `input_features` inputs (an error if the layer cannot take them).
    fn output_features(&self, input_features: usize) -> Result<usize>;

    /// Calls `f(name, value, grad)` for each parameter, in a fixed order.
    fn visit_parameters(&self, _f: &mut ParamVisitor<T>) {}

    /// Calls `f(name, value, grad)` for each parameter, mutably, in the same order.
    fn visit_parameters_mut(&mut self, _f: &mut ParamVisitorMut<T>) {}

    /// Sets every parameter gradient to zero.
    fn zero_grad(&mut self) {
        self.visit_parameters_mut(&mut |_, _, mut grad| grad.fill(T::zero()));
    }

    /// Declares the parameter gradients no longer needed: the next `backward` may overwrite
    /// them instead of adding to them, which gives what `zero_grad` and then `backward` give
    /// without writing zeros first (a training loop's step does not read the gradients after
    /// the update). Until that `backward`, the gradients hold stale values; PyTorch's
    /// `zero_grad(set_to_none=True)` makes them `None` for the same reason.
    ///
    /// The default is [`zero_grad`](Module::zero_grad), right for any module; [`Linear`]
    /// overwrites instead.
    ///
    /// ```
    /// use backprop_layers::{Linear, Module};
    /// use ndarray::{array, Array2};
    ///
    /// let mut lin = Linear::from_parameters(array![[1.0f32, 2.0]], array![0.0])?;
    /// let x = array![[1.0f32, 1.0]];
    /// lin.forward(x.view())?;
    /// lin.backward(Array2::ones((1, 1)).view(), false)?; // ∂W = [[1, 1]]
    /// lin.discard_grad(); // the step is done with these gradients
    /// lin.forward(x.view())?;
    /// lin.backward(Array2::from_elem((1, 1), 3.0).view(), false)?;
    /// assert_eq!(lin.weight_grad, array![[3.0, 3.0]]); // overwritten, not [[4, 4]]
    /// # Ok::<(), backprop_layers::LayerError>(())
    /// ```
    ///
    /// [`Linear`]: crate::Linear
    fn discard_grad(&mut self) {
        self.zero_grad();
    }

    /// Whether [`step_in_next_backward`](Module::step_in_next_backward) is supported: true for
    /// a module without parameters (nothing to update), and for [`Linear`].
    ///
    /// [`Linear`]: crate::Linear
    fn can_step_in_backward(&self) -> bool {
        let mut has_parameters = false;
        self.visit_parameters(&mut |_, _, _| has_parameters = true);
        !has_parameters
    }

    /// Asks the next `backward` to apply `step` to the parameters as soon as their gradients
    /// are known, instead of storing the gradients for an optimizer to read: plain SGD fused
    /// into the backward pass (PyTorch shows the same technique with post-accumulate-grad
    /// hooks). For a weight that saves a pass over memory, and its gradient's. The parameter
    /// gradients are then stale, as after [`discard_grad`](Module::discard_grad); any
    /// gradient accumulated before is dropped. Only for modules where
    /// [`can_step_in_backward`](Module::can_step_in_backward) holds; the default does nothing.
    fn step_in_next_backward(&mut self, _step: SgdStep<T>) {}

    /// Number of scalar parameters.
    fn parameter_count(&self) -> usize {
        let mut count = 0;
        self.visit_parameters(&mut |_, value, _| count += value.len());
        count
    }
}

/// One step of plain SGD with weight decay, `θ ← θ − lr·(∂θ + weight_decay·θ)`, as a module
/// applies it inside its backward pass ([`Module::step_in_next_backward`]).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdStep<T> {
    pub lr: T,
    pub weight_decay: T,
}

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
    fn backward(&mut self, grad_output: ArrayView2<T>, input_grad: bool) -> Result<Option<Array2<T>>> {
        Ok(input_grad.then(|| grad_output.to_owned()))
    }
    fn output_features(&self, input_features: usize) -> Result<usize> {
        Ok(input_features)
    }
}

/// Copies `src` into `buffer`, reusing its allocation when the shape is unchanged.
pub(crate) fn keep<T: Float>(buffer: &mut Option<Array2<T>>, src: ArrayView2<T>) {
    match buffer {
        Some(b) if b.dim() == src.dim() => b.assign(&src),
        _ => *buffer = Some(src.as_standard_layout().into_owned()),
    }
}
