//! `Linear(in, out)`: an affine map, with its weight stored as PyTorch stores it.

use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut1};

use backprop_init::{Generator, Init};

use crate::error::{expect_shape, LayerError, Result};
use crate::float::Float;
use crate::module::{keep, Module, ParamVisitor, ParamVisitorMut};

/// A fully connected layer: the notebook's `lin` forward and `lin_grad` backward.
///
/// ```text
/// forward:   y  = x·Wᵀ + b          x: [B, in]   W: [out, in]   b: [out]   y: [B, out]
/// backward:  ∂x  = g·W              g = ∂L/∂y: [B, out]
///            ∂W += gᵀ·x
///            ∂b += Σ_rows g
/// ```
///
/// **Why `[out, in]`.** `02_fully_connected` stores its weight as `w1: [784, 50]`, `[in, out]`,
/// and writes `x @ w1 + b1`, and `lin_grad` there computes `w.g = inp.T @ out.g`. We store the
/// weight as `torch.nn.Linear` does, `[out, in]`, so that a checkpoint loads into PyTorch as it
/// is: the same math with the transpose on the other side, `y = x·Wᵀ`, `∂W = gᵀ·x` (the
/// notebook's `w.g` transposed). `Wᵀ` and `gᵀ` are transposed *views* passed to the matrix
/// product: nothing is copied.
///
/// Gradients accumulate (`+=`, PyTorch's rule) until
/// [`zero_grad`](crate::ModuleExt::zero_grad).
///
/// ```
/// use backprop_layers::{Linear, Module};
/// use ndarray::array;
///
/// let mut lin = Linear::from_parameters(array![[1.0f32, 2.0]], array![0.5])?; // 2 → 1
/// let y = lin.forward(array![[3.0, 4.0]].view())?;
/// assert_eq!(y, array![[11.5]]); // 1·3 + 2·4 + 0.5
/// let dx = lin.backward(array![[2.0]].view())?;
/// assert_eq!(dx, array![[2.0, 4.0]]); // g·W
/// assert_eq!(lin.weight_grad, array![[6.0, 8.0]]); // gᵀ·x
/// assert_eq!(lin.bias_grad, array![2.0]); // Σ_rows g
/// # Ok::<(), backprop_layers::LayerError>(())
/// ```
#[derive(Clone, Debug)]
pub struct Linear<T: Float = f32> {
    /// `[out, in]`, PyTorch's layout (`nn.Linear.weight`).
    pub weight: Array2<T>,
    /// `[out]`.
    pub bias: Array1<T>,
    /// `∂L/∂W`, `[out, in]`.
    pub weight_grad: Array2<T>,
    /// `∂L/∂b`, `[out]`.
    pub bias_grad: Array1<T>,
    /// The input of the last forward, for backward.
    input: Option<Array2<T>>,
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
}

impl<T: Float> Module<T> for Linear<T> {
    fn name(&self) -> String {
        format!("Linear({} → {})", self.in_features(), self.out_features())
    }

    /// `y = x·Wᵀ + b` (the notebook's `lin(x, w, b)`).
    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        expect_shape(&|| self.name(), "input", x.shape(), [None, Some(self.in_features())])?;
        keep(&mut self.input, x);
        let mut y = T::matmul(x, self.weight.t());
        y += &self.bias;
        Ok(y)
    }

    /// `∂x = g·W`, `∂W += gᵀ·x`, `∂b += Σ_rows g` (the notebook's `lin_grad`).
    fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
        let Some(x) = &self.input else {
            return Err(LayerError::NoForward { layer: self.name() });
        };
        expect_shape(
            &|| self.name(),
            "output gradient",
            g.shape(),
            [Some(x.nrows()), Some(self.out_features())],
        )?;
        T::gemm(T::one(), g.t(), x.view(), T::one(), self.weight_grad.view_mut());
        add_row_sums(self.bias_grad.view_mut(), g);
        Ok(T::matmul(g, self.weight.view()))
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

/// `sums += Σ_rows g`: the bias gradient, added row by row in order (so the same bits however
/// `g` is laid out), one plain loop per row for contiguous `g`, which the compiler vectorizes.
pub fn add_row_sums<T: Float>(mut sums: ArrayViewMut1<T>, g: ArrayView2<T>) {
    assert_eq!(sums.len(), g.ncols(), "one sum per column of g");
    match (sums.as_slice_mut(), g.as_slice()) {
        (Some(sums), Some(g)) if !sums.is_empty() => {
            for row in g.chunks_exact(sums.len()) {
                for (s, &v) in sums.iter_mut().zip(row) {
                    *s += v;
                }
            }
        }
        _ => {
            for row in g.rows() {
                for (s, &v) in sums.iter_mut().zip(row.iter()) {
                    *s += v;
                }
            }
        }
    }
}
