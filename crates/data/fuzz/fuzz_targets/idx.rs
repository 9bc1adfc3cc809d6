//! Any bytes given to the IDX readers must give a value or an error, never a panic, an
//! out-of-memory abort or a hang. When they parse, the result must be consistent.
#![no_main]

use std::path::Path;

use backprop_data::idx::{encode_images, encode_labels, images_from_bytes, labels_from_bytes, NUM_CLASSES};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz-input");
    if let Ok(images) = images_from_bytes(data.to_vec(), path) {
        assert_eq!(images.pixels.len(), images.count * images.rows * images.cols);
        // A raw file that parsed re-encodes to itself.
        if !data.starts_with(&[0x1f, 0x8b]) {
            assert_eq!(encode_images(&images), data);
        }
    }
    if let Ok(labels) = labels_from_bytes(data.to_vec(), path) {
        assert!(labels.iter().all(|&l| (l as usize) < NUM_CLASSES));
        if !data.starts_with(&[0x1f, 0x8b]) {
            assert_eq!(encode_labels(&labels), data);
        }
    }
});
