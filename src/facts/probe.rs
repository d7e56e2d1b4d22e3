//! The probe script and the one command line that runs it on a host.

/// The facts probe, POSIX `sh`; its arguments: the deploy directory (default
/// `/opt/marketprism`), then any directories whose `mp-remote-*` agents it lists with sizes. Kept in `probe.sh` so it can be run and linted as a shell script.
pub const PROBE_SCRIPT: &str = include_str!("probe.sh");

/// The remote command for one SSH exec: `sh -c '<PROBE_SCRIPT>' mp-facts '<deploy_dir>'`.
///
/// The script is passed as an argument rather than run by the login shell, so a user whose
/// shell is fish or zsh still gets sh semantics. (The script also works piped into
/// `sh -s -- <deploy_dir>`, e.g. for csh users, whose shell rejects newlines inside quotes.)
pub fn probe_command(deploy_dir: &str) -> String {
    format!(
        "sh -c {} mp-facts {}",
        sh_quote(PROBE_SCRIPT),
        sh_quote(deploy_dir)
    )
}

/// Single-quotes `s` for a POSIX shell: `'` becomes `'\''`.
fn sh_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::process::{Command, Stdio};

    use super::*;
    use crate::facts::{parse, Facts};

    fn has(shell: &str) -> bool {
        Command::new(shell)
            .args(["-c", "exit 0"])
            .status()
            .is_ok_and(|s| s.success())
    }

    fn run(mut cmd: Command, stdin: Option<&str>) -> String {
        cmd.stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn shell");
        if let Some(input) = stdin {
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .unwrap();
        }
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "probe failed: {out:?}");
        assert!(
            out.stderr.is_empty(),
            "probe wrote to stderr: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("probe output is UTF-8")
    }

    fn check_local(facts: &Facts, deploy_dir: &str) {
        assert_eq!(facts.deploy_dir, deploy_dir);
        match std::env::consts::ARCH {
            arch @ ("x86_64" | "aarch64") => assert_eq!(facts.target_arch(), Some(arch)),
            _ => assert!(!facts.arch.is_empty()),
        }
        assert!(!facts.os.id.is_empty());
        assert!(!facts.hostname.is_empty());
        assert!(facts.cpus >= 1, "{facts:?}");
        assert!(facts.memory_bytes > 0, "{facts:?}");
        assert!(!facts.disk_path.is_empty(), "{facts:?}");
        assert!(facts.disk_free_bytes > 0, "{facts:?}");
        assert!(facts.tools.tar, "{facts:?}");
    }

    #[test]
    fn script_runs_under_sh_and_parses() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", PROBE_SCRIPT, "mp-facts", "/opt/marketprism"]);
        let facts = parse(&run(cmd, None)).unwrap();
        check_local(&facts, "/opt/marketprism");
        if cfg!(target_os = "linux") {
            assert!(
                facts.glibc.is_some() || !cfg!(target_env = "gnu"),
                "{facts:?}"
            );
            assert_ne!(facts.ports_source, crate::facts::PortsSource::None);
        }
    }

    #[test]
    fn a_servers_version_is_asked_once_until_its_binary_changes() {
        let dir = tempfile::tempdir().unwrap();
        let (bin, agents) = (dir.path().join("bin"), dir.path().join("agents"));
        std::fs::create_dir_all(&bin).unwrap();
        std::fs::create_dir_all(&agents).unwrap();
        let calls = dir.path().join("calls");
        let server = bin.join("clickhouse-server");
        let fake = |version: &str| {
            std::fs::write(
                &server,
                format!(
                    "#!/bin/sh\necho x >>{}\necho 'ClickHouse server version {version}.'\n",
                    calls.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&server, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        let probe = || {
            let mut cmd = Command::new("sh");
            cmd.args(["-c", PROBE_SCRIPT, "mp-facts", "/opt/marketprism"])
                .arg(&agents)
                .env(
                    "PATH",
                    format!("{}:{}", bin.display(), std::env::var("PATH").unwrap()),
                );
            parse(&run(cmd, None)).unwrap().installed.clickhouse_server
        };
        let asked = || {
            std::fs::read_to_string(&calls)
                .unwrap_or_default()
                .lines()
                .count()
        };
        fake("24.3.1.2672");
        assert_eq!(probe().as_deref(), Some("24.3.1.2672"));
        assert_eq!(probe().as_deref(), Some("24.3.1.2672"));
        assert_eq!(asked(), 1, "the second probe read the cache");
        // Another binary (here: another size) is asked again.
        fake("25.3.2.39");
        assert_eq!(probe().as_deref(), Some("25.3.2.39"));
        assert_eq!(asked(), 2);
    }

    #[test]
    fn script_runs_under_dash_and_bash_posix() {
        for shell in ["dash", "bash"] {
            if !has(shell) {
                continue;
            }
            let mut cmd = Command::new(shell);
            if shell == "bash" {
                cmd.arg("--posix");
            }
            cmd.args(["-c", PROBE_SCRIPT, "mp-facts", "/opt/marketprism"]);
            check_local(&parse(&run(cmd, None)).unwrap(), "/opt/marketprism");
        }
    }

    #[test]
    fn probe_command_survives_a_login_shell_and_odd_deploy_dirs() {
        // A deploy dir that does not exist, with a space and a quote: disk is measured above it.
        let dir = "/tmp/mp facts's test/not/there";
        let mut cmd = Command::new("sh");
        cmd.args(["-c", &probe_command(dir)]);
        let facts = parse(&run(cmd, None)).unwrap();
        check_local(&facts, dir);
        assert_eq!(facts.disk_path, "/tmp");
    }

    #[test]
    fn script_fed_through_stdin_is_not_eaten_by_its_commands() {
        let mut cmd = Command::new("sh");
        cmd.args(["-s", "--", "/opt/marketprism"]);
        check_local(
            &parse(&run(cmd, Some(PROBE_SCRIPT))).unwrap(),
            "/opt/marketprism",
        );
    }

    #[test]
    fn default_deploy_dir() {
        let mut cmd = Command::new("sh");
        cmd.args(["-c", PROBE_SCRIPT, "mp-facts"]);
        check_local(&parse(&run(cmd, None)).unwrap(), "/opt/marketprism");
    }

    #[test]
    fn quoting() {
        assert_eq!(sh_quote("a b"), "'a b'");
        assert_eq!(sh_quote("it's"), r"'it'\''s'");
    }
}
