//! `cargo xtask bench data`: loading and decoding MNIST, and batching an epoch.

use std::path::PathBuf;

use anyhow::Result;
use backprop_data::{dataset, DataLoader, DatasetSpec, Order, SplitScheme, Splits};
use clap::Args;
use serde_json::json;

use super::timing::{machine, median_seconds};
use super::Common;

#[derive(Args)]
pub struct DataArgs {
    #[command(flatten)]
    common: Common,
    /// Where datasets live [default: $BACKPROP_DATA, else <workspace>/data].
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn run(args: &DataArgs) -> Result<()> {
    let dir = crate::data_dir(args.data_dir.as_deref());
    let spec = DatasetSpec::mnist();
    let samples = if args.common.quick { 1 } else { 5 };
    let load = median_seconds(
        || std::mem::drop(dataset::load(&spec, &dir).expect("MNIST loads")),
        samples,
        0.0,
    );
    let raw = dataset::load(&spec, &dir)?;
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 })?;
    let mut epoch_seconds = Vec::new();
    for batch in [64, 1024] {
        let mut loader = DataLoader::new(&splits.train, &splits.normalization, batch, Order::Shuffled { seed: 0 })?;
        let mut e = 0u64;
        let t = median_seconds(
            || {
                let mut epoch = loader.epoch(e);
                e += 1;
                while let Some(b) = epoch.next_batch() {
                    std::hint::black_box(b.x[[0, 0]]);
                }
            },
            samples,
            0.0,
        );
        epoch_seconds.push((batch, t));
    }
    if args.common.json {
        println!(
            "{}",
            json!({"load_seconds": load, "epoch_seconds": epoch_seconds.iter().map(|(b, t)| json!({"batch": b, "seconds": t})).collect::<Vec<_>>()})
        );
    } else {
        println!("machine: {}", machine());
        println!(
            "load and decode the four MNIST files: {:.3} s (median of {samples})",
            load
        );
        for (batch, t) in epoch_seconds {
            println!("one shuffled epoch of 60,000 samples, batch {batch}: {:.4} s", t);
        }
    }
    Ok(())
}
