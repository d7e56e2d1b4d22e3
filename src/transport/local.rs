//! The local transport (`connection = "local"`): this machine, through `sh -c`, no SSH.

use std::process::Stdio;

use async_trait::async_trait;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::process::Command;

use super::error::TransportError;
use super::{OutputSink, Stream, Transport};

pub struct LocalTransport {
    label: String,
}

impl LocalTransport {
    pub fn new(label: impl Into<String>) -> Self {
        Self {
            label: label.into(),
        }
    }
}

#[async_trait]
impl Transport for LocalTransport {
    fn label(&self) -> &str {
        &self.label
    }

    async fn exec_streaming(
        &self,
        command: &str,
        stdin: &[u8],
        sink: OutputSink<'_>,
    ) -> Result<Option<u32>, TransportError> {
        let start_error = |source| TransportError::Local {
            host: self.label.clone(),
            source,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(command)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(start_error)?;
        let mut input = child.stdin.take();
        let data = stdin.to_vec();
        let feeder = tokio::spawn(async move {
            if let Some(pipe) = input.as_mut() {
                // A command that exits without reading its input closes the pipe: not an error.
                let _ = pipe.write_all(&data).await;
            }
            drop(input);
        });
        let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
        let (mut out_buf, mut err_buf) = ([0u8; 8192], [0u8; 8192]);
        while out.is_some() || err.is_some() {
            tokio::select! {
                read = read_some(&mut out, &mut out_buf) => {
                    forward(read, &mut out, &out_buf, Stream::Stdout, sink)
                }
                read = read_some(&mut err, &mut err_buf) => {
                    forward(read, &mut err, &err_buf, Stream::Stderr, sink)
                }
            }
        }
        let _ = feeder.await;
        let status = child.wait().await.map_err(start_error)?;
        Ok(status.code().map(|code| code as u32))
    }

    async fn close(&self) {}
}

/// Reads from a pipe that is still open; a closed one (None) never completes.
async fn read_some<R: AsyncReadExt + Unpin>(
    pipe: &mut Option<R>,
    buffer: &mut [u8],
) -> std::io::Result<usize> {
    match pipe {
        Some(reader) => reader.read(buffer).await,
        None => std::future::pending().await,
    }
}

fn forward<R>(
    read: std::io::Result<usize>,
    pipe: &mut Option<R>,
    buffer: &[u8],
    stream: Stream,
    sink: OutputSink<'_>,
) {
    match read {
        Ok(0) | Err(_) => *pipe = None,
        Ok(n) => sink(stream, &buffer[..n]),
    }
}
