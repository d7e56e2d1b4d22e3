//! A look at the files the inventory names for SSH (`identity_file`, `known_hosts`) before
//! anything connects: a directory or a public key where the private key belongs fails every
//! host later with a vaguer message. A file that is not there yet may be meant (made by the
//! CI job before the run, on another control node): that is only a warning.

use std::io::Read;
use std::ops::Range;
use std::path::{Path, PathBuf};

use toml::Spanned;

use super::error::InventoryError;
use super::names::shown;
use super::validate::Checker;

/// What is at an `identity_file` path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeyFile {
    PrivateKey,
    Missing,
    Directory,
    /// `ssh-ed25519 AAAA...`: the `.pub` half.
    PublicKey,
    /// PuTTY's own format, which ssh (and mp-remote) cannot read.
    Putty,
    NotAKey,
    Unreadable(String),
}

/// Reads at most the first bytes of `path`, enough to tell what it holds.
pub(crate) fn inspect_key(path: &Path) -> KeyFile {
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return KeyFile::Missing,
        Err(e) => return KeyFile::Unreadable(e.to_string()),
    };
    if meta.is_dir() {
        return KeyFile::Directory;
    }
    let mut head = [0u8; 128];
    let read = std::fs::File::open(path).and_then(|mut f| f.read(&mut head));
    match read {
        Ok(n) => classify(&head[..n]),
        Err(e) => KeyFile::Unreadable(e.to_string()),
    }
}

fn classify(head: &[u8]) -> KeyFile {
    let text = String::from_utf8_lossy(head);
    let text = text.trim_start();
    if text.starts_with("-----BEGIN ") && text.contains("PRIVATE KEY") {
        KeyFile::PrivateKey
    } else if text.starts_with("PuTTY-User-Key-File") {
        KeyFile::Putty
    } else if ["ssh-", "ecdsa-", "sk-"]
        .iter()
        .any(|p| text.starts_with(p))
    {
        KeyFile::PublicKey
    } else {
        KeyFile::NotAKey
    }
}

impl Checker<'_> {
    /// An `identity_file` that cannot be a private key is refused; one that is not there is
    /// only a warning (see `key_files`).
    pub(super) fn key_file(
        &self,
        scope: &str,
        span: Range<usize>,
        path: &Path,
    ) -> Result<(), InventoryError> {
        if !self.probe_files {
            return Ok(());
        }
        let shown_path = shown(&path.display().to_string());
        let refuse = |what: &str, hint: &str| {
            Err(self.src.invalid(
                span.clone(),
                format!("identity_file {shown_path} in {scope} {what}"),
                hint,
            ))
        };
        match inspect_key(path) {
            KeyFile::PrivateKey => Ok(()),
            KeyFile::Directory => refuse(
                "is a directory",
                "name the private key file in it, e.g. \"~/.ssh/id_ed25519\"",
            ),
            KeyFile::PublicKey => refuse(
                "is a public key",
                "name the private key: the same path without .pub",
            ),
            KeyFile::Putty => refuse(
                "is a PuTTY key",
                "convert it: puttygen KEY.ppk -O private-openssh -o KEY",
            ),
            KeyFile::NotAKey => refuse(
                "is not a private key",
                "name an OpenSSH or PEM private key file (it starts with -----BEGIN)",
            ),
            KeyFile::Missing => {
                self.warn(
                    span,
                    &format!("identity_file {shown_path} in {scope} does not exist (yet)"),
                    "hosts that need it will fail to authenticate until it does",
                );
                Ok(())
            }
            KeyFile::Unreadable(why) => {
                self.warn(
                    span,
                    &format!("identity_file {shown_path} in {scope} cannot be read: {why}"),
                    "check its permissions",
                );
                Ok(())
            }
        }
    }

    pub(super) fn known_hosts(
        &self,
        scope: &str,
        value: &Spanned<String>,
    ) -> Result<PathBuf, InventoryError> {
        let path = self.path_value("known_hosts", scope, value)?;
        if self.probe_files && path.is_dir() {
            return Err(self.src.invalid(
                value.span(),
                format!(
                    "known_hosts {} in {scope} is a directory",
                    shown(&path.display().to_string())
                ),
                "name a file, e.g. \"~/.ssh/known_hosts\" (it is made when missing)",
            ));
        }
        Ok(path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tells_keys_from_what_is_not_one() {
        let dir = tempfile::tempdir().unwrap();
        let file = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path
        };
        let key = file(
            "id",
            "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n",
        );
        assert_eq!(inspect_key(&key), KeyFile::PrivateKey);
        let public = file("id.pub", "ssh-ed25519 AAAAC3Nza me@host\n");
        assert_eq!(inspect_key(&public), KeyFile::PublicKey);
        let putty = file("id.ppk", "PuTTY-User-Key-File-3: ssh-ed25519\n");
        assert_eq!(inspect_key(&putty), KeyFile::Putty);
        assert_eq!(inspect_key(&file("notes", "hello\n")), KeyFile::NotAKey);
        assert_eq!(inspect_key(dir.path()), KeyFile::Directory);
        assert_eq!(inspect_key(&dir.path().join("none")), KeyFile::Missing);
    }
}
