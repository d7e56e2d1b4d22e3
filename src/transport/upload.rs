//! Atomic, content-addressed upload, built on exec so every transport gets it the same way.

use sha2::{Digest, Sha256};

use super::error::TransportError;
use super::shell::quote;
use super::Transport;

/// Whether an upload wrote anything.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UploadOutcome {
    Uploaded,
    /// The file there already had the same sha256.
    Unchanged,
}

pub async fn upload<T: Transport + ?Sized>(
    transport: &T,
    contents: &[u8],
    path: &str,
    mode: u32,
) -> Result<UploadOutcome, TransportError> {
    let digest = hex::encode(Sha256::digest(contents));
    let failure = |reason: String| TransportError::Upload {
        host: transport.label().to_string(),
        path: path.to_string(),
        reason,
    };
    let current = transport.exec(&remote_digest_command(path), b"").await?;
    if current.stdout_text().trim() == digest {
        return Ok(UploadOutcome::Unchanged);
    }
    let written = transport.exec(&write_command(path, mode), contents).await?;
    if !written.success() {
        return Err(failure(written.stderr_text().trim().to_string()));
    }
    Ok(UploadOutcome::Uploaded)
}

/// Prints the file's sha256, or nothing when it does not exist (sha256sum on Linux, shasum on
/// macOS).
fn remote_digest_command(path: &str) -> String {
    let path = quote(path);
    format!(
        "if [ -f {path} ]; then (sha256sum {path} 2>/dev/null || shasum -a 256 {path}) | cut -d' ' -f1; fi"
    )
}

/// Writes stdin to a temporary file beside the target, then renames it into place, so that a
/// reader never sees half a file and a dropped connection leaves the old one intact.
fn write_command(path: &str, mode: u32) -> String {
    let dir = match path.rfind('/') {
        Some(0) => "/",
        Some(i) => &path[..i],
        None => ".",
    };
    let tmp = format!("{path}.mp-upload.$$");
    format!(
        "set -e; mkdir -p {dir}; tmp={tmp}; trap 'rm -f \"$tmp\"' EXIT; cat > \"$tmp\"; chmod {mode:o} \"$tmp\"; mv -f \"$tmp\" {path}; trap - EXIT",
        dir = quote(dir),
        tmp = quote_keep_pid(&tmp),
        path = quote(path),
    )
}

/// Quotes a path that ends in `$$` while leaving the `$$` for the shell to expand.
fn quote_keep_pid(tmp: &str) -> String {
    let stem = tmp.trim_end_matches("$$");
    format!("{}$$", quote(stem))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn write_command_is_atomic_rename() {
        assert_eq!(
            write_command("/opt/mp/bin/agent", 0o755),
            "set -e; mkdir -p /opt/mp/bin; tmp=/opt/mp/bin/agent.mp-upload.$$; trap 'rm -f \"$tmp\"' EXIT; cat > \"$tmp\"; chmod 755 \"$tmp\"; mv -f \"$tmp\" /opt/mp/bin/agent; trap - EXIT"
        );
    }

    #[test]
    fn digest_command_quotes_the_path() {
        assert!(remote_digest_command("/tmp/a b").contains("'/tmp/a b'"));
    }
}
