//! `cargo xtask eval`: a checkpoint's test accuracy, loss and confusion matrix.

use crate::output::outln;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use backprop_layers::Module;
use backprop_model::checkpoint;
use backprop_train::{evaluate, Task};
use clap::Args;

use crate::choices::{name, Dataset, Split};
use crate::train::RunConfig;

#[derive(Args)]
pub struct EvalArgs {
    /// A model checkpoint (model.safetensors); its run folder's config.json gives the
    /// normalization when present.
    #[arg(long)]
    model: PathBuf,
    /// The dataset [default: the run's, else mnist].
    #[arg(long, value_enum)]
    dataset: Option<Dataset>,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// The split, whose pixel scaling and normalization the test images get [default: the
    /// run's, else standard].
    #[arg(long, value_enum)]
    split: Option<Split>,
    /// Draw the confusion matrix as a heat map (counts in the cells) to this PNG, and beside
    /// it the same picture as SVG.
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn run(args: EvalArgs) -> Result<()> {
    let bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let (tensors, _) = checkpoint::tensors_from_bytes(&bytes).with_context(|| format!("{}", args.model.display()))?;
    let mut model = checkpoint::mlp_from_tensors(&tensors).with_context(|| format!("{}", args.model.display()))?;
    let config: Option<RunConfig> = args
        .model
        .parent()
        .map(|d| d.join("config.json"))
        .and_then(|p| std::fs::read_to_string(p).ok())
        .and_then(|t| serde_json::from_str(&t).ok());
    let dataset = args
        .dataset
        .map(name)
        .or_else(|| config.as_ref().map(|c| c.dataset.clone()))
        .unwrap_or_else(|| "mnist".into());
    let split = args
        .split
        .map(name)
        .or_else(|| config.as_ref().map(|c| c.split.clone()))
        .unwrap_or_else(|| "standard".into());
    let valid = config.as_ref().map_or(0, |c| c.valid);
    let scheme = crate::data::parse_split(&split, valid)?;
    let splits = crate::data::load_splits(&dataset, args.data_dir.as_deref(), scheme, true)?;
    let outputs = model.output_features(splits.test.features())?;
    let task = if outputs == 1 {
        Task::Regression
    } else {
        Task::Classification
    };
    ensure!(
        outputs == 1 || outputs == 10,
        "the model has {outputs} outputs: expected 10 logits or 1 regression output"
    );
    let result = evaluate(&mut model, &splits.test, &splits.normalization, task, 1000)?;
    outln!(
        "{} test: accuracy {:.4}, {} loss {:.4}, {} samples",
        dataset,
        result.accuracy,
        task.loss_name(),
        result.loss,
        result.samples
    )?;
    outln!("confusion matrix (rows: true class, columns: predicted)")?;
    outln!("      {}", (0..10).map(|c| format!("{c:>5}")).collect::<String>())?;
    for (label, row) in result.confusion.iter().enumerate() {
        outln!(
            "  {label:>2}  {}",
            row.iter().map(|n| format!("{n:>5}")).collect::<String>()
        )?;
    }
    if let Some(path) = &args.plot {
        let map = crate::plot::ConfusionMap {
            title: format!(
                "{dataset} test: confusion matrix (accuracy {:.4}, {} samples)",
                result.accuracy, result.samples
            ),
            counts: result.confusion.clone(),
        };
        let [png, svg] = crate::plot::write_picture(path, &map)?;
        outln!("confusion matrix → {} and {}", png.display(), svg.display())?;
    }
    Ok(())
}
