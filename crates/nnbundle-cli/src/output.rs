//! Printing: colour only on a terminal (anstream strips it elsewhere), JSON for machines.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) const GOOD: Style = AnsiColor::Green.on_default().bold();
pub(crate) const BAD: Style = AnsiColor::Red.on_default().bold();
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub(crate) const DIM: Style = Style::new().dimmed();
pub(crate) const HEAD: Style = Style::new().bold();

/// An error's message and those of its causes that it does not already
/// include (library messages often include their cause).
pub(crate) fn causes(e: &anyhow::Error) -> Vec<String> {
    let mut said = String::new();
    let mut out = Vec::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if !said.contains(&text) {
            said.push_str(&text);
            out.push(text);
        }
    }
    out
}

/// Prints an error and its causes to stderr.
pub(crate) fn error(e: &anyhow::Error) {
    let mut err = anstream::stderr();
    let causes = causes(e);
    let _ = write!(err, "{BAD}error{BAD:#}: {}", causes.first().map_or("", String::as_str));
    for cause in causes.iter().skip(1) {
        let _ = write!(err, "\n  caused by: {cause}");
    }
    let _ = writeln!(err);
}

/// Prints a value as pretty JSON on stdout.
pub(crate) fn json<T: serde::Serialize>(value: &T) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    let written =
        serde_json::to_writer_pretty(&mut out, value).map_err(std::io::Error::from).and_then(|()| writeln!(out));
    match written {
        // A reader that stopped early (`| head`) is not an error.
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

static QUIET: AtomicBool = AtomicBool::new(false);

/// Silences progress and the one-line reports of finished work (`--quiet`).
pub(crate) fn set_quiet(quiet: bool) {
    QUIET.store(quiet, Ordering::Relaxed);
}

/// Prints the one-line report of finished work (`packed ...`), unless `--quiet`.
pub(crate) fn done(line: std::fmt::Arguments<'_>) {
    if !QUIET.load(Ordering::Relaxed) {
        anstream::println!("{line}");
    }
}

/// Whether progress may be drawn: on a terminal, and not `--quiet`.
fn shows_progress() -> bool {
    !QUIET.load(Ordering::Relaxed) && std::io::stderr().is_terminal()
}

/// A progress bar on stderr over `total` units (`bytes` formats them as sizes); hidden unless [`shows_progress`].
pub(crate) fn progress(message: &str, total: u64, bytes: bool) -> ProgressBar {
    if !shows_progress() {
        return ProgressBar::hidden();
    }
    let template = if bytes {
        "{msg} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}"
    } else {
        "{msg} [{bar:30}] {pos}/{len} {elapsed}"
    };
    let bar = ProgressBar::new(total).with_message(message.to_owned());
    if let Ok(style) = ProgressStyle::with_template(template) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// A spinner on stderr for work that may take a while; hidden unless [`shows_progress`].
pub(crate) fn spinner(message: &str) -> ProgressBar {
    if !shows_progress() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}
