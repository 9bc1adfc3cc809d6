//! End-to-end runs of `cargo xtask` on the real MNIST files: training, resuming, reproducibility
//! across thread counts, evaluation, gradients, data commands, and clear errors.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

fn data_dir() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let candidates = std::env::var_os("BACKPROP_DATA")
        .map(PathBuf::from)
        .into_iter()
        .chain([root.join("../shared/data"), root.join("data")]);
    for dir in candidates {
        if dir.join("mnist/train-images-idx3-ubyte.gz").is_file() {
            return Some(dir);
        }
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but MNIST is not found: set BACKPROP_DATA");
    }
    eprintln!("SKIPPED: MNIST not found (set BACKPROP_DATA)");
    None
}

/// The xtask binary, built once (in the test profile, with optimized kernels).
fn xtask() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "-q", "-p", "xtask"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // Without the variables cargo set for this test (the package's name, version and
        // folder): build scripts that watch them (ring's does) would otherwise see them change
        // between this build and a plain `cargo build`, and rebuild each time (~25 s).
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            let set_for_this_test = [
                "CARGO_PKG_",
                "CARGO_MANIFEST_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || name == "CARGO_TARGET_TMPDIR"
                || name == "OUT_DIR";
            if set_for_this_test {
                build.env_remove(name.as_ref());
            }
        }
        let status = build.status().expect("cargo runs");
        assert!(status.success(), "building xtask failed");
        // Where that build went: `CARGO_TARGET_DIR` when set (relative to the folder it ran
        // in), else the workspace's `target/`.
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), |dir| root.join(dir));
        target.join("debug/xtask")
    })
}

fn run(data: &Path, args: &[&str]) -> Output {
    Command::new(xtask())
        .args(args)
        .env("BACKPROP_DATA", data)
        .output()
        .expect("xtask runs")
}

