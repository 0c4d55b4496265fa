//! `nnb`: the nnbundle command line.
//!
//! Exit codes: 0 when all is well, 1 when the bundle or an input is bad
//! (or, for `diff`, when the bundles differ), 2 for usage and I/O errors.

mod commands;
mod output;
mod render;
mod weights;

use std::process::ExitCode;

use clap::Parser;

/// An error with the exit code it maps to.
#[derive(Debug)]
pub(crate) enum Failure {
    /// The bundle or an input is bad (exit 1).
    Bad(anyhow::Error),
    /// Usage or I/O (exit 2).
    Io(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e = e.into();
        // File-system failures (missing file, no permission, full disk) are I/O;
        // malformed data surfacing through a reader (InvalidData, UnexpectedEof) is a bad input.
        let io = e.chain().any(|c| {
            c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                !matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof)
            })
        });
        if io { Failure::Io(e) } else { Failure::Bad(e) }
    }
}

/// What a command returns.
pub(crate) type Outcome = Result<ExitCode, Failure>;

/// Build, check, run and compare nnbundle files (.nnb): a declarative layer
/// graph plus SHA-256-hashed weights in one zip archive.
#[derive(Parser)]
#[command(name = "nnb", version, about, long_about = None, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: commands::Command,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(Failure::Bad(e)) => {
            output::error(&e);
            ExitCode::from(1)
        }
        Err(Failure::Io(e)) => {
            output::error(&e);
            ExitCode::from(2)
        }
    }
}
