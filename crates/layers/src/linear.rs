//! `Linear(in, out)`: an affine map, with its weight stored as PyTorch stores it.

use ndarray::{Array1, Array2, ArrayView2};

use backprop_init::{Generator, Init};

use crate::error::{expect_shape, LayerError, Result};
use crate::float::Float;
use crate::module::{keep, Module, ParamVisitor, ParamVisitorMut, SgdStep};

/// A fully connected layer.
///
/// ```text
/// forward:   y  = x·Wᵀ + b          x: [B, in]   W: [out, in]   b: [out]   y: [B, out]
/// backward:  ∂W += gᵀ·x             g = ∂L/∂y: [B, out]
///            ∂b += Σ_rows g
///            ∂x  = g·W              (skipped when not asked for)
/// ```
///
/// `Wᵀ` and `gᵀ` are transposed *views* passed to the matrix product: nothing is copied.
/// Gradients accumulate (`+=`, PyTorch's rule) until [`zero_grad`](Module::zero_grad); after
/// [`discard_grad`](Module::discard_grad) the next backward writes `∂W = gᵀ·x` and
/// `∂b = Σ_rows g` instead (the same bits as zeroing first). After
/// [`step_in_next_backward`](Module::step_in_next_backward) the next backward updates the
/// parameters itself, with `∂W` going straight into W:
///
/// ```text
/// W ← (1 − lr·λ)·W − lr·gᵀ·x        (one product: α = −lr, β = 1 − lr·λ)
/// b ← b − lr·(Σ_rows g + λ·b)
/// ```
///
/// With λ = 0 and a small batch (tested at 64 rows) this gives the bits of backward and then
/// the optimizer's step; otherwise the last bits may differ, since the product adds the batch
/// to W a panel of rows at a time.
#[derive(Clone, Debug)]
pub struct Linear<T: Float = f32> {
    /// `[out, in]`, PyTorch's layout (`nn.Linear.weight`).
    pub weight: Array2<T>,
    /// `[out]`.
    pub bias: Array1<T>,
    /// `∂L/∂W`, `[out, in]`; stale between [`discard_grad`](Module::discard_grad) and the next
    /// backward.
    pub weight_grad: Array2<T>,
    /// `∂L/∂b`, `[out]`; likewise.
    pub bias_grad: Array1<T>,
    input: Option<Array2<T>>,
    /// Set by `discard_grad`: the next backward overwrites the gradients.
    grad_discarded: bool,
    /// Set by `step_in_next_backward`: the next backward applies it to the parameters.
    pending_step: Option<SgdStep<T>>,
}

impl Linear<f32> {
    /// A layer initialized by `init` (the bias as that scheme's [`Init::bias`]).
    pub fn new(in_features: usize, out_features: usize, init: Init, gen: &mut Generator) -> Self {
        let weight = init.weight(out_features, in_features, gen);
        let bias = init.bias(out_features, in_features, gen);
        Linear::from_parameters(weight, bias).expect("init gives matching shapes")
    }
}

impl<T: Float> Linear<T> {
    /// A layer with the given weight `[out, in]` and bias `[out]`.
    pub fn from_parameters(weight: Array2<T>, bias: Array1<T>) -> Result<Self> {
        if bias.len() != weight.nrows() {
            return Err(LayerError::Parameter {
                layer: format!("Linear({} → {})", weight.ncols(), weight.nrows()),
                name: "bias".into(),
                expected: vec![weight.nrows()],
                got: vec![bias.len()],
            });
        }
        Ok(Linear {
            weight_grad: Array2::zeros(weight.dim()),
            bias_grad: Array1::zeros(bias.len()),
            weight: weight.as_standard_layout().into_owned(),
            bias,
            input: None,
            grad_discarded: false,
            pending_step: None,
        })
    }

    pub fn in_features(&self) -> usize {
        self.weight.ncols()
    }

    pub fn out_features(&self) -> usize {
        self.weight.nrows()
    }

    /// The same layer in another precision (e.g. f64 for a gradient check), gradients cleared.
    pub fn cast<U: Float>(&self) -> Linear<U> {
        Linear::from_parameters(self.weight.mapv(|v| U::of(v.f64())), self.bias.mapv(|v| U::of(v.f64())))
            .expect("same shapes")
    }

    /// Forward: `y = x·Wᵀ + b`.
    fn output(&self, x: ArrayView2<T>) -> Result<Array2<T>> {
        expect_shape(&|| self.name(), "input", x.shape(), [None, Some(self.in_features())])?;
        // y = x·Wᵀ
        let mut y = T::matmul(x, self.weight.t());
        // y += b, row by row
        y += &self.bias;
        Ok(y)
    }

