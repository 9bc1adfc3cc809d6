//! # backprop-init
//!
//! Weight initialization, as functions of a weight's shape and a seeded generator. A weight is
//! stored as PyTorch stores `nn.Linear.weight`, `(out, in)`, so (as in PyTorch)
//! `fan_in = in` and `fan_out = out`.
//!
//! | scheme | distribution | source |
//! |---|---|---|
//! | [`Init::StandardNormal`] | N(0, 1) | the lesson's first attempt |
//! | [`Init::SimplifiedKaiming`] | N(0, 1/fan_in) | the lesson's `randn/sqrt(fan_in)`, later called "standard Xavier" by fastai |
//! | [`Init::KaimingNormal`] | N(0, gain²/fan) | He et al. 2015, *Delving Deep into Rectifiers* |
//! | [`Init::KaimingUniform`] | U(±gain·sqrt(3/fan)) | He et al. 2015 |
//! | [`Init::XavierNormal`] | N(0, gain²·2/(fan_in+fan_out)) | Glorot & Bengio 2010 |
//! | [`Init::XavierUniform`] | U(±gain·sqrt(6/(fan_in+fan_out))) | Glorot & Bengio 2010 |
//! | [`Init::PytorchLinear`] | U(±1/sqrt(fan_in)) | `nn.Linear.reset_parameters`: `kaiming_uniform_(a=√5)` |
//! | [`Init::Zeros`], [`Init::Constant`] | the constant | |
//!
//! `fan` is `fan_in` or `fan_out` by [`FanMode`]; `gain` is [`calculate_gain`] of the
//! nonlinearity that follows the layer.
//!
//! **Randomness.** One `u64` seed in ([`rng`]), ChaCha8 inside: its stream is fixed by
//! specification, so the same seed gives the same bits on every machine and thread count.
//!
//! ```
//! use backprop_init::{rng, FanMode, Init, Nonlinearity};
//! let mut gen = rng(42);
//! let w = Init::KaimingNormal { mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu }.weight(50, 784, &mut gen);
//! assert_eq!(w.shape(), &[50, 784]);
//! assert_eq!(w, Init::KaimingNormal { mode: FanMode::FanIn, nonlinearity: Nonlinearity::Relu }.weight(50, 784, &mut rng(42)));
//! ```

use ndarray::{Array1, Array2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::{Distribution, StandardNormal};

/// The generator used everywhere in the project.
pub type Generator = ChaCha8Rng;

/// A generator from a seed: same seed, same stream, everywhere.
pub fn rng(seed: u64) -> Generator {
    ChaCha8Rng::seed_from_u64(seed)
}

/// Errors of this crate (only from parsing names).
#[non_exhaustive]
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    #[error("unknown initialization `{0}`: expected one of normal, simple-kaiming, kaiming, kaiming-uniform, xavier, xavier-uniform, pytorch, zeros")]
    UnknownScheme(String),
}

/// The nonlinearity that follows a layer; it sets the gain.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Nonlinearity {
    Linear,
    Sigmoid,
    Tanh,
    Relu,
    /// Leaky ReLU with this negative slope.
    LeakyRelu(f64),
    Selu,
}

/// PyTorch's `nn.init.calculate_gain`: the factor that keeps activations' variance constant
/// through the nonlinearity.
///
/// linear/identity 1, sigmoid 1, tanh 5/3, relu √2, leaky_relu √(2/(1+a²)), selu 3/4.
pub fn calculate_gain(nonlinearity: Nonlinearity) -> f64 {
    match nonlinearity {
        Nonlinearity::Linear | Nonlinearity::Sigmoid => 1.0,
        Nonlinearity::Tanh => 5.0 / 3.0,
        Nonlinearity::Relu => 2f64.sqrt(),
        Nonlinearity::LeakyRelu(a) => (2.0 / (1.0 + a * a)).sqrt(),
        Nonlinearity::Selu => 0.75,
    }
}

/// Which fan Kaiming initialization preserves: `FanIn` keeps the forward pass's variance,
/// `FanOut` the backward pass's.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FanMode {
    FanIn,
    FanOut,
}

/// `(fan_in, fan_out)` of a weight of shape `(out, in)`.
pub fn fans(out_features: usize, in_features: usize) -> (usize, usize) {
    (in_features, out_features)
}

/// An initialization scheme for a weight of shape `(out, in)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    StandardNormal,
    SimplifiedKaiming,
    KaimingNormal { mode: FanMode, nonlinearity: Nonlinearity },
    KaimingUniform { mode: FanMode, nonlinearity: Nonlinearity },
    XavierNormal { gain: f64 },
    XavierUniform { gain: f64 },
    PytorchLinear,
    Zeros,
    Constant(f32),
}

