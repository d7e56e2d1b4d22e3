//! Building shell command lines: quoting and privilege escalation. Pure string functions.

/// Quotes `s` for a POSIX shell: bare when it is plainly safe, single-quoted otherwise.
pub fn quote(s: &str) -> String {
    let safe = !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@%+=:,./_-".contains(&b));
    if safe {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// Wraps `command` so that it runs as root through `sudo -n` when `become` is set.
/// `-n` makes sudo fail at once instead of waiting for a password nobody will type.
pub fn with_become(command: &str, become_root: bool) -> String {
    if become_root {
        format!("sudo -n -- sh -c {}", quote(command))
    } else {
        command.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_only_what_needs_it() {
        assert_eq!(quote("/opt/marketprism"), "/opt/marketprism");
        assert_eq!(quote(""), "''");
        assert_eq!(quote("a b"), "'a b'");
        assert_eq!(quote("it's"), r"'it'\''s'");
        assert_eq!(quote("$HOME"), "'$HOME'");
    }

    #[test]
    fn become_wraps_in_sudo_non_interactive() {
        assert_eq!(with_become("id -u", false), "id -u");
        assert_eq!(with_become("id -u", true), "sudo -n -- sh -c 'id -u'");
    }
}
