//! ReLU and its variants (fastai's `GeneralRelu`).

use ndarray::{Array2, ArrayView2, Zip};

use crate::error::{expect_shape, LayerError, Result};
use crate::float::Float;
use crate::module::{keep, Module};

/// The rectifier, with the lesson's variants.
///
/// ```text
/// forward:   y = min( leaky(x) − subtract, max_value )      leaky(x) = x if x > 0, else leak·x
/// backward:  ∂x = g · leaky′(x) · [leaky(x) − subtract ≤ max_value]
///            leaky′(x) = 1 if x > 0, else leak   (0 at x = 0 for plain ReLU, as PyTorch)
/// ```
///
/// `Relu::new()` is the plain `max(x, 0)`; `Relu::shifted()` is the lesson's `relu(x) − 0.5`,
/// which moves the mean of activations back towards zero; `Relu::general` is `GeneralRelu`.
#[derive(Clone, Debug)]
pub struct Relu<T: Float = f32> {
    pub leak: T,
    pub subtract: T,
    pub max_value: Option<T>,
    input: Option<Array2<T>>,
}

impl<T: Float> Default for Relu<T> {
    fn default() -> Self {
        Relu::general(T::zero(), T::zero(), None)
    }
}

impl<T: Float> Relu<T> {
    /// `max(x, 0)`.
    pub fn new() -> Self {
        Self::default()
    }

    /// `max(x, 0) − 0.5`.
    pub fn shifted() -> Self {
        Relu::general(T::zero(), T::of(0.5), None)
    }

    /// fastai's `GeneralRelu(leak, sub, maxv)`.
    pub fn general(leak: T, subtract: T, max_value: Option<T>) -> Self {
        Relu {
            leak,
            subtract,
            max_value,
            input: None,
        }
    }

    /// The forward of one element: `y = min(leaky(x) − subtract, max_value)`.
    pub fn value(&self, x: T) -> T {
        let y = self.leaky(x) - self.subtract;
        self.max_value.map_or(y, |m| y.min(m))
    }

    /// The backward of one element: `∂x = g · leaky′(x) · [leaky(x) − subtract ≤ max_value]`.
    pub fn grad(&self, x: T, g: T) -> T {
        let slope = if x > T::zero() { T::one() } else { self.leak };
        let unclamped = self.max_value.is_none_or(|m| self.leaky(x) - self.subtract <= m);
        if unclamped {
            g * slope
        } else {
            T::zero()
        }
    }

    /// Whether this is the plain `max(x, 0)` (no leak, shift or clamp).
    pub fn is_plain(&self) -> bool {
        self.leak == T::zero() && self.subtract == T::zero() && self.max_value.is_none()
    }

    fn leaky(&self, x: T) -> T {
        if x > T::zero() {
            x
        } else {
            self.leak * x
        }
    }
}

impl<T: Float> Module<T> for Relu<T> {
    fn name(&self) -> String {
        if self.is_plain() {
            "ReLU".into()
        } else {
            let max = self.max_value.map_or("none".to_string(), |m| m.to_string());
            format!("GeneralReLU(leak={}, sub={}, max={max})", self.leak, self.subtract)
        }
    }

    /// `y = max(x, 0)` elementwise (with the variants' leak, shift and clamp).
    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        keep(&mut self.input, x);
        Ok(x.mapv(|v| self.value(v)))
    }

    /// `∂x = g·[x > 0]` elementwise (the notebook's `relu_grad`: `(inp > 0).float() * out.g`).
    fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
        let x = self
            .input
            .as_ref()
            .ok_or_else(|| LayerError::NoForward { layer: self.name() })?;
        expect_shape(
            &|| self.name(),
            "output gradient",
            g.shape(),
            [Some(x.nrows()), Some(x.ncols())],
        )?;
        Ok(Zip::from(&g).and(x).map_collect(|&g, &x| self.grad(x, g)))
    }
}
