//! Waiting for a condition with a deadline: tests never sleep to synchronise.

use std::time::{Duration, Instant};

/// Polls `condition` every 200 ms until it holds, or panics after `limit_secs`.
pub fn wait_for(what: &str, limit_secs: u64, mut condition: impl FnMut() -> bool) {
    let started = Instant::now();
    while !condition() {
        assert!(
            started.elapsed() < Duration::from_secs(limit_secs),
            "timed out after {limit_secs} s waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
