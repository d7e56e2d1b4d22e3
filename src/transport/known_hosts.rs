//! OpenSSH known_hosts: look a host key up (plain and hashed entries, `[host]:port`, wildcards,
//! `@revoked`) and record new ones. russh ships a checker, but it miscounts line numbers after
//! comments and aborts on any key type it cannot parse; the line number is what we tell the
//! user to delete, so it has to be right.

use std::io::Write;
use std::path::Path;

use data_encoding::BASE64;
use hmac::{KeyInit, Mac};
use russh::keys::{HashAlg, PublicKey};

/// How a presented host key relates to what known_hosts records for that endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostKeyStatus {
    /// An entry of the same algorithm holds exactly this key.
    Known,
    /// Nothing of this key's algorithm is recorded for the endpoint.
    Unknown,
    /// The endpoint has an entry of the same algorithm with another key.
    Changed { line: usize, recorded: String },
    /// The key is listed under `@revoked`.
    Revoked { line: usize },
}

/// The name OpenSSH files a host under: `host` on port 22, `[host]:port` otherwise.
pub fn endpoint(host: &str, port: u16) -> String {
    if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    }
}

/// `SHA256:...`, as `ssh-keygen -l` prints it.
pub fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

/// Checks `key` for `host:port` against the text of a known_hosts file.
pub fn check(contents: &str, host: &str, port: u16, key: &PublicKey) -> HostKeyStatus {
    let name = endpoint(host, port);
    let mut changed = None;
    for (index, raw) in contents.lines().enumerate() {
        let line = index + 1;
        let Some(entry) = Entry::parse(raw) else {
            continue;
        };
        if entry.marker == Some("@cert-authority") || !entry.matches(&name) {
            continue;
        }
        // A line whose key we cannot parse (a type we do not know) says nothing about ours.
        let Ok(recorded) = russh::keys::parse_public_key_base64(entry.key_base64) else {
            continue;
        };
        if entry.marker == Some("@revoked") {
            if recorded == *key {
                return HostKeyStatus::Revoked { line };
            }
            continue;
        }
        if recorded.algorithm() != key.algorithm() {
            continue;
        }
        if recorded == *key {
            return HostKeyStatus::Known;
        }
        changed.get_or_insert(HostKeyStatus::Changed {
            line,
            recorded: fingerprint(&recorded),
        });
    }
    changed.unwrap_or(HostKeyStatus::Unknown)
}

/// The line `learn` appends: plain (not hashed), like `ssh -o HashKnownHosts=no`, so that a
/// person can read which host it belongs to.
pub fn entry_line(host: &str, port: u16, key: &PublicKey) -> String {
    let openssh = key.to_openssh().unwrap_or_default();
    let mut fields = openssh.split_whitespace();
    let algorithm = fields.next().unwrap_or_default();
    let data = fields.next().unwrap_or_default();
    format!("{} {algorithm} {data}", endpoint(host, port))
}

/// Appends the host's key to the known_hosts file, creating it (and its folder) if needed.
pub fn learn(path: &Path, host: &str, port: u16, key: &PublicKey) -> std::io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)?;
    }
    let existing = std::fs::read(path).unwrap_or_default();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)?;
    if !existing.is_empty() && !existing.ends_with(b"\n") {
        file.write_all(b"\n")?;
    }
    writeln!(file, "{}", entry_line(host, port, key))
}

struct Entry<'a> {
    marker: Option<&'a str>,
    patterns: &'a str,
    key_base64: &'a str,
}

impl<'a> Entry<'a> {
    fn parse(line: &'a str) -> Option<Self> {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            return None;
        }
        let mut fields = line.split_whitespace();
        let mut first = fields.next()?;
        let mut marker = None;
        if first.starts_with('@') {
            marker = Some(first);
            first = fields.next()?;
        }
        let _algorithm = fields.next()?;
        let key_base64 = fields.next()?;
        Some(Self {
            marker,
            patterns: first,
            key_base64,
        })
    }

    /// OpenSSH semantics: any positive pattern matches and no negated one does.
    fn matches(&self, name: &str) -> bool {
        let mut matched = false;
        for pattern in self.patterns.split(',') {
            if let Some(negated) = pattern.strip_prefix('!') {
                if wildcard_match(negated, name) {
                    return false;
                }
            } else if pattern.starts_with("|1|") {
                matched |= hashed_match(pattern, name);
            } else {
                matched |= wildcard_match(pattern, name);
            }
        }
        matched
    }
}

