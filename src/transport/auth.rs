//! User authentication: the ssh-agent's keys first (like OpenSSH), then the key files.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use russh::client::Handle;
use russh::keys::agent::client::AgentClient;
use russh::keys::agent::AgentIdentity;
use russh::keys::{PrivateKey, PrivateKeyWithHashAlg};

use super::error::TransportError;
use super::ssh::Client;
use super::target::SshTarget;

/// The environment variable an encrypted key's passphrase can come from (CI has no TTY).
pub const PASSPHRASE_ENV: &str = "MP_REMOTE_KEY_PASSPHRASE";

/// Authenticates `handle` as `target.user`, or says everything that was tried.
pub async fn authenticate(
    handle: &mut Handle<Client>,
    target: &SshTarget,
) -> Result<(), TransportError> {
    let mut tried = Vec::new();
    if try_agent(handle, target, &mut tried).await? {
        return Ok(());
    }
    for path in &target.identity_files {
        if !path.exists() {
            tried.push(format!("{} (missing)", path.display()));
            continue;
        }
        let key = load_key(path, &target.label)?;
        let hash_alg = rsa_hash(handle, &key).await;
        let result = handle
            .authenticate_publickey(
                target.user.clone(),
                PrivateKeyWithHashAlg::new(Arc::new(key), hash_alg),
            )
            .await
            .map_err(|e| ssh_error(target, e))?;
        tried.push(path.display().to_string());
        if result.success() {
            return Ok(());
        }
    }
    if tried.is_empty() {
        tried.push("no ssh-agent and no key file".into());
    }
    Err(TransportError::Auth {
        host: target.label.clone(),
        user: target.user.clone(),
        tried,
    })
}

/// Tries each key the agent holds; `Ok(false)` when there is no agent or none was accepted.
async fn try_agent(
    handle: &mut Handle<Client>,
    target: &SshTarget,
    tried: &mut Vec<String>,
) -> Result<bool, TransportError> {
    if std::env::var_os("SSH_AUTH_SOCK").is_none() {
        return Ok(false);
    }
    let Ok(mut agent) = AgentClient::connect_env().await else {
        tried.push("ssh-agent (not answering)".into());
        return Ok(false);
    };
    let identities = agent.request_identities().await.unwrap_or_default();
    let keys: Vec<_> = identities
        .into_iter()
        .filter_map(|identity| match identity {
            AgentIdentity::PublicKey { key, .. } => Some(key),
            AgentIdentity::Certificate { .. } => None,
        })
        .collect();
    tried.push(format!("ssh-agent ({} keys)", keys.len()));
    for key in keys {
        let hash_alg = if key.algorithm().is_rsa() {
            handle
                .best_supported_rsa_hash()
                .await
                .ok()
                .flatten()
                .flatten()
        } else {
            None
        };
        match handle
            .authenticate_publickey_with(target.user.clone(), key, hash_alg, &mut agent)
            .await
        {
            Ok(result) if result.success() => return Ok(true),
            Ok(_) => {}
            // The agent may refuse to sign (a confirm-only key): try the next one.
            Err(e) => tracing::debug!("{}: agent key not usable: {e}", target.label),
        }
    }
    Ok(false)
}

/// RSA keys sign with rsa-sha2-256/512 when the server says it accepts them (OpenSSH >= 8.8
/// refuses the old ssh-rsa SHA-1 signatures).
async fn rsa_hash(handle: &Handle<Client>, key: &PrivateKey) -> Option<russh::keys::HashAlg> {
    if key.algorithm().is_rsa() {
        handle
            .best_supported_rsa_hash()
            .await
            .ok()
            .flatten()
            .flatten()
    } else {
        None
    }
}

/// Loads a private key, decrypting it with the passphrase from the environment or a prompt.
fn load_key(path: &Path, host: &str) -> Result<PrivateKey, TransportError> {
    let key_error = |reason: String| TransportError::KeyFile {
        host: host.to_string(),
        path: path.to_path_buf(),
        reason,
    };
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let passphrase = passphrase_for(path).ok_or_else(|| {
                key_error(format!(
                    "it is encrypted; set {PASSPHRASE_ENV}, run on a terminal to be asked, or load it into ssh-agent"
                ))
            })?;
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|e| key_error(format!("cannot decrypt it ({e}): wrong passphrase?")))
        }
        Err(e) => Err(key_error(e.to_string())),
    }
}

/// One prompt per key file per run, however many hosts use it.
fn passphrase_for(path: &Path) -> Option<String> {
    if let Ok(value) = std::env::var(PASSPHRASE_ENV) {
        return Some(value);
    }
    static ASKED: OnceLock<Mutex<HashMap<PathBuf, String>>> = OnceLock::new();
    let mut asked = ASKED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(known) = asked.get(path) {
        return Some(known.clone());
    }
    if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
        return None;
    }
    let answer = rpassword::prompt_password(format!("Passphrase for {}: ", path.display())).ok()?;
    asked.insert(path.to_path_buf(), answer.clone());
    Some(answer)
}

fn ssh_error(target: &SshTarget, e: russh::Error) -> TransportError {
    TransportError::Ssh {
        host: target.label.clone(),
        reason: e.to_string(),
    }
}