fn ok(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{args:?} failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

fn fails(data: &Path, args: &[&str]) -> String {
    let out = run(data, args);
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A path under the system's temporary folder for one test's outputs (a run folder or a
/// file), removed when the test ends, passed or failed.
struct Temp(PathBuf);

impl std::ops::Deref for Temp {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Temp {
    fn remove(&self) {
        let _ = std::fs::remove_dir_all(&self.0);
        let _ = std::fs::remove_file(&self.0);
    }
}

impl Drop for Temp {
    fn drop(&mut self) {
        self.remove();
    }
}

/// `backprop-cli-<pid>-<name>`, absent at first (left over from nothing).
fn temp(name: &str) -> Temp {
    let path = Temp(std::env::temp_dir().join(format!("backprop-cli-{}-{name}", std::process::id())));
    path.remove();
    path
}

/// The arguments of a short run into `out`: 784-32-10 on the fastai split, batch 256, then
/// `extra` (each caller gives `--epochs`).
fn short_run_args<'a>(out: &'a Path, extra: &[&'a str]) -> Vec<&'a str> {
    let mut args = vec![
        "train",
        "--split",
        "fastai",
        "--arch",
        "784-32-10",
        "--batch-size",
        "256",
        "--lr",
        "0.1",
        "--seed",
        "3",
        "--out",
        out.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    args
}

/// A short run (see [`short_run_args`]) that must succeed; its stdout.
fn short_run(data: &Path, out: &Path, extra: &[&str]) -> String {
    ok(data, &short_run_args(out, extra))
}

#[test]
fn train_writes_every_output_and_json() {
    let Some(data) = data_dir() else { return };
    let out = temp("train");
    let stdout = short_run(&data, &out, &["--epochs", "2", "--json"]);
    let last = stdout.lines().last().unwrap();
    let summary: serde_json::Value = serde_json::from_str(last).unwrap();
    assert_eq!(summary["epochs"], 2);
    assert!(summary["test_accuracy"].as_f64().unwrap() > 0.9, "{summary}");
    assert_eq!(summary["epoch_seconds"].as_array().unwrap().len(), 2);
    for key in ["test_loss", "train_seconds", "samples_per_second", "checkpoint"] {
        assert!(!summary[key].is_null(), "{key} missing in {summary}");
    }
    for file in [
        "model.safetensors",
        "training_state.safetensors",
        "metrics.csv",
        "config.json",
        "curves.png",
    ] {
        assert!(out.join(file).is_file(), "{file} missing");
    }
    let csv = std::fs::read_to_string(out.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["normalization"]["scale"], 256.0);
    assert!((config["normalization"]["mean"].as_f64().unwrap() - 0.130450).abs() < 1e-6);
    // A second run into the same folder is refused rather than overwriting it.
    let err = fails(&data, &["train", "--out", out.to_str().unwrap(), "--epochs", "1"]);
    assert!(err.contains("already holds a run") && err.contains("--resume"), "{err}");

    let eval = ok(
        &data,
        &["eval", "--model", out.join("model.safetensors").to_str().unwrap()],
    );
    assert!(eval.contains("accuracy") && eval.contains("confusion matrix"), "{eval}");
}

#[test]
fn resumed_and_threaded_runs_are_bit_identical() {
    let Some(data) = data_dir() else { return };
    let straight = temp("straight");
    short_run(
        &data,
        &straight,
        &[
            "--epochs",
            "2",
            "--momentum",
            "0.9",
            "--schedule",
            "one-cycle",
            "--threads",
            "2",
        ],
    );
    let resumed = temp("resumed");
    let stdout = short_run(
        &data,
        &resumed,
        &[
            "--epochs",
            "2",
            "--momentum",
            "0.9",
            "--schedule",
            "one-cycle",
            "--threads",
            "1",
            "--stop-after",
            "1",
        ],
    );
    assert!(stdout.contains("stopped after epoch 1 of 2"), "{stdout}");

    // Changing a setting on resume is refused.
    let err = fails(
        &data,
        &[
            "train",
            "--resume",
            resumed.to_str().unwrap(),
            "--epochs",
            "2",
            "--lr",
            "1",
        ],
    );
    assert!(err.contains("--lr cannot be changed"), "{err}");
    ok(
        &data,
        &[
            "train",
            "--resume",
            resumed.to_str().unwrap(),
            "--epochs",
            "2",
            "--threads",
            "2",
        ],
    );
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(resumed.join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "a run stopped after epoch 1 and resumed differs from one that never stopped"
    );
    let csv = std::fs::read_to_string(resumed.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 3, "{csv}");
}

/// Ctrl-C (SIGINT) in the middle of an epoch: the run stops at the next batch with status
/// 130, the folder keeps the last whole epoch's checkpoint, and resuming from it ends with the
/// bits of a run that was never interrupted.
#[cfg(unix)]
#[test]
fn ctrl_c_stops_the_run_and_it_resumes_to_the_same_bits() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let Some(data) = data_dir() else { return };
    let straight = temp("ctrl-c-straight");
    short_run(&data, &straight, &["--epochs", "3"]);

    let stopped = temp("ctrl-c");
    let mut child = Command::new(xtask())
        .args(short_run_args(&stopped, &["--epochs", "3"]))
        .env("BACKPROP_DATA", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("xtask runs");
    // Interrupt as soon as epoch 1 is reported: in the middle of epoch 2.
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    while !line.starts_with("epoch   1/3") {
        line.clear();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the run ended before epoch 1 was reported"
        );
    }
    let status = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(130), "{stderr}");
    // Sent just after epoch 1 was reported, the signal lands in epoch 2 (or, on a machine
    // slow enough to stall this test for a whole epoch, in epoch 3): the message names the
    // epoch it stopped in and the one before it, whose checkpoint the folder holds.
    let done = (1..3)
        .find(|k| stderr.contains(&format!("in epoch {} of 3", k + 1)))
        .unwrap_or_else(|| panic!("no epoch named: {stderr}"));
    assert!(
        stderr.contains(&format!("holds the checkpoint of epoch {done}")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("cargo xtask train --resume {}", stopped.display())),
        "{stderr}"
    );
    let csv = std::fs::read_to_string(stopped.join("metrics.csv")).unwrap();
    assert_eq!(csv.lines().count(), 1 + done, "a header and the whole epochs: {csv}");

    ok(&data, &["train", "--resume", stopped.to_str().unwrap()]);
    let a = std::fs::read(straight.join("model.safetensors")).unwrap();
    let b = std::fs::read(stopped.join("model.safetensors")).unwrap();
    assert!(
        a == b,
        "a run interrupted by Ctrl-C and resumed differs from one never stopped"
    );

    // A folder whose run stopped before its first epoch ended holds only its config.
    let unfinished = temp("ctrl-c-unfinished");
    std::fs::create_dir_all(&*unfinished).unwrap();
    std::fs::copy(stopped.join("config.json"), unfinished.join("config.json")).unwrap();
    let err = fails(&data, &["train", "--resume", unfinished.to_str().unwrap()]);
    assert!(err.contains("has no checkpoint to resume from"), "{err}");
    // An I/O error names the file, and its cause is printed once (the library's message
    // includes it and also returns it as its source).
    let state = unfinished.join("training_state.safetensors");
    std::fs::create_dir(&state).unwrap();
    let err = fails(&data, &["train", "--resume", unfinished.to_str().unwrap()]);
    assert!(err.contains(&format!("{}: ", state.display())), "{err}");
    assert_eq!(err.matches("Is a directory").count(), 1, "{err}");
}

#[test]
fn a_diverging_run_stops_with_a_clear_error() {
    let Some(data) = data_dir() else { return };
    let out = temp("nan");
    let err = fails(
        &data,
        &["train", "--epochs", "1", "--lr", "1e30", "--out", out.to_str().unwrap()],
    );
    assert!(
        err.contains("the loss is") && err.contains("epoch 1, batch") && err.contains("lower learning rate"),
        "{err}"
    );
}

#[test]
fn bad_flags_are_explained() {
    let Some(data) = data_dir() else { return };
    let err = fails(&data, &["train", "--loss", "mse", "--arch", "784-50-10"]);
    assert!(err.contains("needs 1 output"), "{err}");
    let err = fails(&data, &["train", "--arch", "784-x-10"]);
    assert!(err.contains("784-x-10"), "{err}");
    let err = fails(&data, &["train", "--arch", "100-10"]);
    assert!(err.contains("784 pixels"), "{err}");
    let err = fails(&data, &["train", "--init", "magic"]);
    assert!(err.contains("magic"), "{err}");
    let err = fails(&data, &["train", "--split", "odd"]);
    assert!(err.contains("odd"), "{err}");
    let err = fails(&data, &["train", "--dataset", "cifar"]);
    assert!(err.contains("cifar"), "{err}");
    let err = fails(&data, &["train", "--epochs", "0"]);
    assert!(err.contains("--epochs must be at least 1"), "{err}");
}

#[test]
fn regression_with_mse_trains() {
    let Some(data) = data_dir() else { return };
    let out = temp("mse");
    let stdout = ok(
        &data,
        &[
            "train",
            "--loss",
            "mse",
            "--epochs",
            "1",
            "--lr",
            "0.01",
            "--momentum",
            "0",
            "--out",
            out.to_str().unwrap(),
            "--json",
        ],
    );
    let summary: serde_json::Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    // Rounding a regression to the digit value is a weak classifier, but far above chance.
    assert!(summary["test_accuracy"].as_f64().unwrap() > 0.3, "{summary}");
}

#[test]
fn data_info_json_has_the_published_statistics() {
    let Some(data) = data_dir() else { return };
    let stdout = ok(&data, &["data", "info", "--json"]);
    let info: serde_json::Value = serde_json::from_str(stdout.trim()).unwrap();
    let train = &info["splits"]["train"];
    assert_eq!(train["n"], 60000);
    assert!((train["mean"].as_f64().unwrap() - 0.130660).abs() < 5e-7);
    assert!((train["std"].as_f64().unwrap() - 0.308108).abs() < 5e-7);
    assert!(train["norm_mean"].as_f64().unwrap().abs() < 1e-9);
    assert_eq!(info["splits"]["test"]["label_counts"].as_array().unwrap().len(), 10);
    let verify = ok(&data, &["data", "verify"]);
    assert_eq!(verify.lines().filter(|l| l.starts_with("ok")).count(), 4, "{verify}");
    let png = temp("show.png");
    ok(
        &data,
        &["data", "show", "--count", "12", "--out", png.to_str().unwrap()],
    );
    assert!(std::fs::read(&*png).unwrap().starts_with(b"\x89PNG"));
}

/// A batch file for `grads`: `x` f32 [rows, 784] of fixed values, `y` i64 class indices.
fn write_batch(path: &Path, rows: usize, labels: &[i64]) {
    use safetensors::{tensor::TensorView, Dtype};
    let x: Vec<u8> = (0..rows * 784)
        .flat_map(|i| ((i % 97) as f32 / 97.0).to_le_bytes())
        .collect();
    let y: Vec<u8> = labels.iter().flat_map(|v| v.to_le_bytes()).collect();
    let x_view = TensorView::new(Dtype::F32, vec![rows, 784], &x).unwrap();
    let y_view = TensorView::new(Dtype::I64, vec![labels.len()], &y).unwrap();
    std::fs::write(
        path,
        safetensors::serialize(vec![("x", x_view), ("y", y_view)], None).unwrap(),
    )
    .unwrap();
}

#[test]
fn grads_writes_loss_output_and_every_gradient() {
    let Some(data) = data_dir() else { return };
    let out = temp("grads");
    short_run(&data, &out, &["--epochs", "1"]);
    // A batch file: x [3, 784] f32, y [3] i64.
    let batch = out.join("batch.safetensors");
    write_batch(&batch, 3, &[1, 7, 3]);
    let grads = out.join("grads.safetensors");
    ok(
        &data,
        &[
            "grads",
            "--model",
            out.join("model.safetensors").to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
            "--loss",
            "ce",
            "--out",
            grads.to_str().unwrap(),
        ],
    );
    let bytes = std::fs::read(&grads).unwrap();
    let file = safetensors::SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = file.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        ["0.bias", "0.weight", "2.bias", "2.weight", "loss", "output", "x.grad"]
    );
    assert_eq!(file.tensor("x.grad").unwrap().shape(), [3, 784]);
    assert_eq!(file.tensor("output").unwrap().shape(), [3, 10]);
    // A batch whose labels do not fit is refused with both shapes named.
    write_batch(&batch, 3, &[1, 7]);
    let err = fails(
        &data,
        &[
            "grads",
            "--model",
            out.join("model.safetensors").to_str().unwrap(),
            "--batch",
            batch.to_str().unwrap(),
            "--out",
            grads.to_str().unwrap(),
        ],
    );
    assert!(err.contains("[2]") && err.contains("[3, 784]"), "{err}");
}
