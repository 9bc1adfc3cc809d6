//! `Sequential`: modules applied one after the other.

use ndarray::{Array2, ArrayView2};

use backprop_init::{Generator, Init};
use backprop_layers::module::{ParamVisitor, ParamVisitorMut};
use backprop_layers::{Float, LayerError, Linear, Module, ModuleExt, Relu};

/// An ordered list of modules.
///
/// ```text
/// forward:   h₀ = x,   hᵢ₊₁ = moduleᵢ(hᵢ)
/// backward:  gₙ = ∂L/∂hₙ,   gᵢ = moduleᵢ.backward(gᵢ₊₁)   for i = n−1 … 0
/// ```
///
/// Parameters are named as PyTorch's `nn.Sequential` names them: the module's index, a dot,
/// the parameter's name (`0.weight`, `0.bias`, `2.weight`, ...).
pub struct Sequential<T: Float = f32> {
    modules: Vec<Box<dyn Module<T>>>,
}

impl<T: Float> Default for Sequential<T> {
    fn default() -> Self {
        Sequential { modules: Vec::new() }
    }
}

impl<T: Float> std::fmt::Debug for Sequential<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.modules.iter().map(|m| m.name())).finish()
    }
}

impl<T: Float> Sequential<T> {
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a module.
    pub fn push(&mut self, module: impl Module<T> + 'static) -> &mut Self {
        self.modules.push(Box::new(module));
        self
    }

    /// Appends a boxed module.
    pub fn push_boxed(&mut self, module: Box<dyn Module<T>>) -> &mut Self {
        self.modules.push(module);
        self
    }

    pub fn modules(&self) -> &[Box<dyn Module<T>>] {
        &self.modules
    }

    pub fn len(&self) -> usize {
        self.modules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.modules.is_empty()
    }

    /// The modules, mutably (to reach a layer's parameters, or for code that runs the layers
    /// itself, as the training engine does).
    pub fn modules_mut(&mut self) -> &mut [Box<dyn Module<T>>] {
        &mut self.modules
    }

    /// A torchsummary-like table: index, module, output shape, parameter count, and totals.
    pub fn summary(&self, input_features: usize) -> Result<String, LayerError> {
        let mut lines = vec![format!(
            "{:<4} {:<28} {:<14} {:>10}",
            "#", "layer", "output shape", "params"
        )];
        lines.push("-".repeat(59));
        let mut features = input_features;
        for (i, m) in self.modules.iter().enumerate() {
            features = m.output_features(features)?;
            lines.push(format!(
                "{:<4} {:<28} {:<14} {:>10}",
                i,
                m.name(),
                format!("[B, {features}]"),
                group_thousands(m.parameter_count())
            ));
        }
        lines.push("-".repeat(59));
        lines.push(format!("total parameters: {}", group_thousands(self.parameter_count())));
        Ok(lines.join("\n") + "\n")
    }

    /// Every parameter's PyTorch name and shape, in order.
    pub fn parameter_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out = Vec::new();
        self.visit_parameters(&mut |name, value, _| out.push((name.to_string(), value.shape().to_vec())));
        out
    }
}

/// `39760` → `39,760`.
pub fn group_thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

impl<T: Float> Module<T> for Sequential<T> {
    fn name(&self) -> String {
        format!("Sequential({} modules)", self.modules.len())
    }

    /// `h₀ = x`, `hᵢ₊₁ = moduleᵢ(hᵢ)`.
    fn forward(&mut self, input: ArrayView2<T>) -> Result<Array2<T>, LayerError> {
        let Some((first, rest)) = self.modules.split_first_mut() else {
            return Ok(input.to_owned());
        };
        let mut h = first.forward(input)?;
        for m in rest {
            h = m.forward(h.view())?;
        }
        Ok(h)
    }

    /// `gᵢ = moduleᵢ.backward(gᵢ₊₁)`, from the last module to the first.
    fn backward(&mut self, grad_output: ArrayView2<T>) -> Result<Array2<T>, LayerError> {
        let Some((last, rest)) = self.modules.split_last_mut() else {
            return Ok(grad_output.to_owned());
        };
        let mut g = last.backward(grad_output)?;
        for m in rest.iter_mut().rev() {
            g = m.backward(g.view())?;
        }
        Ok(g)
    }

    fn output_features(&self, input_features: usize) -> Result<usize, LayerError> {
        self.modules
            .iter()
            .try_fold(input_features, |f, m| m.output_features(f))
    }

    fn visit_parameters(&self, f: &mut ParamVisitor<T>) {
        for (i, m) in self.modules.iter().enumerate() {
            m.visit_parameters(&mut |name, v, g| f(&format!("{i}.{name}"), v, g));
        }
    }

    fn visit_parameters_mut(&mut self, f: &mut ParamVisitorMut<T>) {
        for (i, m) in self.modules.iter_mut().enumerate() {
            m.visit_parameters_mut(&mut |name, v, g| f(&format!("{i}.{name}"), v, g));
        }
    }
}

/// A multi-layer perceptron `sizes[0] → sizes[1] → … → sizes[n]`: Linear layers with a ReLU
/// between consecutive ones (none after the last), each initialized by `init`.
pub fn mlp(sizes: &[usize], init: Init, gen: &mut Generator) -> Sequential<f32> {
    let mut model = Sequential::new();
    for (i, pair) in sizes.windows(2).enumerate() {
        if i > 0 {
            model.push(Relu::new());
        }
        model.push(Linear::new(pair[0], pair[1], init, gen));
    }
    model
}
