//! Test fixtures: fleets of real test hosts, inventories written for them, and the binary.

pub mod exchanges;
pub mod fleet;
pub mod mp;
pub mod pipeline;
pub mod rolling;
pub mod runs;
pub mod site;
pub mod slow_proxy;
pub mod wait;
pub mod wire;

pub use fleet::Fleet;
pub use mp::{assert_nothing_changed, mp_remote, mp_remote_env, recap_counts, Run};
pub use wait::wait_for;

/// Runs a command on this machine; a failure fails the test with its output. Returns stdout.
pub fn run_ok(command: &mut std::process::Command) -> String {
    let output = command.output().expect("run a command");
    assert!(
        output.status.success(),
        "{command:?} failed: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
