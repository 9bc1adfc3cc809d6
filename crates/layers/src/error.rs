//! Errors of the layers: each names the layer and both shapes (or the bad value).

/// What a layer rejects.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum LayerError {
    /// An input or gradient whose shape does not fit the layer.
    #[error("{layer}: {what} has shape {got:?}, expected {expected}")]
    Shape {
        layer: String,
        what: &'static str,
        expected: String,
        got: Vec<usize>,
    },
    /// Targets that do not fit the predictions (wrong length, class out of range, not finite).
    #[error("{layer}: {problem}")]
    Target { layer: String, problem: String },
    /// `backward` without a `forward` before it.
    #[error("{layer}: backward called before forward")]
    NoForward { layer: String },
    /// A parameter that does not fit the layer it is loaded into.
    #[error("{layer}: parameter `{name}` has shape {got:?}, expected {expected:?}")]
    Parameter {
        layer: String,
        name: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
}

/// The crate's result type.
pub type Result<T, E = LayerError> = std::result::Result<T, E>;

/// Checks `got` against an expected shape where `None` means "any size".
pub(crate) fn expect_shape(
    layer: &dyn Fn() -> String,
    what: &'static str,
    got: &[usize],
    expected: [Option<usize>; 2],
) -> Result<()> {
    let fits = got.len() == 2 && got.iter().zip(expected).all(|(&g, e)| e.is_none_or(|e| e == g));
    if fits {
        return Ok(());
    }
    let show = |e: Option<usize>| e.map_or("B".to_string(), |e| e.to_string());
    Err(LayerError::Shape {
        layer: layer(),
        what,
        expected: format!("[{}, {}]", show(expected[0]), show(expected[1])),
        got: got.to_vec(),
    })
}
