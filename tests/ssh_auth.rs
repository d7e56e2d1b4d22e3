//! Authentication against real sshd: wrong key, missing key, encrypted key.

use std::process::Command;

use crate::support::{fleet, mp_remote};

fn keygen(path: &std::path::Path, passphrase: &str) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", passphrase, "-C", "", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

#[test]
fn wrong_key_is_an_auth_error_naming_user_and_key() {
    let fleet = fleet::shared();
    let stranger = fleet.path("stranger_key");
    keygen(&stranger, "");
    let known_hosts = fleet.path("auth-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.identity_file = Some(&stranger);
    options.only = &["h2"];
    let inventory = fleet.inventory("wrong-key.toml", &options);

    let run = mp_remote(Some(&inventory), &["ping"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains("authentication failed for user \"root\""),
        "{run:?}"
    );
    assert!(
        run.stdout.contains(&stranger.display().to_string()),
        "{run:?}"
    );
}

#[test]
fn missing_key_file_is_named() {
    let fleet = fleet::shared();
    let known_hosts = fleet.path("missing-known_hosts");
    let missing = fleet.path("no-such-key");
    let mut options = fleet.default_options(&known_hosts);
    options.identity_file = Some(&missing);
    options.only = &["h2"];
    let inventory = fleet.inventory("missing-key.toml", &options);
    let run = mp_remote(Some(&inventory), &["ping"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(
        run.stdout
            .contains(&format!("{} (missing)", missing.display())),
        "{run:?}"
    );
}

#[test]
fn encrypted_key_takes_its_passphrase_from_the_environment() {
    let fleet = fleet::shared();
    let encrypted = fleet.path("encrypted_key");
    std::fs::copy(&fleet.key, &encrypted).unwrap();
    let status = Command::new("ssh-keygen")
        .args(["-q", "-p", "-N", "s3cret", "-f"])
        .arg(&encrypted)
        .status()
        .unwrap();
    assert!(status.success());
    let known_hosts = fleet.path("encrypted-known_hosts");
    let mut options = fleet.default_options(&known_hosts);
    options.identity_file = Some(&encrypted);
    options.only = &["h3"];
    let inventory = fleet.inventory("encrypted.toml", &options);

    // No TTY and no passphrase: a clear error, not a hang.
    let run = mp_remote(Some(&inventory), &["ping"]);
    assert_eq!(run.code, 3, "{run:?}");
    assert!(run.stdout.contains("MP_REMOTE_KEY_PASSPHRASE"), "{run:?}");

    let output = Command::new(env!("CARGO_BIN_EXE_mp-remote"))
        .arg("-i")
        .arg(&inventory)
        .arg("ping")
        .env_remove("SSH_AUTH_SOCK")
        .env("MP_REMOTE_KEY_PASSPHRASE", "s3cret")
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}

#[test]
fn rsa_and_ecdsa_keys_authenticate() {
    let fleet = fleet::shared();
    for (kind, bits) in [("rsa", "3072"), ("ecdsa", "256")] {
        let key = fleet.path(&format!("{kind}_key"));
        if !key.exists() {
            let status = Command::new("ssh-keygen")
                .args(["-q", "-t", kind, "-b", bits, "-N", "", "-C", "", "-f"])
                .arg(&key)
                .status()
                .unwrap();
            assert!(status.success());
        }
        let public = std::fs::read_to_string(key.with_extension("pub")).unwrap();
        fleet.exec(
            "h3",
            &format!("grep -qF '{0}' /root/.ssh/authorized_keys || echo '{0}' >> /root/.ssh/authorized_keys", public.trim()),
        );
        let known_hosts = fleet.path(&format!("{kind}-known_hosts"));
        let mut options = fleet.default_options(&known_hosts);
        options.identity_file = Some(&key);
        options.only = &["h3"];
        let inventory = fleet.inventory(&format!("{kind}.toml"), &options);
        let run = mp_remote(Some(&inventory), &["ping"]);
        assert_eq!(run.code, 0, "{kind}: {run:?}");
    }
}

#[test]
fn ssh_agent_keys_are_used_first() {
    let fleet = fleet::shared();
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("agent.sock");
    let mut agent = Command::new("ssh-agent")
        .args(["-D", "-a"])
        .arg(&socket)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("ssh-agent (openssh-client)");
    let started = std::time::Instant::now();
    while !socket.exists() {
        assert!(
            started.elapsed() < std::time::Duration::from_secs(10),
            "ssh-agent did not start"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let added = Command::new("ssh-add")
        .arg(&fleet.key)
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    assert!(added.status.success(), "{added:?}");
    // No key file at all: only the agent can get us in.
    let known_hosts = fleet.path("agent-known_hosts");
    let missing = fleet.path("no-key-here");
    let mut options = fleet.default_options(&known_hosts);
    options.identity_file = Some(&missing);
    options.only = &["h1"];
    let inventory = fleet.inventory("agent.toml", &options);
    let output = Command::new(env!("CARGO_BIN_EXE_mp-remote"))
        .arg("-i")
        .arg(&inventory)
        .arg("ping")
        .env("SSH_AUTH_SOCK", &socket)
        .output()
        .unwrap();
    let _ = agent.kill();
    let _ = agent.wait();
    assert_eq!(output.status.code(), Some(0), "{output:?}");
}
