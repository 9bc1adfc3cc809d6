//! Losses: a scalar from predictions and targets, and its gradient with respect to the
//! predictions. Both are means over the batch, so gradients carry a `1/B`.

use ndarray::{Array2, ArrayView2, Zip};

use crate::error::{expect_shape, LayerError, Result};
use crate::float::Float;
use crate::softmax::{exp_minus_rows, logsumexp_rows};

/// A loss: `forward` computes the value (and keeps what `backward` needs), `backward` gives
/// `∂loss/∂prediction`, shaped like the prediction.
pub trait Loss<T: Float = f32> {
    /// What the predictions are compared with.
    type Target: ?Sized;
    fn name(&self) -> String;
    fn forward(&mut self, prediction: ArrayView2<T>, target: &Self::Target) -> Result<T>;
    fn backward(&mut self) -> Result<Array2<T>>;
}

/// Mean squared error with the lesson's semantics: predictions `[B, 1]` against targets `[B]`
/// (the notebook's `mse` forward and `mse_grad` backward).
///
/// ```text
/// forward:   L = (1/B) Σ_i (p_i − t_i)²         mse(output, targ) = (output.squeeze(-1) − targ).pow(2).mean()
/// backward:  ∂p_i = 2 (p_i − t_i) / B           mse_grad: inp.g = 2·(inp.squeeze() − targ).unsqueeze(-1) / inp.shape[0]
/// ```
#[derive(Clone, Debug, Default)]
pub struct Mse<T: Float = f32> {
    grad: Option<Array2<T>>,
}

impl<T: Float> Mse<T> {
    pub fn new() -> Self {
        Mse { grad: None }
    }
}

impl<T: Float> Loss<T> for Mse<T> {
    type Target = [T];

    fn name(&self) -> String {
        "MSE".into()
    }

    fn forward(&mut self, p: ArrayView2<T>, t: &[T]) -> Result<T> {
        expect_shape(&|| self.name(), "prediction", p.shape(), [Some(t.len()), Some(1)])?;
        let b = t.len();
        let mut sum = 0.0f64;
        let mut grad = Array2::zeros((b, 1));
        let scale = T::of(2.0 / b as f64);
        for ((g, &p), &t) in grad.iter_mut().zip(p.iter()).zip(t) {
            let diff = p - t;
            sum += diff.f64() * diff.f64();
            *g = scale * diff;
        }
        self.grad = Some(grad);
        Ok(T::of(sum / b as f64))
    }

    fn backward(&mut self) -> Result<Array2<T>> {
        self.grad
            .clone()
            .ok_or_else(|| LayerError::NoForward { layer: self.name() })
    }
}

/// Cross-entropy of logits against class indices: log-softmax, then negative log likelihood,
/// mean over the batch (PyTorch's `F.cross_entropy`).
///
/// ```text
/// forward:   L = (1/B) Σ_i ( logsumexp(x_i) − x_{i, y_i} )
/// backward:  ∂x_ij = ( softmax(x_i)_j − [j = y_i] ) / B        (fused: no log-softmax backward)
/// ```
///
/// The log-sum-exp trick keeps logits of ±10⁴ finite.
#[derive(Clone, Debug, Default)]
pub struct CrossEntropy<T: Float = f32> {
    grad: Option<Array2<T>>,
}

impl<T: Float> CrossEntropy<T> {
    pub fn new() -> Self {
        CrossEntropy { grad: None }
    }
}

/// Checks class indices against logits `[B, C]`: length B, each below C.
pub fn check_classes(layer: &str, logits: &ArrayView2<impl Float>, classes: &[usize]) -> Result<()> {
    let (b, c) = logits.dim();
    if classes.len() != b {
        return Err(LayerError::Target {
            layer: layer.into(),
            problem: format!("{} labels for predictions of shape [{b}, {c}]", classes.len()),
        });
    }
    if let Some((i, &y)) = classes.iter().enumerate().find(|(_, &y)| y >= c) {
        return Err(LayerError::Target {
            layer: layer.into(),
            problem: format!("label {y} at position {i} is not a class of predictions of shape [{b}, {c}]"),
        });
    }
    Ok(())
}

impl<T: Float> Loss<T> for CrossEntropy<T> {
    type Target = [usize];

    fn name(&self) -> String {
        "CrossEntropy".into()
    }

    fn forward(&mut self, x: ArrayView2<T>, classes: &[usize]) -> Result<T> {
        check_classes("CrossEntropy", &x, classes)?;
        let b = classes.len();
        let lse = logsumexp_rows(x);
        let mut sum = 0.0f64;
        let inv_b = T::of(1.0 / b as f64);
        // ∂x_ij = (exp(x_ij − lse_i) − [j = y_i]) / B: the exponentials for the whole batch at
        // once, then the scaling and the one-hot.
        let mut grad = exp_minus_rows(x, &lse);
        Zip::from(grad.rows_mut())
            .and(x.rows())
            .and(&lse)
            .and(classes)
            .for_each(|mut g, x, &lse, &y| {
                sum += (lse - x[y]).f64();
                g.mapv_inplace(|e| e * inv_b);
                g[y] -= inv_b;
            });
        self.grad = Some(grad);
        Ok(T::of(sum / b as f64))
    }

    fn backward(&mut self) -> Result<Array2<T>> {
        self.grad
            .clone()
            .ok_or_else(|| LayerError::NoForward { layer: self.name() })
    }
}

/// Index of the largest value of each row (the first one on ties, as `torch.argmax`).
pub fn argmax_rows<T: Float>(x: ArrayView2<T>) -> Vec<usize> {
    x.rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (j, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = j;
                }
            }
            best
        })
        .collect()
}

/// How many rows have their largest logit at the true class.
pub fn correct_count<T: Float>(logits: ArrayView2<T>, classes: &[usize]) -> Result<usize> {
    check_classes("accuracy", &logits, classes)?;
    Ok(argmax_rows(logits).iter().zip(classes).filter(|(p, y)| p == y).count())
}

/// The fraction of rows whose largest logit is at the true class.
pub fn accuracy<T: Float>(logits: ArrayView2<T>, classes: &[usize]) -> Result<f64> {
    let n = classes.len().max(1);
    Ok(correct_count(logits, classes)? as f64 / n as f64)
}
