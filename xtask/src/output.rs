//! Standard output and error that never panic.
//!
//! `println!` panics when stdout goes away (`cargo xtask train | head -9`, `> /dev/full`),
//! and a panic inside a rayon worker takes the run down with a backtrace. Every command
//! prints through [`outln!`] and [`out!`] instead: they return an error, which is
//! [`StdoutClosed`] when the reader hung up (EPIPE; `main` then exits quietly with status
//! 141, as a program killed by SIGPIPE would) and a message naming stdout otherwise (a full
//! disk). [`errln!`] writes to stderr and ignores failures: there is nowhere left to report
//! them.

use std::fmt;
use std::io::{ErrorKind, Write};

/// The reader of stdout went away (EPIPE). Not a failure of the program: `main` exits quietly.
#[derive(Debug)]
pub struct StdoutClosed;

impl fmt::Display for StdoutClosed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("stdout was closed by its reader")
    }
}

impl std::error::Error for StdoutClosed {}

/// The shell's status for a program ended by SIGPIPE (128 + 13).
pub const STDOUT_CLOSED_EXIT_CODE: i32 = 141;

/// Writes `args` to stdout and flushes, so that an error shows here and not at exit.
pub fn write_stdout(args: fmt::Arguments<'_>) -> anyhow::Result<()> {
    let mut stdout = std::io::stdout().lock();
    let result = stdout.write_fmt(args).and_then(|()| stdout.flush());
    match result {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == ErrorKind::BrokenPipe => Err(StdoutClosed.into()),
        Err(e) => Err(anyhow::Error::new(e).context("writing to stdout")),
    }
}

/// Writes `args` to stderr, ignoring failures.
pub fn write_stderr(args: fmt::Arguments<'_>) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_fmt(args);
    let _ = stderr.flush();
}

/// `println!` that returns `anyhow::Result<()>` instead of panicking (see the module).
macro_rules! outln {
    () => {
        $crate::output::write_stdout(format_args!("\n"))
    };
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!("{}\n", format_args!($($arg)*)))
    };
}

/// `print!` that returns `anyhow::Result<()>` instead of panicking.
macro_rules! out {
    ($($arg:tt)*) => {
        $crate::output::write_stdout(format_args!($($arg)*))
    };
}

/// `eprintln!` that never panics (a failure to write to stderr is ignored).
macro_rules! errln {
    ($($arg:tt)*) => {
        $crate::output::write_stderr(format_args!("{}\n", format_args!($($arg)*)))
    };
}

pub(crate) use {errln, out, outln};
