//! The element type of layers: `f32` for training, `f64` for gradient checks. Both run the same
//! layer code; only the matrix product differs (our SGEMM for f32, matrixmultiply's DGEMM via
//! ndarray for f64).

use std::fmt::{Debug, Display};
use std::ops::{AddAssign, MulAssign, SubAssign};

use ndarray::{Array2, ArrayView2, ArrayViewMut2};

/// A floating-point element type the layers can run on.
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + std::iter::Sum
    + AddAssign
    + SubAssign
    + MulAssign
    + Debug
    + Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// `C ← α·A·B + β·C` (β = 0 overwrites C).
    fn gemm(alpha: Self, a: ArrayView2<Self>, b: ArrayView2<Self>, beta: Self, c: ArrayViewMut2<Self>);

    /// `A·B` into a new array (for f32 not zeroed first: see [`backprop_matmul::matmul`]).
    fn matmul(a: ArrayView2<Self>, b: ArrayView2<Self>) -> Array2<Self>;

    /// Conversion from f64 (rounding to nearest for f32).
    fn of(x: f64) -> Self;

    /// Conversion to f64 (exact).
    fn f64(self) -> f64;

    /// Replaces each value by its exponential: sixteen at a time for f32 ([`crate::exp`]), the
    /// standard library's `exp` for f64 (gradient checks want it exact, not fast).
    fn exp_in_place(values: &mut [Self]);
}

impl Float for f32 {
    fn gemm(alpha: f32, a: ArrayView2<f32>, b: ArrayView2<f32>, beta: f32, c: ArrayViewMut2<f32>) {
        backprop_matmul::gemm(alpha, a, b, beta, c)
    }
    fn matmul(a: ArrayView2<f32>, b: ArrayView2<f32>) -> Array2<f32> {
        backprop_matmul::matmul(a, b)
    }
    fn of(x: f64) -> f32 {
        x as f32
    }
    fn f64(self) -> f64 {
        self as f64
    }
    fn exp_in_place(values: &mut [f32]) {
        crate::exp::exp_in_place(values)
    }
}

impl Float for f64 {
    fn gemm(alpha: f64, a: ArrayView2<f64>, b: ArrayView2<f64>, beta: f64, mut c: ArrayViewMut2<f64>) {
        if beta == 0.0 {
            c.fill(0.0);
        }
        ndarray::linalg::general_mat_mul(alpha, &a, &b, beta, &mut c)
    }
    fn matmul(a: ArrayView2<f64>, b: ArrayView2<f64>) -> Array2<f64> {
        a.dot(&b)
    }
    fn of(x: f64) -> f64 {
        x
    }
    fn f64(self) -> f64 {
        self
    }
    fn exp_in_place(values: &mut [f64]) {
        for v in values {
            *v = v.exp();
        }
    }
}
