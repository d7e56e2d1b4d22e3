//! Moving bytes and running commands on hosts: over SSH (russh) or on this machine.
//! Knows nothing of what is deployed; the callers decide what to run.

// Errors carry what the user needs (both fingerprints, paths); they are rare and cold.
#![allow(clippy::result_large_err)]

mod auth;
pub mod error;
pub mod known_hosts;
pub mod local;
pub mod shell;
pub mod ssh;
pub mod target;
mod upload;

use async_trait::async_trait;

pub use error::TransportError;
pub use local::LocalTransport;
pub use ssh::{ConnectOptions, SshTransport};
pub use target::{HostKeyChecking, SshTarget};
pub use upload::{digest_command, sent_size, UploadOutcome};

/// Which output stream a chunk came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

/// Receives a command's output as it arrives.
pub type OutputSink<'a> = &'a mut (dyn FnMut(Stream, &[u8]) + Send);

/// A finished command with its whole output.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecOutput {
    /// The exit status; `None` when the command died by a signal.
    pub status: Option<u32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl ExecOutput {
    pub fn success(&self) -> bool {
        self.status == Some(0)
    }

    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }
}

/// One host's connection. Commands run through the remote user's shell, like `ssh host CMD`.
#[async_trait]
pub trait Transport: Send + Sync {
    /// The host's name in messages.
    fn label(&self) -> &str;

    /// Runs `command`, feeds it `stdin` then end-of-file, and streams its output to `sink`.
    async fn exec_streaming(
        &self,
        command: &str,
        stdin: &[u8],
        sink: OutputSink<'_>,
    ) -> Result<Option<u32>, TransportError>;

    /// Runs `command` and collects its output.
    async fn exec(&self, command: &str, stdin: &[u8]) -> Result<ExecOutput, TransportError> {
        let mut output = ExecOutput::default();
        let (stdout, stderr) = (&mut output.stdout, &mut output.stderr);
        let mut collect = |stream: Stream, data: &[u8]| match stream {
            Stream::Stdout => stdout.extend_from_slice(data),
            Stream::Stderr => stderr.extend_from_slice(data),
        };
        output.status = self.exec_streaming(command, stdin, &mut collect).await?;
        Ok(output)
    }

    /// Writes `contents` to `path` atomically (temp file, then rename) with `mode`, unless the
    /// file there already has the same sha256.
    async fn upload(
        &self,
        contents: &[u8],
        path: &str,
        mode: u32,
    ) -> Result<UploadOutcome, TransportError> {
        upload::upload(self, contents, path, mode).await
    }

    /// Ends the connection politely.
    async fn close(&self);
}
