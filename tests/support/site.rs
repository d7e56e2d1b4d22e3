//! A download site standing in for a vendor's (there is no internet here): a static file
//! server on the test hosts' network gateway, recording every requested path.

use std::io::{BufRead, BufReader, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::Fleet;

/// A static file server on `ip` (the fleet's gateway), recording every requested path.
pub struct Site {
    pub base_url: String,
    requests: Arc<Mutex<Vec<String>>>,
}

impl Site {
    pub fn start(ip: IpAddr, root: PathBuf) -> Site {
        let listener = TcpListener::bind((ip, 0)).expect("bind the test download site");
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let requests = Arc::new(Mutex::new(Vec::new()));
        let log = requests.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let (root, log) = (root.clone(), log.clone());
                std::thread::spawn(move || serve(stream, &root, &log));
            }
        });
        Site { base_url, requests }
    }

    /// How many requests asked for a path ending with `file`.
    pub fn requests_for(&self, file: &str) -> usize {
        self.requests
            .lock()
            .unwrap()
            .iter()
            .filter(|p| p.ends_with(file))
            .count()
    }
}

fn serve(mut stream: TcpStream, root: &Path, log: &Mutex<Vec<String>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request = String::new();
    if reader.read_line(&mut request).is_err() {
        return;
    }
    // The headers: read up to the blank line, ignored.
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
        line.clear();
    }
    let path = request.split_whitespace().nth(1).unwrap_or("/").to_string();
    log.lock().unwrap().push(path.clone());
    let mut file = root.join(path.trim_start_matches('/'));
    // A directory's page (a PEP 503 simple index, for pip): its index.html, as HTML.
    let html = path.ends_with('/');
    if html {
        file = file.join("index.html");
    }
    let response = match (path.contains(".."), std::fs::read(&file)) {
        (false, Ok(body)) => {
            let mut head = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                if html { "text/html" } else { "application/gzip" },
                body.len()
            )
            .into_bytes();
            head.extend(body);
            head
        }
        _ => b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".to_vec(),
    };
    let _ = stream.write_all(&response);
}

/// The address the fleet's containers reach this machine at: their network's gateway.
pub fn gateway(fleet: &Fleet) -> IpAddr {
    let hosts: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(fleet.path("hosts.json")).unwrap()).unwrap();
    let network = hosts["network"]
        .as_str()
        .expect("hosts.json names the network");
    let output = Command::new("/usr/bin/docker")
        .args([
            "network",
            "inspect",
            network,
            "--format",
            "{{(index .IPAM.Config 0).Gateway}}",
        ])
        .output()
        .expect("run docker");
    assert!(output.status.success(), "docker network inspect failed");
    let out = String::from_utf8_lossy(&output.stdout);
    out.trim().parse().expect("a gateway address")
}
