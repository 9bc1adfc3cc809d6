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

    /// Forward: `y = min(leaky(x) − subtract, max_value)`.
    fn output(&self, x: ArrayView2<T>) -> Array2<T> {
        x.mapv(|v| {
            let y = self.leaky(v) - self.subtract;
            self.max_value.map_or(y, |m| y.min(m))
        })
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
        let plain = self.leak == T::zero() && self.subtract == T::zero() && self.max_value.is_none();
        if plain {
            "ReLU".into()
        } else {
            let max = self.max_value.map_or("none".to_string(), |m| m.to_string());
            format!("GeneralReLU(leak={}, sub={}, max={max})", self.leak, self.subtract)
        }
    }

    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let y = self.output(x);
        keep(&mut self.input, x);
        Ok(y)
    }

    fn forward_owned(&mut self, x: Array2<T>) -> Result<Array2<T>> {
        let y = self.output(x.view());
        self.input = Some(x);
        Ok(y)
    }

    fn backward(&mut self, g: ArrayView2<T>, input_grad: bool) -> Result<Option<Array2<T>>> {
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
        if !input_grad {
            return Ok(None);
        }
        let dx = Zip::from(&g).and(x).map_collect(|&g, &x| {
            let slope = if x > T::zero() { T::one() } else { self.leak };
            let unclamped = self.max_value.is_none_or(|m| self.leaky(x) - self.subtract <= m);
            if unclamped {
                g * slope
            } else {
                T::zero()
            }
        });
        Ok(Some(dx))
    }

    fn output_features(&self, input_features: usize) -> Result<usize> {
        Ok(input_features)
    }
}
