//! Time to load and decode the four MNIST files, and to iterate one epoch of shuffled batches.
//! Reads the files from `$BACKPROP_DATA` (else `data/`): `cargo bench -p backprop-data`.

use std::path::PathBuf;

use backprop_data::{dataset, DataLoader, DatasetSpec, Order, SplitScheme, Splits};
use criterion::{criterion_group, criterion_main, Criterion};

fn data_dir() -> PathBuf {
    let default = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../data");
    backprop_data::resolve_data_dir(None, &default)
}

fn load(c: &mut Criterion) {
    let dir = data_dir();
    let spec = DatasetSpec::mnist();
    if dataset::load(&spec, &dir).is_err() {
        eprintln!("MNIST not found in {}: set BACKPROP_DATA", dir.display());
        return;
    }
    let mut group = c.benchmark_group("mnist");
    group.sample_size(10);
    group.bench_function("load and decode four files", |b| {
        b.iter(|| dataset::load(&spec, &dir).unwrap())
    });
    let raw = dataset::load(&spec, &dir).unwrap();
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 }).unwrap();
    for batch in [64, 1024] {
        let mut loader =
            DataLoader::new(&splits.train, &splits.normalization, batch, Order::Shuffled { seed: 0 }).unwrap();
        let mut epoch_index = 0;
        group.bench_function(format!("one shuffled epoch, batch {batch}"), |b| {
            b.iter(|| {
                let mut epoch = loader.epoch(epoch_index);
                epoch_index += 1;
                let mut sum = 0.0f32;
                while let Some(batch) = epoch.next_batch() {
                    sum += batch.x[[0, 0]];
                }
                sum
            })
        });
    }
    group.finish();
}

criterion_group!(benches, load);
criterion_main!(benches);
