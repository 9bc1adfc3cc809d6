//! Learning-rate schedules: the rate as a function of the position `t = step / total` in the
//! run, as in fastai's `05_anneal`.
//!
//! ```text
//! constant   η(t) = η₀
//! linear     η(t) = η₀ + t·(η_end − η₀)
//! cosine     η(t) = η_end + (η₀ − η_end)·(1 + cos πt)/2
//! one-cycle  the notebook's combine_scheds([0.3, 0.7], [sched_cos(0.3, 0.6), sched_cos(0.6, 0.2)]),
//!            scaled so that its peak is η₀: cosine from η₀/2 up to η₀ over the first 30%,
//!            then cosine from η₀ down to η₀/3.
//! ```
//! `η_end` is `η₀ / 100` for linear and cosine.

use std::f64::consts::PI;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Schedule {
    Constant,
    Linear,
    Cosine,
    OneCycle,
}

impl Schedule {
    pub fn parse(name: &str) -> Option<Schedule> {
        Some(match name {
            "constant" => Schedule::Constant,
            "linear" => Schedule::Linear,
            "cosine" | "cos" => Schedule::Cosine,
            "one-cycle" | "onecycle" | "1cycle" => Schedule::OneCycle,
            _ => return None,
        })
    }

    /// The learning rate at `step` of `total` steps, for a base (peak) rate `lr`.
    pub fn lr_at(&self, lr: f32, step: u64, total: u64) -> f32 {
        let t = if total == 0 {
            0.0
        } else {
            (step as f64 / total as f64).min(1.0)
        };
        let lr = lr as f64;
        let cos = |start: f64, end: f64, t: f64| start + (1.0 + (PI * (1.0 - t)).cos()) * (end - start) / 2.0;
        let rate = match self {
            Schedule::Constant => lr,
            Schedule::Linear => lr + t * (lr / 100.0 - lr),
            Schedule::Cosine => cos(lr, lr / 100.0, t),
            Schedule::OneCycle => {
                if t < 0.3 {
                    cos(lr * 0.5, lr, t / 0.3)
                } else {
                    cos(lr, lr / 3.0, (t - 0.3) / 0.7)
                }
            }
        };
        rate as f32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(Schedule::Constant.lr_at(0.1, 50, 100), 0.1);
        assert_eq!(Schedule::Linear.lr_at(1.0, 0, 100), 1.0);
        assert!((Schedule::Linear.lr_at(1.0, 100, 100) - 0.01).abs() < 1e-7);
        assert!((Schedule::Cosine.lr_at(1.0, 0, 100) - 1.0).abs() < 1e-7);
        assert!((Schedule::Cosine.lr_at(1.0, 50, 100) - 0.505).abs() < 1e-6);
        assert!((Schedule::Cosine.lr_at(1.0, 100, 100) - 0.01).abs() < 1e-7);
        assert!((Schedule::OneCycle.lr_at(0.6, 0, 100) - 0.3).abs() < 1e-7);
        assert!((Schedule::OneCycle.lr_at(0.6, 30, 100) - 0.6).abs() < 1e-7);
        assert!((Schedule::OneCycle.lr_at(0.6, 100, 100) - 0.2).abs() < 1e-7);
    }
}