    /// Backward, given the input `x` of the forward pass: `∂W += gᵀ·x`, `∂b += Σ_rows g`, and
    /// `∂x = g·W` when `input_grad`.
    fn backward_from(&mut self, x: ArrayView2<T>, g: ArrayView2<T>, input_grad: bool) -> Result<Option<Array2<T>>> {
        // A step asked for applies to this backward only, even one that fails.
        let step = self.pending_step.take();
        expect_shape(
            &|| self.name(),
            "output gradient",
            g.shape(),
            [Some(x.nrows()), Some(self.out_features())],
        )?;
        if let Some(step) = step {
            return Ok(self.backward_and_step(x, g, input_grad, step));
        }
        // ∂W += gᵀ·x, or ∂W = gᵀ·x after `discard_grad` (β = 0: ∂W is neither read nor
        // zeroed first, which saves two passes over it)
        let accumulate = !std::mem::take(&mut self.grad_discarded);
        let beta = if accumulate { T::one() } else { T::zero() };
        T::gemm(T::one(), g.t(), x, beta, self.weight_grad.view_mut());
        if !accumulate {
            self.bias_grad.fill(T::zero());
        }
        self.add_bias_grad(g);
        // ∂x = g·W
        Ok(input_grad.then(|| T::matmul(g, self.weight.view())))
    }

    /// Backward with the SGD step fused in (see the type's docs): `∂x` first, from the weight
    /// before the step; then `W ← (1 − lr·λ)·W − lr·gᵀ·x`; then `∂b = Σ_rows g` (kept in
    /// `bias_grad`) and `b ← b − lr·(∂b + λ·b)`, as the optimizer updates it.
    fn backward_and_step(
        &mut self,
        x: ArrayView2<T>,
        g: ArrayView2<T>,
        input_grad: bool,
        step: SgdStep<T>,
    ) -> Option<Array2<T>> {
        let dx = input_grad.then(|| T::matmul(g, self.weight.view()));
        let keep = T::one() - step.lr * step.weight_decay;
        T::gemm(-step.lr, g.t(), x, keep, self.weight.view_mut());
        self.bias_grad.fill(T::zero());
        self.add_bias_grad(g);
        for (b, &d) in self.bias.iter_mut().zip(&self.bias_grad) {
            *b -= step.lr * (d + step.weight_decay * *b);
        }
        // The weight gradient was never stored.
        self.grad_discarded = true;
        dx
    }

    /// `∂b += Σ_rows g`, in row order (deterministic), one plain loop per row (an ndarray `+=`
    /// per row cost more than the sum itself at batch 1024).
    fn add_bias_grad(&mut self, g: ArrayView2<T>) {
        match (self.bias_grad.as_slice_mut(), g.as_slice()) {
            // Contiguous (as in training): slices, which the compiler vectorizes.
            (Some(bias_grad), Some(g)) if !bias_grad.is_empty() => {
                for row in g.chunks_exact(bias_grad.len()) {
                    for (b, &v) in bias_grad.iter_mut().zip(row) {
                        *b += v;
                    }
                }
            }
            _ => {
                for row in g.rows() {
                    for (b, &v) in self.bias_grad.iter_mut().zip(row.iter()) {
                        *b += v;
                    }
                }
            }
        }
    }
}

impl<T: Float> Module<T> for Linear<T> {
    fn name(&self) -> String {
        format!("Linear({} → {})", self.in_features(), self.out_features())
    }

    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let y = self.output(x)?;
        keep(&mut self.input, x);
        Ok(y)
    }

    fn forward_owned(&mut self, x: Array2<T>) -> Result<Array2<T>> {
        let y = self.output(x.view())?;
        self.input = Some(x);
        Ok(y)
    }

    fn forward_lent_input(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        self.input = None;
        self.output(x)
    }

    fn backward(&mut self, g: ArrayView2<T>, input_grad: bool) -> Result<Option<Array2<T>>> {
        let x = self
            .input
            .take()
            .ok_or_else(|| LayerError::NoForward { layer: self.name() })?;
        let dx = self.backward_from(x.view(), g, input_grad);
        self.input = Some(x);
        dx
    }

    fn backward_lent_input(
        &mut self,
        x: ArrayView2<T>,
        g: ArrayView2<T>,
        input_grad: bool,
    ) -> Result<Option<Array2<T>>> {
        expect_shape(
            &|| self.name(),
            "lent input",
            x.shape(),
            [None, Some(self.in_features())],
        )?;
        self.backward_from(x, g, input_grad)
    }

    fn output_features(&self, input_features: usize) -> Result<usize> {
        expect_shape(
            &|| self.name(),
            "input",
            &[0, input_features],
            [None, Some(self.in_features())],
        )?;
        Ok(self.out_features())
    }

    fn zero_grad(&mut self) {
        self.weight_grad.fill(T::zero());
        self.bias_grad.fill(T::zero());
        self.grad_discarded = false;
    }

    fn discard_grad(&mut self) {
        self.grad_discarded = true;
    }

    fn can_step_in_backward(&self) -> bool {
        true
    }

    fn step_in_next_backward(&mut self, step: SgdStep<T>) {
        self.pending_step = Some(step);
    }

    fn visit_parameters(&self, f: &mut ParamVisitor<T>) {
        f(
            "weight",
            self.weight.view().into_dyn(),
            self.weight_grad.view().into_dyn(),
        );
        f("bias", self.bias.view().into_dyn(), self.bias_grad.view().into_dyn());
    }

    fn visit_parameters_mut(&mut self, f: &mut ParamVisitorMut<T>) {
        f(
            "weight",
            self.weight.view_mut().into_dyn(),
            self.weight_grad.view_mut().into_dyn(),
        );
        f(
            "bias",
            self.bias.view_mut().into_dyn(),
            self.bias_grad.view_mut().into_dyn(),
        );
    }
}
