//! What an address and a login name may be. Both end up on ssh's and the shell's command
//! lines and in every message, so anything that is not plainly a host name, an IP address or
//! a login name is refused, with the key that says what the user probably meant (`port`,
//! `user`).

use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest DNS name.
const MAX_ADDRESS: usize = 253;
/// The longest DNS label.
const MAX_LABEL: usize = 63;
/// Longer than any login name a Linux system accepts (useradd: 32; some directories: 64+).
const MAX_USER: usize = 128;

/// A problem with a value: what is wrong, and what to write instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    pub problem: String,
    pub hint: String,
}

fn refuse(problem: impl Into<String>, hint: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal {
        problem: problem.into(),
        hint: hint.into(),
    })
}

/// A host name (labels of letters, digits, `-` and `_`), an IPv4 address or an IPv6 address
/// (with an optional `%zone`), nothing else.
pub(crate) fn check_address(text: &str) -> Result<(), Refusal> {
    let plain = "write a host name or IP address, e.g. \"203.0.113.10\" or \"mp-1.example.net\"";
    if text.is_empty() {
        return refuse("it is empty", plain);
    }
    if text.chars().count() > MAX_ADDRESS {
        return refuse(
            format!("it is {} characters long", text.chars().count()),
            format!("a host name has at most {MAX_ADDRESS} characters"),
        );
    }
    if let Some(c) = text.chars().find(|c| c.is_whitespace() || c.is_control()) {
        return refuse(format!("it contains {c:?}"), plain);
    }
    if text.contains("://") {
        return refuse(
            "it is a URL",
            "write only the host name or IP address; the port goes in port = N, the user in user = \"...\"",
        );
    }
    if let Some((user, _)) = text.split_once('@') {
        return refuse(
            "it names a user",
            format!("write the user as user = {user:?} and only the host in address"),
        );
    }
    if text.starts_with('-') {
        return refuse(
            "it starts with '-', which ssh would read as an option",
            plain,
        );
    }
    if let Some(inner) = text.strip_prefix('[') {
        let host = inner.split(']').next().unwrap_or_default();
        return refuse(
            "it is in brackets",
            format!("write the address without brackets ({host:?}) and the port as port = N"),
        );
    }
    if text.parse::<Ipv4Addr>().is_ok() || ipv6(text) {
        return Ok(());
    }
    if let Some((host, port)) = text.rsplit_once(':') {
        if !host.contains(':') && !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
            return refuse(
                "it has a port",
                format!("write address = {host:?} and port = {port}"),
            );
        }
        return refuse("it is not a valid IPv6 address", plain);
    }
    if let Some(c) = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_')))
    {
        return refuse(format!("{c:?} is not allowed in a host name"), plain);
    }
    let labels: Vec<&str> = text.strip_suffix('.').unwrap_or(text).split('.').collect();
    if labels.iter().any(|l| l.is_empty()) {
        return refuse(
            "it has an empty label (two dots in a row, or a leading dot)",
            plain,
        );
    }
    if labels.iter().any(|l| l.len() > MAX_LABEL) {
        return refuse(
            format!("a part between dots is longer than {MAX_LABEL} characters"),
            plain,
        );
    }
    Ok(())
}

/// `fe80::1`, `fe80::1%eth0`.
fn ipv6(text: &str) -> bool {
    let (address, zone) = match text.split_once('%') {
        Some((address, zone)) => (address, Some(zone)),
        None => (text, None),
    };
    address.parse::<Ipv6Addr>().is_ok()
        && zone.is_none_or(|z| {
            !z.is_empty()
                && z.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "._-".contains(c))
        })
}

/// A login name: letters, digits, `.`, `_`, `-` (not first), and a trailing `$` (Samba's
/// machine accounts).
pub(crate) fn check_user(text: &str) -> Result<(), Refusal> {
    let plain = "write a login name such as \"root\" or \"deploy\"";
    if text.is_empty() {
        return refuse("it is empty", plain);
    }
    if text.contains('@') {
        return refuse(
            "it contains '@'",
            "write only the login name; the host goes in address",
        );
    }
    if text.len() > MAX_USER {
        return refuse(
            format!("it is {} characters long", text.chars().count()),
            format!("a login name has at most {MAX_USER} characters"),
        );
    }
    if text.starts_with('-') {
        return refuse(
            "it starts with '-', which ssh would read as an option",
            plain,
        );
    }
    let body = text.strip_suffix('$').unwrap_or(text);
    if let Some(c) = body
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return refuse(format!("{c:?} is not allowed in a login name"), plain);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_that_are_plainly_hosts_pass() {
        for ok in [
            "203.0.113.10",
            "mp-1",
            "mp-1.example.net",
            "mp-1.example.net.",
            "under_score.lan",
            "2001:db8::1",
            "fe80::1%eth0",
            "::1",
        ] {
            assert_eq!(check_address(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn addresses_refused_say_what_to_write() {
        for (bad, hint) in [
            ("127.0.0.9:2222", "port = 2222"),
            ("root@127.0.0.9", "user = \"root\""),
            ("-oProxyCommand=id", "option"),
            ("host;id", "';'"),
            ("ssh://host", "URL"),
            ("[::1]:22", "brackets"),
            ("a..b", "empty label"),
            ("10.0.0.1;id", "';'"),
            ("a b", "' '"),
            ("x\u{1b}[31m", "'\\u{1b}'"),
            ("fe80::1%", "IPv6"),
        ] {
            let refusal = check_address(bad).unwrap_err();
            let text = format!("{}: {}", refusal.problem, refusal.hint);
            assert!(text.contains(hint), "{bad}: {text}");
        }
        let huge = "a".repeat(100_000);
        assert!(check_address(&huge)
            .unwrap_err()
            .problem
            .contains("100000 characters"));
        let label = format!("{}.lan", "a".repeat(64));
        assert!(check_address(&label).is_err());
    }

    #[test]
    fn users() {
        for ok in ["root", "deploy", "svc.mp", "a-b_c", "host$"] {
            assert_eq!(check_user(ok), Ok(()), "{ok}");
        }
        for (bad, hint) in [
            ("root;id", "';'"),
            ("", "empty"),
            ("-oX", "option"),
            ("a b", "' '"),
            ("me@host", "'@'"),
            ("$(id)", "'$'"),
        ] {
            let refusal = check_user(bad).unwrap_err();
            let text = format!("{}: {}", refusal.problem, refusal.hint);
            assert!(text.contains(hint), "{bad:?}: {text}");
        }
    }
}
