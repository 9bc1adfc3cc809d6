//! Formatting tensors for snapshot tests: shape first, then the numbers at a fixed precision,
//! `-0` printed as `0`. Stable across platforms and ndarray versions (no strides, no Debug).
//!
//! ```
//! use backprop_layers::snapshot::format_tensor;
//! let y = ndarray::array![[1.0f32, -0.0], [0.123456789, -2.5]];
//! assert_eq!(format_tensor("y", y.view().into_dyn(), 4), "y [2, 2]\n  1.0000  0.0000\n  0.1235 -2.5000\n");
//! ```
//!
//! With insta, in a test of your own layer:
//!
//! ```ignore
//! insta::assert_snapshot!(format_tensor("output", y.view().into_dyn(), 6));
//! ```

use ndarray::ArrayViewD;

use crate::float::Float;

/// `name [d0, d1, ...]` on the first line, then one line per row of the last axis.
pub fn format_tensor<T: Float>(name: &str, tensor: ArrayViewD<T>, decimals: usize) -> String {
    let mut out = format!("{name} {:?}\n", tensor.shape());
    let width = tensor
        .iter()
        .map(|&v| format_number(v.f64(), decimals).len())
        .max()
        .unwrap_or(0);
    let row_len = tensor.shape().last().copied().unwrap_or(1).max(1);
    let values: Vec<String> = tensor.iter().map(|&v| format_number(v.f64(), decimals)).collect();
    for row in values.chunks(row_len) {
        for v in row {
            out.push_str(&format!(" {v:>width$}"));
        }
        out.push('\n');
    }
    out
}

/// One number at fixed precision; negative zero (also after rounding) prints as zero.
pub fn format_number(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s[1..].chars().all(|c| c == '0' || c == '.') {
        s[1..].to_string()
    } else {
        s
    }
}