/// The shape of the distribution a scheme draws from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution1 {
    /// N(0, std²).
    Normal { std: f64 },
    /// U(−bound, bound).
    Uniform { bound: f64 },
    /// Always this value.
    Constant(f64),
}

impl Distribution1 {
    /// The standard deviation of one draw.
    pub fn std(&self) -> f64 {
        match *self {
            Distribution1::Normal { std } => std,
            Distribution1::Uniform { bound } => bound / 3f64.sqrt(),
            Distribution1::Constant(_) => 0.0,
        }
    }

    /// The mean of one draw.
    pub fn mean(&self) -> f64 {
        match *self {
            Distribution1::Constant(c) => c,
            _ => 0.0,
        }
    }

    fn sample(&self, gen: &mut Generator) -> f32 {
        match *self {
            Distribution1::Normal { std } => {
                let z: f64 = StandardNormal.sample(gen);
                (z * std) as f32
            }
            Distribution1::Uniform { bound } => gen.random_range(-bound..bound) as f32,
            Distribution1::Constant(c) => c as f32,
        }
    }
}

impl Init {
    /// Kaiming He normal for a layer followed by ReLU, fan-in mode: the project's default.
    pub const KAIMING_RELU: Init = Init::KaimingNormal {
        mode: FanMode::FanIn,
        nonlinearity: Nonlinearity::Relu,
    };

    /// Kaiming He uniform for a layer followed by ReLU, fan-in mode (`kaiming_uniform_`).
    pub const KAIMING_UNIFORM_RELU: Init = Init::KaimingUniform {
        mode: FanMode::FanIn,
        nonlinearity: Nonlinearity::Relu,
    };

    /// Kaiming He normal for a ReLU layer in fan-out mode: PyTorch's `mode='fan_out'`, which
    /// `02_fully_connected` uses because PyTorch's weight is `[out, in]`.
    pub const KAIMING_RELU_FAN_OUT: Init = Init::KaimingNormal {
        mode: FanMode::FanOut,
        nonlinearity: Nonlinearity::Relu,
    };

    /// Xavier/Glorot normal with gain 1: std `√(2 / (fan_in + fan_out))`.
    pub const XAVIER: Init = Init::XavierNormal { gain: 1.0 };

    /// Xavier/Glorot uniform with gain 1: bound `√(6 / (fan_in + fan_out))`.
    pub const XAVIER_UNIFORM: Init = Init::XavierUniform { gain: 1.0 };

    /// N(0, 1): the notebook's first `torch.randn` weights.
    pub const STANDARD_NORMAL: Init = Init::StandardNormal;

    /// The lesson's first scaled init: N(0, 1/fan_in), `randn / √fan_in`.
    pub const SIMPLIFIED_KAIMING: Init = Init::SimplifiedKaiming;

    /// PyTorch's `nn.Linear` default: `kaiming_uniform_(a=√5)`, bias U(±1/√fan_in).
    pub const PYTORCH: Init = Init::PytorchLinear;

    /// All zeros.
    pub const ZEROS: Init = Init::Zeros;

    /// Parses a command-line name: `normal`, `simple-kaiming`, `kaiming` (normal, fan-in, ReLU),
    /// `kaiming-uniform`, `xavier`, `xavier-uniform`, `pytorch`, `zeros`.
    pub fn parse(name: &str) -> Result<Init, InitError> {
        Ok(match name {
            "normal" | "standard-normal" => Init::StandardNormal,
            "simple-kaiming" | "simplified-kaiming" => Init::SimplifiedKaiming,
            "kaiming" | "kaiming-normal" => Init::KAIMING_RELU,
            "kaiming-uniform" => Init::KAIMING_UNIFORM_RELU,
            "xavier" | "xavier-normal" | "glorot" => Init::XAVIER,
            "xavier-uniform" | "glorot-uniform" => Init::XAVIER_UNIFORM,
            "pytorch" | "pytorch-default" => Init::PytorchLinear,
            "zeros" => Init::Zeros,
            other => return Err(InitError::UnknownScheme(other.to_string())),
        })
    }

