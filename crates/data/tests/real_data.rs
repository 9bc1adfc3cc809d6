//! Facts about the real MNIST and Fashion-MNIST files (see `../shared/data/README.md`).

mod common;

use backprop_data::dataset::{self, FileStatus};
use backprop_data::split::{normalized_stats, pixel_stats};
use backprop_data::{DatasetSpec, SplitScheme, Splits};

fn close(actual: f64, expected: f64, tolerance: f64) -> bool {
    (actual - expected).abs() <= tolerance
}

#[test]
fn mnist_counts_statistics_and_both_splits() {
    let Some(dir) = common::real_data_dir("mnist") else {
        return;
    };
    let raw = dataset::load(&DatasetSpec::mnist(), &dir).unwrap();
    assert_eq!(
        (raw.train.images.count, raw.train.images.rows, raw.train.images.cols),
        (60_000, 28, 28)
    );
    assert_eq!(raw.test.images.count, 10_000);

    let standard = Splits::new(&raw, SplitScheme::Standard { valid: 0 }).unwrap();
    assert!(standard.valid.is_none());
    assert_eq!(
        standard.train.label_counts(),
        [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
    );
    let norm = standard.normalization;
    // Published facts: all 60,000 training images, pixels/255.
    assert!(
        close(norm.mean, 0.130660, 5e-7) && close(norm.std, 0.308108, 5e-7),
        "{norm:?}"
    );
    let (test_mean, test_std) = pixel_stats(&standard.test.pixels, 255.0);
    assert!(close(test_mean, 0.132515, 5e-7) && close(test_std, 0.310480, 5e-7));
    // After normalization the training split is exactly standardized.
    let (m, s) = normalized_stats(&standard.train.pixels, &norm);
    assert!(m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12, "{m} {s}");

    // fastai's mnist.pkl.gz: rows 0..50000 and 50000..60000, pixels / 256.
    let fastai = Splits::new(&raw, SplitScheme::Fastai).unwrap();
    let valid = fastai.valid.as_ref().unwrap();
    assert_eq!(
        (fastai.train.len(), valid.len(), fastai.test.len()),
        (50_000, 10_000, 10_000)
    );
    assert_eq!(valid.image(0), raw.train.images.image(50_000));
    assert_eq!(valid.labels[..], raw.train.labels[50_000..]);
    let n = fastai.normalization;
    assert_eq!(n.scale, 256.0);
    assert!(close(n.mean, 0.130450, 5e-7) && close(n.std, 0.307290, 5e-7), "{n:?}");

    // A validation carve-out from the end of train.
    let carved = Splits::new(&raw, SplitScheme::Standard { valid: 5_000 }).unwrap();
    assert_eq!(carved.train.len(), 55_000);
    assert_eq!(carved.valid.unwrap().image(4_999), raw.train.images.image(59_999));
}

#[test]
fn fashion_mnist_statistics() {
    let Some(dir) = common::real_data_dir("fashion-mnist") else {
        return;
    };
    let raw = dataset::load(&DatasetSpec::fashion_mnist(), &dir).unwrap();
    let splits = Splits::new(&raw, SplitScheme::Standard { valid: 0 }).unwrap();
    assert_eq!(splits.train.label_counts(), [6000; 10]);
    let n = splits.normalization;
    assert!(close(n.mean, 0.286041, 5e-7) && close(n.std, 0.353024, 5e-7), "{n:?}");
    let (m, s) = pixel_stats(&splits.test.pixels, 255.0);
    assert!(close(m, 0.286849, 5e-7) && close(s, 0.352444, 5e-7));
}

#[test]
fn the_shared_files_verify() {
    for spec in [DatasetSpec::mnist(), DatasetSpec::fashion_mnist()] {
        let Some(dir) = common::real_data_dir(&spec.name) else {
            return;
        };
        for (name, status) in dataset::verify(&spec, &dir).unwrap() {
            assert!(
                matches!(status, FileStatus::Verified(_)),
                "{}/{name}: {status:?}",
                spec.name
            );
        }
    }
}
