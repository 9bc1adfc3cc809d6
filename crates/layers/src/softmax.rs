//! Softmax and log-softmax over each row, computed with the log-sum-exp trick.

use ndarray::{Array1, Array2, ArrayView2, Axis, Zip};

use crate::error::{expect_shape, LayerError, Result};
use crate::float::Float;
use crate::module::Module;

/// `logsumexp(x) = m + ln Σ_j exp(x_j − m)` with `m = max_j x_j`, for each row: exact in real
/// arithmetic, and no `exp` ever overflows (logits of ±10⁴ are fine).
pub fn logsumexp_rows<T: Float>(x: ArrayView2<T>) -> Array1<T> {
    let max = x.map_axis(Axis(1), |row| row.fold(T::neg_infinity(), |m, &v| m.max(v)));
    // Each row's sum of exp(x_ij − m_i), in column order.
    Zip::from(exp_minus_rows(x, &max).rows())
        .and(&max)
        .map_collect(|terms, &m| {
            if m == T::neg_infinity() {
                return m;
            }
            m + terms.fold(T::zero(), |s, &e| s + e).ln()
        })
}

/// `exp(x_ij − v_i)` for a whole batch: the differences first, then their exponentials at once
/// through [`Float::exp_in_place`] (sixteen at a time for f32).
pub(crate) fn exp_minus_rows<T: Float>(x: ArrayView2<T>, v: &Array1<T>) -> Array2<T> {
    let mut out = Array2::zeros(x.dim());
    Zip::from(out.rows_mut())
        .and(x.rows())
        .and(v)
        .for_each(|mut out, row, &v| Zip::from(&mut out).and(&row).for_each(|o, &x| *o = x - v));
    T::exp_in_place(out.as_slice_mut().expect("made in standard layout"));
    out
}

/// `log_softmax(x)_ij = x_ij − logsumexp(x_i)`.
pub fn log_softmax<T: Float>(x: ArrayView2<T>) -> Array2<T> {
    let lse = logsumexp_rows(x);
    let mut out = x.to_owned();
    Zip::from(out.rows_mut()).and(&lse).for_each(|mut row, &l| row -= l);
    out
}

/// `softmax(x)_ij = exp(x_ij − logsumexp(x_i))`.
pub fn softmax<T: Float>(x: ArrayView2<T>) -> Array2<T> {
    exp_minus_rows(x, &logsumexp_rows(x))
}

/// Row-wise softmax as a module.
///
/// ```text
/// forward:   s_ij = exp(x_ij) / Σ_k exp(x_ik)
/// backward:  ∂x_ij = s_ij · (g_ij − Σ_k g_ik s_ik)
/// ```
#[derive(Clone, Debug, Default)]
pub struct Softmax<T: Float = f32> {
    output: Option<Array2<T>>,
}

/// Row-wise log-softmax as a module.
///
/// ```text
/// forward:   y_ij = x_ij − logsumexp(x_i)
/// backward:  ∂x_ij = g_ij − s_ij · Σ_k g_ik          s = exp(y) = softmax(x)
/// ```
#[derive(Clone, Debug, Default)]
pub struct LogSoftmax<T: Float = f32> {
    output: Option<Array2<T>>,
}

fn check_grad<T: Float>(name: &str, kept: &Option<Array2<T>>, g: &ArrayView2<T>) -> Result<()> {
    let y = kept
        .as_ref()
        .ok_or_else(|| LayerError::NoForward { layer: name.into() })?;
    expect_shape(
        &|| name.to_string(),
        "output gradient",
        g.shape(),
        [Some(y.nrows()), Some(y.ncols())],
    )
}

impl<T: Float> Module<T> for Softmax<T> {
    fn name(&self) -> String {
        "Softmax".into()
    }
    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let s = softmax(x);
        self.output = Some(s.clone());
        Ok(s)
    }
    fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
        check_grad("Softmax", &self.output, &g)?;
        let s = self.output.as_ref().expect("checked");
        {
            let mut dx = Array2::zeros(g.dim());
            Zip::from(dx.rows_mut())
                .and(g.rows())
                .and(s.rows())
                .for_each(|mut d, g, s| {
                    let dot = g.iter().zip(s).fold(T::zero(), |acc, (&g, &s)| acc + g * s);
                    Zip::from(&mut d)
                        .and(&g)
                        .and(&s)
                        .for_each(|d, &g, &s| *d = s * (g - dot));
                });
            Ok(dx)
        }
    }
}

impl<T: Float> Module<T> for LogSoftmax<T> {
    fn name(&self) -> String {
        "LogSoftmax".into()
    }
    fn forward(&mut self, x: ArrayView2<T>) -> Result<Array2<T>> {
        let y = log_softmax(x);
        self.output = Some(y.clone());
        Ok(y)
    }
    fn backward(&mut self, g: ArrayView2<T>) -> Result<Array2<T>> {
        check_grad("LogSoftmax", &self.output, &g)?;
        let y = self.output.as_ref().expect("checked");
        {
            let mut dx = Array2::zeros(g.dim());
            Zip::from(dx.rows_mut())
                .and(g.rows())
                .and(y.rows())
                .for_each(|mut d, g, y| {
                    let total = g.sum();
                    Zip::from(&mut d)
                        .and(&g)
                        .and(&y)
                        .for_each(|d, &g, &y| *d = g - y.exp() * total);
                });
            Ok(dx)
        }
    }
}
