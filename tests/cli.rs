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
    // The training state too, metadata included (sorted, not in a HashMap's order).
    let a = std::fs::read(straight.join("training_state.safetensors")).unwrap();
    let b = std::fs::read(resumed.join("training_state.safetensors")).unwrap();
    assert!(a == b, "two runs' training_state.safetensors differ");
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
    let err = fails(&data, &["train", "--stop-after", "0"]);
    assert!(err.contains("--stop-after 0"), "{err}");
    let err = fails(&data, &["train", "--weight-decay", "NaN"]);
    assert!(err.contains("--weight-decay is not a number"), "{err}");
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

// ---------------------------------------------------------------------------------------
// Issue 20, "a run folder nothing can corrupt": one test per reproduction. `base` is a run
// stopped after epoch 1 of 2; each test damages a copy of it, then resumes.

/// A run of 784-32-10 stopped after epoch 1 of 2 (momentum 0.9), in a fresh folder.
fn stopped_run(data: &Path, name: &str) -> Temp {
    let dir = temp(name);
    short_run(data, &dir, &["--epochs", "2", "--stop-after", "1"]);
    dir
}

/// `train --resume dir --epochs 2`, which must fail without a panic; its stderr.
fn resume_fails(data: &Path, dir: &Path) -> String {
    let out = run(data, &["train", "--resume", dir.to_str().unwrap(), "--epochs", "2"]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr
}

fn edit_config(dir: &Path, edit: impl FnOnce(&mut serde_json::Value)) {
    let path = dir.join("config.json");
    let mut config: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    edit(&mut config);
    std::fs::write(&path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
}

/// Fault 1: `"arch": []` in config.json panicked (index out of bounds); now every field of a
/// resumed run's config.json is checked, and the error names the file and the field.
#[test]
fn resume_with_an_empty_arch_names_the_file_and_field() {
    let Some(data) = data_dir() else { return };
    let dir = stopped_run(&data, "empty-arch");
    edit_config(&dir, |c| c["arch"] = serde_json::json!([]));
    let err = resume_fails(&data, &dir);
    let field = format!("{}: field `arch`", dir.join("config.json").display());
    assert!(
        err.contains(&field) && err.contains("at least an input and an output"),
        "{err}"
    );
    // The other fields too, each named.
    for (pointer, value, field) in [
        ("/fit/lr", serde_json::json!(-1.0), "fit.lr"),
        ("/fit/momentum", serde_json::json!(1.5), "fit.momentum"),
        ("/fit/batch_size", serde_json::json!(0), "fit.batch_size"),
        ("/arch", serde_json::json!([784, 32, 0, 10]), "arch"),
        ("/init", serde_json::json!("magic"), "init"),
    ] {
        let dir = stopped_run(&data, &format!("bad-{field}"));
        edit_config(&dir, |c| *c.pointer_mut(pointer).unwrap() = value);
        let err = resume_fails(&data, &dir);
        assert!(err.contains(&format!("field `{field}`")), "{field}: {err}");
    }
}

/// Fault 6: config.json's arch edited to 784-100-10 on a 784-32-10 checkpoint resumed and kept
/// the wrong arch; now the checkpoint is checked against the config.
#[test]
fn resume_checks_the_config_against_the_checkpoint() {
    let Some(data) = data_dir() else { return };
    let dir = stopped_run(&data, "arch-mismatch");
    edit_config(&dir, |c| c["arch"] = serde_json::json!([784, 100, 10]));
    let err = resume_fails(&data, &dir);
    assert!(
        err.contains("training_state.safetensors")
            && err.contains("holds a 784-32-10 network")
            && err.contains("784-100-10"),
        "{err}"
    );
    // A checkpoint with momentum buffers resumed as if without momentum.
    let dir = stopped_run(&data, "momentum-mismatch");
    edit_config(&dir, |c| c["fit"]["momentum"] = serde_json::json!(0.0));
    let err = resume_fails(&data, &dir);
    assert!(
        err.contains("momentum buffer") && err.contains("`fit.momentum` is 0"),
        "{err}"
    );
}

/// Rewrites `dir/training_state.safetensors` with `edit` applied to its tensors (name, shape,
/// f32 values), keeping its metadata.
fn edit_state(dir: &Path, edit: impl FnOnce(&mut Vec<(String, Vec<usize>, Vec<f32>)>)) {
    use safetensors::{tensor::TensorView, Dtype, SafeTensors};
    let path = dir.join("training_state.safetensors");
    let bytes = std::fs::read(&path).unwrap();
    let (_, header) = SafeTensors::read_metadata(&bytes).unwrap();
    let metadata = header.metadata().clone();
    let file = SafeTensors::deserialize(&bytes).unwrap();
    let mut tensors: Vec<(String, Vec<usize>, Vec<f32>)> = file
        .tensors()
        .into_iter()
        .map(|(name, view)| {
            let values = view
                .data()
                .chunks_exact(4)
                .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
                .collect();
            (name, view.shape().to_vec(), values)
        })
        .collect();
    edit(&mut tensors);
    let raw: Vec<(String, Vec<usize>, Vec<u8>)> = tensors
        .into_iter()
        .map(|(n, s, v)| (n, s, v.iter().flat_map(|x| x.to_le_bytes()).collect()))
        .collect();
    let views: Vec<(&str, TensorView)> = raw
        .iter()
        .map(|(n, s, b)| (n.as_str(), TensorView::new(Dtype::F32, s.clone(), b).unwrap()))
        .collect();
    std::fs::write(&path, safetensors::serialize(views, metadata).unwrap()).unwrap();
}

/// Fault 5: a momentum buffer reshaped to [1, 1] or enlarged to [100, 784], or missing, was
/// accepted on resume; now each buffer is checked against its parameter's shape, and a missing
/// one is an error (with momentum).
#[test]
fn resume_refuses_a_wrong_shaped_or_missing_momentum_buffer() {
    let Some(data) = data_dir() else { return };
    for (case, shape) in [("small", vec![1, 1]), ("large", vec![100, 784])] {
        let dir = stopped_run(&data, &format!("velocity-{case}"));
        edit_state(&dir, |tensors| {
            let v = tensors.iter_mut().find(|t| t.0 == "velocity.0.weight").unwrap();
            v.2 = vec![0.5; shape.iter().product()];
            v.1 = shape.clone();
        });
        let err = resume_fails(&data, &dir);
        assert!(
            err.contains("training_state.safetensors")
                && err.contains(&format!("`velocity.0.weight` has shape {shape:?}"))
                && err.contains("[32, 784]"),
            "{err}"
        );
    }
    let dir = stopped_run(&data, "velocity-missing");
    edit_state(&dir, |tensors| tensors.retain(|t| t.0 != "velocity.2.bias"));
    let err = resume_fails(&data, &dir);
    assert!(err.contains("`velocity.2.bias` is missing"), "{err}");
}

/// Fault 4: the "already holds a run" guard looked only at model.safetensors, so a folder
/// without it (a write cut off) was overwritten by a new run; now any part of a run counts.
#[test]
fn a_new_run_refuses_a_folder_with_any_part_of_a_run() {
    let Some(data) = data_dir() else { return };
    let dir = stopped_run(&data, "parts");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    let state = std::fs::read(dir.join("training_state.safetensors")).unwrap();
    let metrics = std::fs::read(dir.join("metrics.csv")).unwrap();
    let err = fails(&data, &["train", "--out", dir.to_str().unwrap(), "--epochs", "1"]);
    assert!(
        err.contains("already holds a run") && err.contains("training_state.safetensors"),
        "{err}"
    );
    assert_eq!(std::fs::read(dir.join("training_state.safetensors")).unwrap(), state);
    assert_eq!(std::fs::read(dir.join("metrics.csv")).unwrap(), metrics);
    // Only a temporary file left by a killed write is a part of a run too.
    let other = temp("parts-temp");
    std::fs::create_dir_all(&*other).unwrap();
    std::fs::write(other.join(".training_state.safetensors.12345.tmp"), b"half").unwrap();
    let err = fails(&data, &["train", "--out", other.to_str().unwrap(), "--epochs", "1"]);
    assert!(err.contains("already holds a run"), "{err}");
    // An empty folder is not.
    let empty = temp("parts-empty");
    std::fs::create_dir_all(&*empty).unwrap();
    short_run(&data, &empty, &["--epochs", "1"]);
}

/// Fault 3: `--arch 784-100000000-10` aborted with "memory allocation of 313600000000 bytes
/// failed"; now the sizes are checked before anything is allocated.
#[test]
fn absurd_sizes_are_refused_before_allocating() {
    let Some(data) = data_dir() else { return };
    for arch in ["784-100000000-10", "784-18446744073709551615-10"] {
        let out = temp("absurd");
        let result = run(&data, &["train", "--arch", arch, "--out", out.to_str().unwrap()]);
        let stderr = String::from_utf8_lossy(&result.stderr);
        assert_eq!(result.status.code(), Some(1), "{arch}: {stderr}");
        assert!(stderr.contains(arch) && !stderr.contains("panicked"), "{stderr}");
        assert!(
            stderr.contains("hidden units") || stderr.contains("does not fit"),
            "{stderr}"
        );
        assert!(!out.exists(), "nothing is written for a refused flag");
    }
    let result = run(&data, &["train", "--arch", "784-100000000-10"]);
    assert!(String::from_utf8_lossy(&result.stderr).contains("GB of memory"));
}

/// Fault 2: `train | head` panicked in a rayon worker ("failed printing to stdout: Broken
/// pipe") and `> /dev/full` panicked; now a closed stdout ends the run quietly with status 141
/// after a whole epoch's checkpoint, and other write errors are an error message.
#[cfg(unix)]
#[test]
fn a_closed_or_full_stdout_is_no_panic() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let Some(data) = data_dir() else { return };
    let dir = temp("epipe");
    let mut child = Command::new(xtask())
        .args(short_run_args(&dir, &["--epochs", "3"]))
        .env("BACKPROP_DATA", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        // As `| head`: read up to epoch 1's line, then hang up.
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.starts_with("epoch   1/3") {
            line.clear();
            assert!(stdout.read_line(&mut line).unwrap() > 0, "no epoch line");
        }
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(141), "{stderr}");
    assert!(!stderr.contains("panicked") && !stderr.contains("error"), "{stderr}");
    // The folder holds a whole epoch's checkpoint, and resumes.
    ok(&data, &["train", "--resume", dir.to_str().unwrap()]);

    let full = || std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    for args in [vec!["data", "info"], short_run_args(&temp("full"), &["--epochs", "1"])] {
        let out = Command::new(xtask())
            .args(&args)
            .env("BACKPROP_DATA", &data)
            .stdout(full())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("writing to stdout") && stderr.contains("No space left"),
            "{stderr}"
        );
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}

/// Fault 7: two `train --out SAME` started together both ran, mixing their files; now the
/// folder is locked, and a second writer fails at once naming the first one's process.
#[cfg(unix)]
#[test]
fn a_second_writer_of_a_run_folder_fails_at_once() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;

    let Some(data) = data_dir() else { return };
    let dir = temp("lock");
    let mut first = Command::new(xtask())
        .args(short_run_args(&dir, &["--epochs", "4"]))
        .env("BACKPROP_DATA", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Its first line is printed once it holds the lock.
    let mut stdout = BufReader::new(first.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    assert!(line.contains("run folder"), "{line}");
    let busy = format!("is in use by another run (process {})", first.id());
    let err = fails(&data, &short_run_args(&dir, &["--epochs", "1"]));
    assert!(err.contains(&busy), "{err}");
    let err = fails(&data, &["train", "--resume", dir.to_str().unwrap()]);
    assert!(err.contains(&busy), "{err}");
    std::io::copy(&mut stdout, &mut std::io::sink()).unwrap();
    assert!(first.wait().unwrap().success());
    // Released at exit: the folder resumes (here: already done, so refused for that reason).
    let err = fails(&data, &["train", "--resume", dir.to_str().unwrap()]);
    assert!(err.contains("has already run 4 epochs"), "{err}");
}
