//! `[nats]` of a service's config: the user it connects as, the file holding its password
//! (never the password itself: a config or a command line is easier to leak), the prefix of
//! its reply subjects (its permissions allow no other), and the CA that signed the servers'
//! certificates when NATS speaks TLS.

use std::path::{Path, PathBuf};

use async_nats::ConnectOptions;
use serde::Deserialize;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsAuthConfig {
    pub user: String,
    /// Its first line is the password.
    pub password_file: PathBuf,
    #[serde(default)]
    pub inbox_prefix: Option<String>,
    /// Given: connect with TLS, trusting this CA.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl NatsAuthConfig {
    /// `options` logging in as this user. Fails when the password file cannot be read.
    pub fn apply(&self, options: ConnectOptions) -> Result<ConnectOptions, String> {
        let password =
            first_line(&self.password_file).map_err(|e| format!("nats.password_file: {e}"))?;
        let mut options = options.user_and_password(self.user.clone(), password);
        if let Some(prefix) = &self.inbox_prefix {
            options = options.custom_inbox_prefix(prefix.clone());
        }
        if let Some(ca) = &self.ca_file {
            options = options.require_tls(true).add_root_certificates(ca.clone());
        }
        Ok(options)
    }
}

/// The first line of a secret file, never logged.
pub fn first_line(path: &Path) -> Result<String, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text.lines().next().unwrap_or_default().to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_password_file_says_which() {
        let auth = NatsAuthConfig {
            user: "storage".into(),
            password_file: "/nonexistent/storage-nats-password".into(),
            inbox_prefix: None,
            ca_file: None,
        };
        let e = auth.apply(ConnectOptions::new()).err().unwrap();
        assert!(
            e.starts_with("nats.password_file: cannot read /nonexistent/storage-nats-password"),
            "{e}"
        );
    }
}
