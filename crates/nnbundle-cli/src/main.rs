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
    /// File system or other I/O (exit 2).
    Io(anyhow::Error),
    /// The command line is wrong (exit 2, as clap's own usage errors).
    Usage(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for Failure {
    fn from(e: E) -> Self {
        let e = e.into();
        // File-system failures (missing file, no permission, full disk) are I/O;
        // malformed data surfacing through a reader (InvalidData, UnexpectedEof) is a bad input.
        let io = e.chain().any(|c| {
            let from_fs = c.downcast_ref::<std::io::Error>().is_some_and(|io| {
                !matches!(io.kind(), std::io::ErrorKind::InvalidData | std::io::ErrorKind::UnexpectedEof)
            });
            from_fs || c.downcast_ref::<nnbundle_container::ContainerError>().is_some_and(|c| c.code() == "io")
        });
        if io { Failure::Io(e) } else { Failure::Bad(e) }
    }
}

impl Failure {
    /// A usage error: a malformed argument that clap's parser cannot see.
    pub(crate) fn usage(message: impl std::fmt::Display) -> Self {
        Failure::Usage(anyhow::anyhow!("{message}"))
    }

    fn exit_code(&self) -> u8 {
        match self {
            Failure::Bad(_) => 1,
            Failure::Io(_) | Failure::Usage(_) => 2,
        }
    }

    fn error(&self) -> &anyhow::Error {
        match self {
            Failure::Bad(e) | Failure::Io(e) | Failure::Usage(e) => e,
        }
    }

    /// The stable code and the location of the error, from the library error
    /// in its chain when there is one.
    fn code_and_location(&self) -> (&'static str, Option<String>) {
        let e = self.error();
        for cause in e.chain() {
            if let Some(c) = cause.downcast_ref::<nnbundle_container::ContainerError>() {
                return (c.code(), c.location());
            }
            if let Some(r) = cause.downcast_ref::<nnbundle_runtime::RuntimeError>() {
                return (r.code(), r.location());
            }
            if let Some(i) = cause.downcast_ref::<nnbundle_onnx::ImportError>() {
                return (i.code(), None);
            }
        }
        match self {
            Failure::Usage(_) => ("usage", None),
            Failure::Io(_) => ("io", None),
            Failure::Bad(_) => ("invalid-input", None),
        }
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
    /// No progress bars and no report of finished work (results and errors still print).
    #[arg(short, long, global = true)]
    quiet: bool,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    output::set_quiet(cli.quiet);
    let as_json = cli.command.wants_json();
    match commands::run(cli.command) {
        Ok(code) => code,
        Err(failure) => {
            output::error(failure.error());
            if as_json {
                // Scripts reading stdout get data even when the command fails.
                let (code, location) = failure.code_and_location();
                let message = output::causes(failure.error()).join(": ");
                let _ = output::json(&serde_json::json!({
                    "error": {"code": code, "message": message, "location": location}
                }));
            }
            ExitCode::from(failure.exit_code())
        }
    }
}
