//! Diagnostics go to stderr through tracing; results go to stdout.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use indicatif::ProgressBar;

/// The live view while it is drawn: log lines are written with it cleared, then it is drawn
/// again below them, so a warning during a run (a re-attach, a retry) does not tear it.
static LIVE_VIEW: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// Sets (or, with None, clears) the live view that log lines must not tear.
pub fn set_live_view(bar: Option<ProgressBar>) {
    *LIVE_VIEW.lock().unwrap_or_else(|e| e.into_inner()) = bar;
}

/// stderr, written around the live view.
struct AroundLiveView;

impl Write for AroundLiveView {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = LIVE_VIEW.lock().unwrap_or_else(|e| e.into_inner()).clone();
        match bar {
            Some(bar) => bar.suspend(|| std::io::stderr().write(buf)),
            None => std::io::stderr().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// The command line: warnings unless `-v`.
pub fn init(verbose: u8, quiet: bool) {
    install(match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "warn",
        (false, 1) => "info",
        (false, _) => "debug",
    });
}

/// The pipeline services log at info by default: their log is the journal.
pub fn init_service(verbose: u8, quiet: bool) {
    install(match (quiet, verbose) {
        (true, _) => "error",
        (false, 0) => "info",
        (false, _) => "debug",
    });
}

/// `MP_REMOTE_LOG` overrides `level`. Colour only on a terminal: the journal and CI logs
/// would show the escape codes.
fn install(level: &str) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MP_REMOTE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("mp_remote={level}")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(|| AroundLiveView)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