/// `|1|base64(salt)|base64(hmac_sha1(salt, name))`, as `ssh-keygen -H` writes.
fn hashed_match(pattern: &str, name: &str) -> bool {
    let mut parts = pattern.split('|').skip(2);
    let (Some(salt), Some(hash)) = (parts.next(), parts.next()) else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (
        BASE64.decode(salt.as_bytes()),
        BASE64.decode(hash.as_bytes()),
    ) else {
        return false;
    };
    let Ok(mut mac) = hmac::Hmac::<sha1::Sha1>::new_from_slice(&salt) else {
        return false;
    };
    mac.update(name.as_bytes());
    mac.verify_slice(&hash).is_ok()
}

/// `*` and `?` globbing, as in OpenSSH host patterns.
fn wildcard_match(pattern: &str, name: &str) -> bool {
    fn go(p: &[u8], n: &[u8]) -> bool {
        match (p.first(), n.first()) {
            (None, None) => true,
            (Some(b'*'), _) => go(&p[1..], n) || (!n.is_empty() && go(p, &n[1..])),
            (Some(b'?'), Some(_)) => go(&p[1..], &n[1..]),
            (Some(a), Some(b)) if a.eq_ignore_ascii_case(b) => go(&p[1..], &n[1..]),
            _ => false,
        }
    }
    go(pattern.as_bytes(), name.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    const K1: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIMZU87wMJCgru/sWq/KyUMeYi+76LWiMBVlyWQctphHD";
    const K1_FP: &str = "SHA256:SazOiwCX6E0EqSHdWlG7TC8H0s/prHG1QA3tpSXbjAw";
    const K2: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJOQIsKMtqYfgoMCddJ50sKrx0BQMbHdMOkDUwdkan6e";
    // `ssh-keygen -H` of "[127.0.0.1]:2222 ssh-ed25519 K1".
    const HASHED_K1: &str = "|1|YQRRQL7hiys9/dLKp+B2Y/8iMUY=|2u8z5s5ecqd455qLAo5kbS6hf0E=";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).unwrap()
    }

    #[test]
    fn plain_entries_by_port() {
        let file = format!("10.0.0.1 ssh-ed25519 {K1}\n[10.0.0.1]:2222 ssh-ed25519 {K2}\n");
        assert_eq!(check(&file, "10.0.0.1", 22, &key(K1)), HostKeyStatus::Known);
        assert_eq!(
            check(&file, "10.0.0.1", 2222, &key(K2)),
            HostKeyStatus::Known
        );
        assert_eq!(
            check(&file, "10.0.0.2", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn changed_key_names_the_right_line_after_comments() {
        let file = format!("# comment\n\n# another\n[h]:2222 ssh-ed25519 {K1}\n");
        assert_eq!(
            check(&file, "h", 2222, &key(K2)),
            HostKeyStatus::Changed {
                line: 4,
                recorded: K1_FP.to_string()
            }
        );
    }

    #[test]
    fn hashed_entries_match_and_detect_change() {
        let file = format!("{HASHED_K1} ssh-ed25519 {K1}\n");
        assert_eq!(
            check(&file, "127.0.0.1", 2222, &key(K1)),
            HostKeyStatus::Known
        );
        assert!(matches!(
            check(&file, "127.0.0.1", 2222, &key(K2)),
            HostKeyStatus::Changed { line: 1, .. }
        ));
        assert_eq!(
            check(&file, "127.0.0.1", 22, &key(K2)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn comma_lists_wildcards_and_negation() {
        let file = format!("a,b.example ssh-ed25519 {K1}\n*.lan,!bad.lan ssh-ed25519 {K1}\n");
        assert_eq!(
            check(&file, "b.example", 22, &key(K1)),
            HostKeyStatus::Known
        );
        assert_eq!(check(&file, "x.lan", 22, &key(K1)), HostKeyStatus::Known);
        assert_eq!(
            check(&file, "bad.lan", 22, &key(K1)),
            HostKeyStatus::Unknown
        );
    }

    #[test]
    fn revoked_and_unparsable_lines() {
        let file = format!("h ssh-foo AAAAnotakey\n@revoked h ssh-ed25519 {K1}\n");
        assert_eq!(
            check(&file, "h", 22, &key(K1)),
            HostKeyStatus::Revoked { line: 2 }
        );
        assert_eq!(check(&file, "h", 22, &key(K2)), HostKeyStatus::Unknown);
    }

    #[test]
    fn learn_appends_a_line_check_then_finds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/known_hosts");
        learn(&path, "127.0.0.1", 2200, &key(K1)).unwrap();
        learn(&path, "10.1.1.1", 22, &key(K2)).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(
            text,
            format!("[127.0.0.1]:2200 ssh-ed25519 {K1}\n10.1.1.1 ssh-ed25519 {K2}\n")
        );
        assert_eq!(
            check(&text, "127.0.0.1", 2200, &key(K1)),
            HostKeyStatus::Known
        );
    }

    #[test]
    fn fingerprint_matches_ssh_keygen() {
        assert_eq!(fingerprint(&key(K1)), K1_FP);
    }
}
