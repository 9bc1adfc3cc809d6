//! `cargo xtask bench matmul | train | data | peak`: medians, thread counts, anchors side by side.
//!
//! One file per thing measured: `matmul.rs` (products, and the products of a network's training
//! step) and `sweep.rs` (square sizes against matrixmultiply), `train.rs` (epochs against
//! PyTorch), `data.rs` (loading and batching), `peak.rs` (the FMA loop every figure is a
//! share of). `timing.rs` holds the medians they all use, `python.rs` runs the anchors in
//! `scripts/`.

mod data;
mod matmul;
mod peak;
mod python;
mod sweep;
mod timing;
mod train;

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum BenchCommand {
    /// GFLOP/s of matrix products, ours beside matrixmultiply, the ladder's rungs, and numpy /
    /// PyTorch when installed; with --arch, the products of a network's training step summed
    /// over an epoch; with --sweep, square sizes against matrixmultiply.
    Matmul(matmul::MatmulArgs),
    /// Seconds per training epoch of MLPs on MNIST, beside the same loop in PyTorch, with each
    /// cell's share of the FMA peak.
    Train(train::TrainArgs),
    /// Seconds to load and decode MNIST, and to batch an epoch.
    Data(data::DataArgs),
    /// The FMA loops' peak GFLOP/s (256-bit and 512-bit, whichever the CPU runs), per thread count.
    Peak(peak::PeakArgs),
}

/// The flags every benchmark takes.
#[derive(Args)]
pub struct Common {
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
    /// Fewer shapes and repetitions (a smoke test, not a measurement).
    #[arg(long)]
    quick: bool,
}

/// The Python interpreter of the anchors (`scripts/bench_*.py`).
#[derive(Args)]
pub struct PythonArg {
    /// The Python interpreter for the numpy / PyTorch anchors; one that cannot import them
    /// (e.g. /nonexistent) skips the anchors.
    #[arg(long, env = "BACKPROP_PYTHON", default_value = "python3")]
    python: String,
}

pub fn run(command: BenchCommand) -> Result<()> {
    match command {
        BenchCommand::Matmul(args) => matmul::run(&args),
        BenchCommand::Train(args) => train::run(&args),
        BenchCommand::Data(args) => data::run(&args),
        BenchCommand::Peak(args) => peak::run(&args),
    }
}
