//! `agent relay`: one host of a private network hands the agent it just received to the
//! others, so the control node uploads it once per network instead of once per host (from a
//! laptop's uplink the bytes are the time). The relay listens on the host's private address,
//! answers each connection that first sends the run's token with the file, and exits once
//! nobody asked for [`Relay::idle`] (or the control node stops it). The file is the agent, not
//! a secret; the token keeps strangers from making it serve, and every receiver checks the
//! sha256 before using what it got.

use std::path::PathBuf;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;

/// Longest a receiver may take to send its token.
const TOKEN_WAIT: Duration = Duration::from_secs(10);

pub struct Relay {
    pub file: PathBuf,
    pub bind: String,
    pub token: String,
    pub idle: Duration,
    /// Test hook: serve only the first half of the file, as a relay lost mid-copy would.
    pub cut: bool,
}

/// Serves until idle; prints `port N` first (on stdout, which the control node reads), then
/// one `served ADDRESS BYTES` line per copy. Exit 1 when it cannot listen or read the file.
pub async fn run(relay: Relay) -> i32 {
    let bytes = match tokio::fs::read(&relay.file).await {
        Ok(bytes) => bytes,
        Err(e) => {
            eprintln!("cannot read {}: {e}", relay.file.display());
            return 1;
        }
    };
    let listener = match TcpListener::bind(&relay.bind).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("cannot listen on {}: {e}", relay.bind);
            return 1;
        }
    };
    let Ok(address) = listener.local_addr() else {
        return 1;
    };
    println!("port {}", address.port());
    let bytes = std::sync::Arc::new(bytes);
    loop {
        let accepted = tokio::time::timeout(relay.idle, listener.accept()).await;
        let Ok(Ok((stream, peer))) = accepted else {
            // Idle (or the listener broke): every receiver has had its copy.
            return 0;
        };
        let bytes = bytes.clone();
        let token = relay.token.clone();
        let cut = relay.cut;
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut read = BufReader::new(read.take(256));
            let asked = tokio::time::timeout(TOKEN_WAIT, read.read_line(&mut line)).await;
            if !matches!(asked, Ok(Ok(_))) || line.trim() != token {
                return;
            }
            let end = if cut { bytes.len() / 2 } else { bytes.len() };
            if write.write_all(&bytes[..end]).await.is_ok() && write.shutdown().await.is_ok() {
                println!("served {} {end}", peer.ip());
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpStream;

    async fn fetch(port: u16, token: &str) -> Vec<u8> {
        let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream
            .write_all(format!("{token}\n").as_bytes())
            .await
            .unwrap();
        let mut got = Vec::new();
        stream.read_to_end(&mut got).await.unwrap();
        got
    }

    #[tokio::test]
    async fn serves_the_file_to_whoever_has_the_token_then_idles_out() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("agent");
        std::fs::write(&file, b"0123456789").unwrap();
        // Port 0 through a probe: the relay prints its port, which a test cannot read here,
        // so bind one first and hand it over.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let relay = tokio::spawn(run(Relay {
            file,
            bind: format!("127.0.0.1:{port}"),
            token: "t0k3n".into(),
            idle: Duration::from_millis(1500),
            cut: false,
        }));
        let connected = async {
            loop {
                if TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        };
        tokio::time::timeout(Duration::from_secs(5), connected)
            .await
            .expect("the relay listens");
        assert_eq!(fetch(port, "t0k3n").await, b"0123456789");
        assert!(fetch(port, "wrong").await.is_empty());
        let code = tokio::time::timeout(Duration::from_secs(10), relay)
            .await
            .expect("the relay exits once idle")
            .unwrap();
        assert_eq!(code, 0);
    }
}
