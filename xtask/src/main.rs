//! `cargo xtask`: the runner of the backprop workspace.
//!
//! ```text
//! cargo xtask train [flags]                 train an MLP on MNIST (the main job)
//! cargo xtask eval --model CKPT             test accuracy, loss and confusion matrix
//! cargo xtask grads --model M --batch B ... forward + backward on a batch, gradients to a file
//! cargo xtask data info|fetch|verify|show   the datasets
//! cargo xtask init-stats                    the lesson's initialization experiments
//! cargo xtask bench matmul|train|data|peak  benchmarks
//! cargo xtask ci                            what CI runs: fmt, clippy, tests, doc, bench smoke
//! ```
//!
//! Errors are printed with their whole chain and exit with status 1; a training run stopped
//! by Ctrl-C says how to resume it and exits with status 130.

// The doc comments of the command-line structs are clap's `--help` text, written for a
// terminal (`[B, in]`, `<workspace>`), not rustdoc markup.
#![allow(rustdoc::broken_intra_doc_links, rustdoc::invalid_html_tags)]

mod output;

mod bench;
mod choices;
mod ci;
mod data;
mod eval;
mod grads;
mod init_stats;
mod plot;
mod train;

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::output::errln;

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "The backprop runner",
    version
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train an MLP (default: MNIST, 784-50-10, cross-entropy, Kaiming init, SGD).
    Train(train::TrainArgs),
    /// Evaluate a checkpoint on a test set: accuracy, loss, confusion matrix.
    Eval(eval::EvalArgs),
    /// Forward and backward of a checkpoint on a batch; write loss, output and all gradients.
    Grads(grads::GradsArgs),
    /// Inspect, download, verify and look at the datasets.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// Reproduce the lesson's initialization experiments (activation statistics).
    InitStats(init_stats::InitStatsArgs),
    /// Benchmarks: matmul (GFLOP/s), train (seconds per epoch), data (load and batch), peak
    /// (the FMA loop's GFLOP/s).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// What CI runs, stopping at the first failure: fmt --check, clippy -D warnings, cargo test
    /// --workspace, cargo doc -D warnings, and smoke runs of the benchmarks.
    Ci,
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Train(args) => train::run(args),
        Command::Eval(args) => eval::run(args),
        Command::Grads(args) => grads::run(args),
        Command::Data(cmd) => data::run(cmd),
        Command::InitStats(args) => init_stats::run(args),
        Command::Bench(args) => bench::run(args),
        Command::Ci => ci::run(),
    };
    if let Err(err) = result {
        if err.downcast_ref::<output::StdoutClosed>().is_some() {
            // The reader of stdout has all it wanted (`| head`): no message, SIGPIPE's status.
            std::process::exit(output::STDOUT_CLOSED_EXIT_CODE);
        }
        if let Some(interrupted) = err.downcast_ref::<train::Interrupted>() {
            errln!("{interrupted}");
            std::process::exit(train::INTERRUPTED_EXIT_CODE);
        }
        errln!("error: {err}");
        // A library error that shows its cause in its own message (`path: No such file or
        // directory`) also returns it as its source: print each text once.
        let mut shown = err.to_string();
        for cause in err.chain().skip(1) {
            let text = cause.to_string();
            if !shown.ends_with(&text) {
                errln!("  caused by: {text}");
            }
            shown = text;
        }
        std::process::exit(1);
    }
}

/// The workspace root (where `data/` and `runs/` live by default).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask is inside the workspace")
        .to_path_buf()
}

/// `--data-dir`, else `$BACKPROP_DATA`, else `<workspace>/data`.
pub fn data_dir(explicit: Option<&Path>) -> PathBuf {
    backprop_data::resolve_data_dir(explicit, &workspace_root().join("data"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_is_well_formed() {
        Cli::command().debug_assert();
    }

    /// Every subcommand and every flag says what it is for in `--help`.
    #[test]
    fn every_flag_and_subcommand_has_help() {
        fn check(cmd: &clap::Command, path: &str) {
            for arg in cmd.get_arguments() {
                let id = arg.get_id().as_str();
                if id != "help" && id != "version" {
                    assert!(arg.get_help().is_some(), "`{path}` --{id} has no help text");
                }
            }
            for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
                assert!(
                    sub.get_about().is_some(),
                    "`{path} {}` has no help text",
                    sub.get_name()
                );
                check(sub, &format!("{path} {}", sub.get_name()));
            }
        }
        let mut cmd = Cli::command();
        cmd.build();
        check(&cmd, "cargo xtask");
    }
}
