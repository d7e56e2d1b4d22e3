//! Running the mp-remote binary the way a user does.

use std::path::Path;
use std::process::Command;

/// A finished mp-remote run.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| {
            panic!(
                "stdout is not JSON ({e}):\n{}\nstderr:\n{}",
                self.stdout, self.stderr
            )
        })
    }
}

pub fn mp_remote(inventory: Option<&Path>, args: &[&str]) -> Run {
    mp_remote_env(inventory, args, &[])
}

/// [`mp_remote`] with extra environment variables.
pub fn mp_remote_env(inventory: Option<&Path>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut command = Command::new(env!("CARGO_BIN_EXE_mp-remote"));
    command.envs(env.iter().copied());
    if let Some(path) = inventory {
        command.arg("-i").arg(path);
    }
    // The developer's agent must not make a wrong-key test pass.
    command
        .args(args)
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("MP_REMOTE_INVENTORY");
    let output = command.output().expect("run mp-remote");
    Run {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

/// A deploy (or update) that found every host as wanted: exit 0 and says so.
pub fn assert_nothing_changed(run: &Run) {
    assert_eq!(run.code, 0, "{run:?}");
    assert!(run.stdout.contains("nothing changed"), "{}", run.stdout);
}

/// (ok, changed-or-would) from the recap line of `host`.
pub fn recap_counts(stdout: &str, host: &str) -> (usize, usize) {
    let line = stdout
        .lines()
        .skip_while(|l| !l.starts_with("HOST"))
        .find(|l| l.split_whitespace().next() == Some(host))
        .unwrap_or_else(|| panic!("no recap line for {host}:\n{stdout}"));
    let fields: Vec<&str> = line.split_whitespace().collect();
    (fields[2].parse().unwrap(), fields[3].parse().unwrap())
}
