//! `facts` on a terminal (a pseudo-terminal from util-linux's `script`): the live view counts
//! hosts as they end, and clearing it leaves every row of the table on screen. Loopback and
//! `connection = "local"` only: no test hosts.

use std::net::TcpListener;
use std::path::Path;
use std::process::Command;

/// 3 hosts on this machine, 2 on a port that refuses, 1 that takes the connection and never
/// speaks SSH: the run lasts `connect_timeout`, long enough for the live view to be drawn.
fn inventory(dir: &Path, refused: u16, mute: u16) -> std::path::PathBuf {
    let mut text = format!(
        "[defaults]\nknown_hosts = \"{}\"\nconnect_timeout = \"2s\"\n\n",
        dir.join("known_hosts").display()
    );
    for name in ["here-1", "here-2", "here-3"] {
        text.push_str(&format!(
            "[[hosts]]\nname = \"{name}\"\nconnection = \"local\"\nroles = [\"collector\"]\n\n"
        ));
    }
    for (name, port) in [("gone-1", refused), ("gone-2", refused), ("mute-1", mute)] {
        text.push_str(&format!(
            "[[hosts]]\nname = \"{name}\"\naddress = \"127.0.0.1\"\nport = {port}\nroles = [\"collector\"]\n\n"
        ));
    }
    let path = dir.join("inv.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// What a terminal shows after `bytes`: the cursor moves, line and screen erases that
/// indicatif and console use, colours dropped.
fn screen(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    let mut lines: Vec<String> = vec![String::new()];
    let (mut row, mut col) = (0usize, 0usize);
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\x1b' if chars.peek() == Some(&'[') => {
                chars.next();
                let mut param = String::new();
                let mut command = ' ';
                for c in chars.by_ref() {
                    if c.is_ascii_alphabetic() {
                        command = c;
                        break;
                    }
                    param.push(c);
                }
                let n: usize = param.parse().unwrap_or(1);
                match command {
                    'A' => row = row.saturating_sub(n),
                    'B' => row += n,
                    'G' => col = n.saturating_sub(1),
                    'K' if param == "2" => lines[row].clear(),
                    'K' => lines[row] = lines[row].chars().take(col).collect(),
                    'J' => {
                        lines[row] = lines[row].chars().take(col).collect();
                        lines.truncate(row + 1);
                    }
                    _ => {}
                }
            }
            '\r' => col = 0,
            '\n' => {
                row += 1;
                col = 0;
            }
            c if c.is_control() => {}
            c => {
                let line = &mut lines[row];
                let mut cells: Vec<char> = line.chars().collect();
                while cells.len() < col {
                    cells.push(' ');
                }
                if col < cells.len() {
                    cells[col] = c;
                } else {
                    cells.push(c);
                }
                *line = cells.into_iter().collect();
                col += 1;
            }
        }
        while lines.len() <= row {
            lines.push(String::new());
        }
    }
    lines
}

#[test]
fn facts_on_a_terminal_keeps_every_row_and_counts_hosts_as_they_end() {
    if Command::new("script").arg("--version").output().is_err() {
        eprintln!("skipped: no `script` (util-linux) to give mp-remote a terminal");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let refused = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    };
    let mute = TcpListener::bind("127.0.0.1:0").unwrap();
    let inv = inventory(dir.path(), refused, mute.local_addr().unwrap().port());
    let command = format!(
        "{} -i {} facts",
        env!("CARGO_BIN_EXE_mp-remote"),
        inv.display()
    );
    let output = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .env_remove("SSH_AUTH_SOCK")
        .env_remove("MP_REMOTE_INVENTORY")
        .env_remove("NO_COLOR")
        .env("TERM", "xterm")
        .output()
        .expect("run script");
    drop(mute);
    let raw = String::from_utf8_lossy(&output.stdout).into_owned();
    let shown = screen(&output.stdout).join("\n");
    assert_eq!(output.status.code(), Some(3), "{shown}\n--- raw:\n{raw:?}");
    // Drawn while the mute host still connects: the five others already counted.
    assert!(raw.contains("5/6 hosts done"), "live view: {raw:?}");
    for host in ["here-1", "here-2", "here-3", "gone-1", "gone-2", "mute-1"] {
        let row = shown
            .lines()
            .find(|l| l.starts_with(host))
            .unwrap_or_else(|| panic!("no row for {host} on screen:\n{shown}\n--- raw:\n{raw:?}"));
        if host.starts_with("here") {
            assert!(row.contains(" ok "), "{row}");
        } else {
            assert!(row.contains("unreachable"), "{row}");
            assert!(row.contains(&format!("{host}: ")), "its error: {row}");
        }
    }
    assert!(
        shown.contains("3 of 6 hosts not ok: 3 unreachable (exit 3)"),
        "{shown}"
    );
}