    /// The distribution this scheme draws a weight `(out, in)` from.
    pub fn distribution(&self, out_features: usize, in_features: usize) -> Distribution1 {
        let (fan_in, fan_out) = fans(out_features, in_features);
        let (fan_in, fan_out) = (fan_in.max(1) as f64, fan_out.max(1) as f64);
        let fan = |mode: FanMode| if mode == FanMode::FanIn { fan_in } else { fan_out };
        match *self {
            Init::StandardNormal => Distribution1::Normal { std: 1.0 },
            Init::SimplifiedKaiming => Distribution1::Normal {
                std: 1.0 / fan_in.sqrt(),
            },
            Init::KaimingNormal { mode, nonlinearity } => Distribution1::Normal {
                std: calculate_gain(nonlinearity) / fan(mode).sqrt(),
            },
            Init::KaimingUniform { mode, nonlinearity } => Distribution1::Uniform {
                bound: calculate_gain(nonlinearity) * (3.0 / fan(mode)).sqrt(),
            },
            Init::XavierNormal { gain } => Distribution1::Normal {
                std: gain * (2.0 / (fan_in + fan_out)).sqrt(),
            },
            Init::XavierUniform { gain } => Distribution1::Uniform {
                bound: gain * (6.0 / (fan_in + fan_out)).sqrt(),
            },
            // kaiming_uniform_(a = √5): gain √(2/(1+5)) = √(1/3), bound gain·√(3/fan_in) = 1/√fan_in.
            Init::PytorchLinear => Distribution1::Uniform {
                bound: 1.0 / fan_in.sqrt(),
            },
            Init::Zeros => Distribution1::Constant(0.0),
            Init::Constant(c) => Distribution1::Constant(c as f64),
        }
    }

    /// Draws a weight of shape `(out, in)`, row by row.
    pub fn weight(&self, out_features: usize, in_features: usize, gen: &mut Generator) -> Array2<f32> {
        let dist = self.distribution(out_features, in_features);
        Array2::from_shape_simple_fn((out_features, in_features), || dist.sample(gen))
    }

    /// The bias that goes with this scheme: PyTorch's U(±1/√fan_in) for [`Init::PytorchLinear`],
    /// zeros otherwise (as the lesson does).
    pub fn bias(&self, out_features: usize, in_features: usize, gen: &mut Generator) -> Array1<f32> {
        match self {
            Init::PytorchLinear => pytorch_linear_bias(out_features, in_features, gen),
            _ => Array1::zeros(out_features),
        }
    }
}

/// PyTorch's `nn.Linear` bias: U(±1/√fan_in).
pub fn pytorch_linear_bias(out_features: usize, in_features: usize, gen: &mut Generator) -> Array1<f32> {
    let dist = Distribution1::Uniform {
        bound: 1.0 / (in_features.max(1) as f64).sqrt(),
    };
    Array1::from_shape_simple_fn(out_features, || dist.sample(gen))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::approx_constant)] // the literals are the values PyTorch prints
    fn gains_match_pytorch() {
        // torch.nn.init.calculate_gain(...) for each nonlinearity
        assert_eq!(calculate_gain(Nonlinearity::Linear), 1.0);
        assert_eq!(calculate_gain(Nonlinearity::Sigmoid), 1.0);
        assert_eq!(calculate_gain(Nonlinearity::Tanh), 5.0 / 3.0);
        assert_eq!(calculate_gain(Nonlinearity::Relu), 1.4142135623730951);
        assert_eq!(calculate_gain(Nonlinearity::LeakyRelu(0.01)), 1.4141428569978354);
        assert!((calculate_gain(Nonlinearity::LeakyRelu(5f64.sqrt())) - (1.0f64 / 3.0).sqrt()).abs() < 1e-15);
        assert_eq!(calculate_gain(Nonlinearity::Selu), 0.75);
    }

    #[test]
    fn pytorch_default_bound_is_one_over_sqrt_fan_in() {
        let d = Init::PytorchLinear.distribution(50, 784);
        assert_eq!(d, Distribution1::Uniform { bound: 1.0 / 28.0 });
        // Same bound as kaiming_uniform_(a=√5) written out.
        let k = Init::KaimingUniform {
            mode: FanMode::FanIn,
            nonlinearity: Nonlinearity::LeakyRelu(5f64.sqrt()),
        }
        .distribution(50, 784);
        let Distribution1::Uniform { bound } = k else { panic!() };
        assert!((bound - 1.0 / 28.0).abs() < 1e-15);
    }

    #[test]
    fn parse_names() {
        assert_eq!(Init::parse("kaiming").unwrap(), Init::KAIMING_RELU);
        assert!(Init::parse("bogus").unwrap_err().to_string().contains("bogus"));
    }
}
