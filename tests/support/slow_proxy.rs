//! A slow, lossy link in user space: a TCP proxy on 127.0.0.1 in front of a host's sshd that
//! delivers every chunk `delay` late, paces each direction to `bytes_per_sec`, and stalls a
//! `stall_percent` share of chunks a further `stall` (what a lost segment costs TCP: a
//! retransmission timeout). This machine's kernel has no `sch_netem` (nor `sch_prio`), so
//! `tc netem` cannot be used here; from the application's side the effect is the same:
//! latency, a thin pipe, and stalls.

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub struct Link {
    pub delay: Duration,
    pub bytes_per_sec: u64,
    pub stall_percent: u32,
    pub stall: Duration,
}

impl Link {
    /// 200 ms each way, 1 Mbit/s, 2% of chunks stalled 600 ms more.
    pub fn slow_and_lossy() -> Self {
        Link {
            delay: Duration::from_millis(200),
            bytes_per_sec: 125_000,
            stall_percent: 2,
            stall: Duration::from_millis(600),
        }
    }
}

/// Starts the proxy to `upstream` (host:port); returns the local port. It runs until the test
/// process ends.
pub fn start(upstream: String, link: Link) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for (n, client) in listener.incoming().flatten().enumerate() {
            let Ok(server) = TcpStream::connect(&upstream) else {
                continue;
            };
            let _ = client.set_nodelay(true);
            let _ = server.set_nodelay(true);
            let seed = 0x9e37_79b9_7f4a_7c15u64 ^ (n as u64 + 1);
            pump(
                client.try_clone().unwrap(),
                server.try_clone().unwrap(),
                link,
                seed,
            );
            pump(server, client, link, seed.rotate_left(17));
        }
    });
    port
}

/// One direction: a reader stamps each chunk with when it may arrive, a writer delivers it
/// then (in order), so latency and the pace hold whatever the chunk sizes.
fn pump(mut from: TcpStream, mut to: TcpStream, link: Link, mut seed: u64) {
    let (tx, rx) = mpsc::channel::<(Instant, Vec<u8>)>();
    std::thread::spawn(move || {
        let mut free_at = Instant::now();
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match from.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            let now = Instant::now();
            free_at = free_at.max(now)
                + Duration::from_micros(n as u64 * 1_000_000 / link.bytes_per_sec.max(1));
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let stalled = (seed % 100) < u64::from(link.stall_percent);
            let at = free_at + link.delay + if stalled { link.stall } else { Duration::ZERO };
            if tx.send((at, buf[..n].to_vec())).is_err() {
                break;
            }
        }
        let _ = tx.send((Instant::now(), Vec::new()));
    });
    std::thread::spawn(move || {
        let mut last = Instant::now();
        for (at, chunk) in rx {
            // Order is kept: a stalled chunk holds back the ones behind it, as in TCP.
            let at = at.max(last);
            let wait = at.saturating_duration_since(Instant::now());
            if !wait.is_zero() {
                // Emulating the link's latency, not waiting for a condition.
                std::thread::sleep(wait);
            }
            last = at;
            if chunk.is_empty() || to.write_all(&chunk).is_err() {
                break;
            }
        }
        let _ = to.shutdown(Shutdown::Write);
    });
}
