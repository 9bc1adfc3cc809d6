//! The values of the choice flags, shared by the commands that take them. Each is a
//! `clap::ValueEnum`, so that `--help` lists the values and a wrong one is refused with the
//! list; the code behind a flag still receives the value's name (`"kaiming"`, `"fastai"`),
//! which is also what a run's `config.json` records. Aliases keep the spellings the libraries
//! accept.

use clap::ValueEnum;

/// The name of a flag's value, as written on the command line.
pub fn name<T: ValueEnum>(value: T) -> String {
    value
        .to_possible_value()
        .expect("no value is skipped")
        .get_name()
        .to_string()
}

/// `--dataset`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Dataset {
    /// Handwritten digits.
    Mnist,
    /// Zalando's clothing images, in MNIST's format.
    #[value(alias = "fashion_mnist", alias = "fashion")]
    FashionMnist,
}

/// `--split`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Split {
    /// 60,000 train / 10,000 test images, pixels / 255 (with --valid N, the last N training
    /// images become a validation split).
    Standard,
    /// As fastai's `mnist.pkl.gz`: 50,000 train / 10,000 valid / 10,000 test, pixels / 256.
    Fastai,
}

/// `--subset`: one part of a split.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SubsetName {
    Train,
    Valid,
    Test,
}

/// `--loss`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LossName {
    /// Cross-entropy on 10 logits (classification).
    #[value(alias = "cross-entropy")]
    Ce,
    /// Mean squared error of one output against the digit's value (the lesson's regression).
    Mse,
}

/// `--init`: how the weights are drawn.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum InitScheme {
    /// Kaiming normal for ReLU: N(0, 2/fan_in).
    #[value(alias = "kaiming-normal")]
    Kaiming,
    /// Kaiming uniform for ReLU: U(±√(6/fan_in)).
    KaimingUniform,
    /// The lesson's first fix, randn / √fan_in: N(0, 1/fan_in).
    #[value(alias = "simplified-kaiming")]
    SimpleKaiming,
    /// Xavier (Glorot) normal: N(0, 2/(fan_in + fan_out)).
    #[value(alias = "xavier-normal", alias = "glorot")]
    Xavier,
    /// Xavier (Glorot) uniform: U(±√(6/(fan_in + fan_out))).
    #[value(alias = "glorot-uniform")]
    XavierUniform,
    /// PyTorch's nn.Linear default: U(±1/√fan_in).
    #[value(alias = "pytorch-default")]
    Pytorch,
    /// N(0, 1), unscaled: the lesson's first attempt.
    #[value(alias = "standard-normal")]
    Normal,
}

/// `--schedule`: the learning rate over the run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScheduleName {
    /// The same rate throughout.
    Constant,
    /// Linear from the peak down to a hundredth of it.
    Linear,
    /// Cosine from the peak down to a hundredth of it.
    #[value(alias = "cos")]
    Cosine,
    /// fastai's one-cycle: cosine from half the peak up to it over the first 30%, then down to
    /// a third of it.
    #[value(alias = "onecycle", alias = "1cycle")]
    OneCycle,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every value's name is one the libraries parse, so the flags can only pass them names
    /// they know.
    #[test]
    fn every_name_parses_in_the_library() {
        for v in InitScheme::value_variants() {
            backprop_init::Init::parse(&name(*v)).unwrap();
        }
        for v in ScheduleName::value_variants() {
            backprop_train::Schedule::parse(&name(*v)).unwrap();
        }
        for v in Dataset::value_variants() {
            backprop_data::DatasetSpec::by_name(&name(*v)).unwrap();
        }
        for v in Split::value_variants() {
            crate::data::parse_split(&name(*v), 0).unwrap();
        }
        assert_eq!(name(ScheduleName::OneCycle), "one-cycle");
        assert_eq!(name(Dataset::FashionMnist), "fashion-mnist");
    }
}
