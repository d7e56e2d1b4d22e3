//! Diagnostics go to stderr through tracing; results go to stdout.

use std::io::IsTerminal;

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
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .with_target(false)
        .try_init();
}
