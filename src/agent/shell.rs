//! Running shell commands on the host, from the agent.
//!
//! Most of the agent's checks are one plain command (`systemctl is-active nats-server`,
//! `stat -c %U:%G FILE`): those run without a shell, which halves the processes a re-run
//! starts on a host (a re-run is CPU-bound on a busy fleet). Anything a shell would interpret
//! goes to `sh -c` as written.

use std::io::Read;
use std::process::Stdio;

use tokio::process::Command;

/// A finished command: exit code (None: killed by a signal) and its stdout and stderr together,
/// in order, as a person would have seen them.
#[derive(Debug, Clone)]
pub struct ShellOutput {
    pub code: Option<i32>,
    pub output: String,
}

impl ShellOutput {
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

/// Runs `script` as `sh -c` would, stderr merged into stdout, no stdin.
pub async fn sh(script: &str) -> std::io::Result<ShellOutput> {
    if let Some((words, quiet)) = plain_command(script) {
        match direct(&words, quiet).await {
            // Not on the PATH: the shell says so, in its words and with its exit code (127).
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            done => return done,
        }
    }
    let output = Command::new("sh")
        .arg("-c")
        .arg(format!("exec 2>&1\n{script}"))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .kill_on_drop(true)
        .output()
        .await?;
    Ok(ShellOutput {
        code: output.status.code(),
        output: String::from_utf8_lossy(&output.stdout).into_owned(),
    })
}

/// One command with stdout and stderr on one pipe (stderr dropped when `quiet`).
async fn direct(words: &[String], quiet: bool) -> std::io::Result<ShellOutput> {
    let (mut reader, writer) = std::io::pipe()?;
    let stderr: Stdio = if quiet {
        Stdio::null()
    } else {
        writer.try_clone()?.into()
    };
    let mut command = Command::new(&words[0]);
    command
        .args(&words[1..])
        .stdin(Stdio::null())
        .stdout(writer)
        .stderr(stderr)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .env("LC_ALL", "C")
        .kill_on_drop(true);
    let mut child = command.spawn()?;
    // The command holds the pipe's write ends: dropped, the read ends when the child's do.
    drop(command);
    let read = tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        reader.read_to_end(&mut out).map(|_| out)
    });
    let status = child.wait().await?;
    let out = read.await.map_err(std::io::Error::other)??;
    Ok(ShellOutput {
        code: status.code(),
        output: String::from_utf8_lossy(&out).into_owned(),
    })
}

/// Words a shell would take as they are, or a keyword or builtin that only a shell runs.
const SHELL_ONLY: &[&str] = &[
    ".", ":", "[", "{", "}", "!", "alias", "bg", "break", "case", "cd", "command", "continue",
    "do", "done", "echo", "elif", "else", "esac", "eval", "exec", "exit", "export", "false", "fc",
    "fg", "fi", "for", "getopts", "hash", "if", "in", "jobs", "kill", "local", "newgrp", "printf",
    "pwd", "read", "readonly", "return", "set", "shift", "source", "test", "then", "times", "trap",
    "true", "type", "ulimit", "umask", "unalias", "unset", "until", "wait", "while",
];

/// The words of `script` when it is one plain command: words of letters, digits and
/// `-_./:=,%@+`, single-quoted strings, and an optional trailing `2>/dev/null` (true: stderr
/// dropped). None for anything else a shell would interpret (variables, globs, pipes, other
/// redirections, several commands, an assignment, a builtin).
fn plain_command(script: &str) -> Option<(Vec<String>, bool)> {
    let script = script.trim();
    let (script, quiet) = match script.strip_suffix(" 2>/dev/null") {
        Some(rest) => (rest, true),
        None => (script, false),
    };
    let mut words = Vec::new();
    let mut word = String::new();
    let (mut in_word, mut quoted) = (false, false);
    for c in script.chars() {
        if quoted {
            match c {
                '\'' => quoted = false,
                c => word.push(c),
            }
            continue;
        }
        match c {
            '\'' => (quoted, in_word) = (true, true),
            ' ' | '\t' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            c if c.is_ascii_alphanumeric() || "-_./:=,%@+".contains(c) => {
                word.push(c);
                in_word = true;
            }
            _ => return None,
        }
    }
    if quoted {
        return None;
    }
    if in_word {
        words.push(word);
    }
    let first = words.first()?;
    if first.is_empty() || first.contains('=') || SHELL_ONLY.contains(&first.as_str()) {
        return None;
    }
    Some((words, quiet))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(script: &str) -> Option<(Vec<&'static str>, bool)> {
        plain_command(script).map(|(w, q)| {
            (
                w.into_iter()
                    .map(|s| &*Box::leak(s.into_boxed_str()))
                    .collect(),
                q,
            )
        })
    }

    #[test]
    fn one_plain_command_runs_without_a_shell() {
        assert_eq!(
            words("systemctl is-active nats-server"),
            Some((vec!["systemctl", "is-active", "nats-server"], false))
        );
        assert_eq!(
            words("stat -c '%U:%G %a' '/var/lib/my dir' 2>/dev/null"),
            Some((vec!["stat", "-c", "%U:%G %a", "/var/lib/my dir"], true))
        );
        assert_eq!(
            words("dpkg-query -W -f='${Status}|${Version}' nats-server"),
            Some((
                vec!["dpkg-query", "-W", "-f=${Status}|${Version}", "nats-server"],
                false
            ))
        );
        assert_eq!(words("ss -Htlnp"), Some((vec!["ss", "-Htlnp"], false)));
    }

    #[test]
    fn anything_a_shell_would_interpret_goes_to_sh() {
        for script in [
            "command -v apt-get",
            "a && b",
            "ls | head",
            "echo $HOME",
            "rm -rf /tmp/*",
            "cat <file",
            "cmd >out",
            "cmd 2>&1",
            "PIP_NO_CACHE_DIR=1 pip install x",
            "x; y",
            "printf \"%s\" a",
            "cd /tmp",
            "cat ~/x",
            "echo 'unterminated",
            "a\nb",
            "",
        ] {
            assert_eq!(plain_command(script), None, "{script}");
        }
    }

    #[tokio::test]
    async fn both_ways_give_the_same_output_and_exit_code() {
        let direct = sh("ls -d / /nonexistent-mp").await.unwrap();
        let shell = sh("ls -d / /nonexistent-mp; exit $?").await.unwrap();
        assert_eq!(direct.code, shell.code);
        assert_eq!(direct.output, shell.output);
        assert!(direct.output.contains("nonexistent-mp"), "{direct:?}");
        let quiet = sh("ls -d / /nonexistent-mp 2>/dev/null").await.unwrap();
        assert_eq!(quiet.output, "/\n");
        let missing = sh("no-such-command-mp --x").await.unwrap();
        assert_eq!(missing.code, Some(127), "{missing:?}");
    }
}
