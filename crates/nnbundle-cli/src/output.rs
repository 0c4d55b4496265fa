//! Printing: colour only on a terminal (anstream strips it elsewhere), JSON for machines.

use std::io::{IsTerminal, Write};

use anstyle::{AnsiColor, Style};
use indicatif::{ProgressBar, ProgressStyle};

pub(crate) const GOOD: Style = AnsiColor::Green.on_default().bold();
pub(crate) const BAD: Style = AnsiColor::Red.on_default().bold();
pub(crate) const WARN: Style = AnsiColor::Yellow.on_default().bold();
pub(crate) const DIM: Style = Style::new().dimmed();
pub(crate) const HEAD: Style = Style::new().bold();

/// Prints an error and its causes to stderr.
pub(crate) fn error(e: &anyhow::Error) {
    let mut err = anstream::stderr();
    let mut said = e.to_string();
    let _ = write!(err, "{BAD}error{BAD:#}: {said}");
    for cause in e.chain().skip(1) {
        // Library messages often include their cause already.
        let text = cause.to_string();
        if !said.contains(&text) {
            let _ = write!(err, "\n  caused by: {text}");
            said.push_str(&text);
        }
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

/// A spinner on stderr for work that may take a while; hidden unless stderr is a terminal.
pub(crate) fn spinner(message: &str) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner().with_message(message.to_owned());
    if let Ok(style) = ProgressStyle::with_template("{spinner} {msg} {elapsed}") {
        bar.set_style(style);
    }
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    bar
}
