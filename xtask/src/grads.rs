//! `cargo xtask grads`: forward and backward of a checkpoint on a batch, every gradient to a
//! file (to diff against PyTorch autograd).

use crate::output::outln;
use std::path::PathBuf;

use anyhow::{ensure, Context, Result};
use backprop_layers::{CrossEntropy, Loss, Module, ModuleExt, Mse};
use backprop_model::checkpoint::{self, Tensors};
use backprop_train::checkpoint::write_atomic;
use clap::Args;
use ndarray::{Array2, ArrayD, IxDyn};
use safetensors::tensor::Dtype;
use safetensors::SafeTensors;

use crate::choices::LossName;

#[derive(Args)]
pub struct GradsArgs {
    /// The model (safetensors with PyTorch's nn.Sequential keys).
    #[arg(long)]
    model: PathBuf,
    /// The batch: `x` f32 [B, in]; `y` i64 [B] classes (ce) or f32 [B] targets (mse).
    #[arg(long)]
    batch: PathBuf,
    /// The loss (mse compares the output squeezed to [B] with y).
    #[arg(long, value_enum, default_value_t = LossName::Ce)]
    loss: LossName,
    /// Where to write loss, output, every parameter's gradient and x.grad.
    #[arg(long)]
    out: PathBuf,
}

pub fn run(args: GradsArgs) -> Result<()> {
    let model_bytes = std::fs::read(&args.model).with_context(|| format!("reading {}", args.model.display()))?;
    let (tensors, _) =
        checkpoint::tensors_from_bytes(&model_bytes).with_context(|| format!("{}", args.model.display()))?;
    let mut model = checkpoint::mlp_from_tensors(&tensors).with_context(|| format!("{}", args.model.display()))?;

    let batch_bytes = std::fs::read(&args.batch).with_context(|| format!("reading {}", args.batch.display()))?;
    let batch = SafeTensors::deserialize(&batch_bytes)
        .with_context(|| format!("{}: not valid safetensors", args.batch.display()))?;
    let x_view = batch
        .tensor("x")
        .with_context(|| format!("{}: no tensor `x`", args.batch.display()))?;
    let x: Array2<f32> = checkpoint::tensor_f32("x", &x_view)?
        .into_dimensionality()
        .with_context(|| {
            format!(
                "{}: `x` must be 2-D [B, in], it is {:?}",
                args.batch.display(),
                x_view.shape()
            )
        })?;
    let y_view = batch
        .tensor("y")
        .with_context(|| format!("{}: no tensor `y`", args.batch.display()))?;
    ensure!(
        y_view.shape() == [x.nrows()],
        "{}: `y` has shape {:?}, expected [{}] to match `x` {:?}",
        args.batch.display(),
        y_view.shape(),
        x.nrows(),
        x.shape()
    );

    model.zero_grad();
    let output = model.forward(x.view())?;
    let (loss, grad) = match args.loss {
        LossName::Ce => {
            ensure!(
                y_view.dtype() == Dtype::I64,
                "{}: `y` must be i64 class indices for --loss ce, it is {:?}",
                args.batch.display(),
                y_view.dtype()
            );
            let classes: Vec<usize> = y_view
                .data()
                .chunks_exact(8)
                .map(|b| i64::from_le_bytes(b.try_into().expect("8 bytes")))
                .map(|v| {
                    usize::try_from(v)
                        .map_err(|_| anyhow::anyhow!("{}: negative class index {v} in `y`", args.batch.display()))
                })
                .collect::<Result<_>>()?;
            let mut ce = CrossEntropy::new();
            (ce.forward(output.view(), &classes)?, ce.backward()?)
        }
        LossName::Mse => {
            let targets = checkpoint::tensor_f32("y", &y_view)?;
            let mut mse = Mse::new();
            (
                mse.forward(output.view(), targets.as_slice().expect("fresh array"))?,
                mse.backward()?,
            )
        }
    };
    let x_grad = model.backward(grad.view())?;

    let mut out = Tensors::new();
    out.insert("loss".into(), ArrayD::from_shape_vec(IxDyn(&[1]), vec![loss])?);
    out.insert("output".into(), output.into_dyn());
    model.visit_parameters(&mut |name, _, grad| {
        out.insert(name.to_string(), grad.to_owned());
    });
    out.insert("x.grad".into(), x_grad.into_dyn());
    write_atomic(&args.out, &checkpoint::tensors_to_bytes(&out, None)?)?;
    outln!(
        "loss {loss:.6}; wrote loss, output, {} parameter gradients and x.grad to {}",
        tensors.len(),
        args.out.display()
    )?;
    Ok(())
}
