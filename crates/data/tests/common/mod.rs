//! Finding the real datasets for tests: `$BACKPROP_DATA`, else `../shared/data` beside the
//! workspace. Under `CI=true` a missing dataset fails the test; elsewhere the test says it was
//! skipped and passes.

use std::path::PathBuf;

pub fn real_data_dir(dataset: &str) -> Option<PathBuf> {
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = std::env::var_os("BACKPROP_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([workspace.join("../shared/data"), workspace.join("data")]);
    for dir in candidates {
        if dir.join(dataset).join("train-images-idx3-ubyte.gz").is_file() {
            return Some(dir);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the {dataset} files are not found: set BACKPROP_DATA to the shared data folder");
    }
    eprintln!("SKIPPED: the {dataset} files are not found (set BACKPROP_DATA)");
    None
}
