//! Plans and probes name "this host" 127.0.0.1. A server that binds one address only (NATS
//! binds its private address when other hosts reach it: nats-server has one listen address)
//! is not on loopback: connect where the kernel says it listens, from `/proc/net/tcp{,6}`.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

const LOOPBACK: &str = "127.0.0.1";

/// `url` with a `127.0.0.1:PORT` host moved to the one address the port listens on, when
/// nothing listens on loopback or the wildcard; unchanged otherwise (or off Linux).
pub fn here(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_string();
    };
    let Some(after) = rest.strip_prefix(&format!("{LOOPBACK}:")) else {
        return url.to_string();
    };
    let digits: String = after.chars().take_while(char::is_ascii_digit).collect();
    let Ok(port) = digits.parse::<u16>() else {
        return url.to_string();
    };
    let host = socket(port);
    format!("{scheme}://{host}{}", &after[digits.len()..])
}

/// `ADDRESS:PORT` to reach the port on this host: 127.0.0.1 unless only one other address
/// listens.
pub fn socket(port: u16) -> String {
    // Answered on loopback (the usual case) without reading /proc/net/tcp, whose every read
    // walks all of the machine's TCP sockets: a re-run's health checks are CPU-bound.
    let loopback = std::net::SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    if std::net::TcpStream::connect_timeout(&loopback, std::time::Duration::from_millis(200))
        .is_ok()
    {
        return format!("{LOOPBACK}:{port}");
    }
    let tables =
        ["/proc/net/tcp", "/proc/net/tcp6"].map(|p| std::fs::read_to_string(p).unwrap_or_default());
    match listening_address(&tables.concat(), port) {
        Some(IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Some(ip) => format!("{ip}:{port}"),
        None => format!("{LOOPBACK}:{port}"),
    }
}

/// The address to use for `port` from `/proc/net/tcp*` text: None when a listener is on
/// loopback or the wildcard (or none is there), else the first specific one.
fn listening_address(table: &str, port: u16) -> Option<IpAddr> {
    let mut found = None;
    for line in table.lines() {
        let fields: Vec<&str> = line.split_whitespace().collect();
        // `sl local_address rem_address st ...`; 0A is LISTEN.
        let (Some(local), Some("0A")) = (fields.get(1), fields.get(3).copied()) else {
            continue;
        };
        let Some((ip, p)) = local.split_once(':') else {
            continue;
        };
        if u16::from_str_radix(p, 16).ok() != Some(port) {
            continue;
        }
        let Some(ip) = kernel_ip(ip) else { continue };
        if ip.is_loopback() || ip.is_unspecified() {
            return None;
        }
        found = found.or(Some(ip));
    }
    found
}

/// The kernel prints each 32-bit word of the address in host byte order.
fn kernel_ip(hex: &str) -> Option<IpAddr> {
    let word = |i: usize| {
        hex.get(i * 8..i * 8 + 8)
            .and_then(|w| u32::from_str_radix(w, 16).ok())
            .map(u32::to_ne_bytes)
    };
    match hex.len() {
        8 => Some(IpAddr::V4(Ipv4Addr::from(word(0)?))),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            let ip = Ipv6Addr::from(bytes);
            Some(match ip.to_ipv4_mapped() {
                Some(v4) => IpAddr::V4(v4),
                None => IpAddr::V6(ip),
            })
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `/proc/net/tcp` words as this machine's kernel prints them.
    fn v4(ip: [u8; 4]) -> String {
        format!("{:08X}", u32::from_ne_bytes(ip))
    }

    fn line(local: &str, port: u16, state: &str) -> String {
        format!("  0: {local}:{port:04X} 00000000:0000 {state} 00000000:00000000 00:00000000 00000000 0 0 1 1\n")
    }

    #[test]
    fn a_port_bound_to_one_private_address_is_reached_there() {
        let table = line(&v4([10, 0, 0, 5]), 4222, "0A") + &line(&v4([0, 0, 0, 0]), 22, "0A");
        assert_eq!(
            listening_address(&table, 4222),
            Some("10.0.0.5".parse().unwrap())
        );
        assert_eq!(listening_address(&table, 22), None);
        assert_eq!(listening_address(&table, 8123), None);
    }

    #[test]
    fn loopback_or_wildcard_wins_and_connections_are_not_listeners() {
        let both = line(&v4([10, 0, 0, 5]), 9000, "0A") + &line(&v4([127, 0, 0, 1]), 9000, "0A");
        assert_eq!(listening_address(&both, 9000), None);
        let established = line(&v4([10, 0, 0, 5]), 4222, "01");
        assert_eq!(listening_address(&established, 4222), None);
        let v6_any = line(&"0".repeat(32), 4222, "0A");
        assert_eq!(listening_address(&v6_any, 4222), None);
    }

    #[test]
    fn ipv6_words_are_read_in_host_order() {
        let ip: Ipv6Addr = "fd00::5".parse().unwrap();
        let o = ip.octets();
        let words: String = (0..4)
            .map(|i| v4([o[i * 4], o[i * 4 + 1], o[i * 4 + 2], o[i * 4 + 3]]))
            .collect();
        assert_eq!(
            listening_address(&line(&words, 4222, "0A"), 4222),
            Some(IpAddr::V6(ip))
        );
    }

    #[test]
    fn only_loopback_urls_with_a_port_are_touched() {
        for url in [
            "http://10.0.0.1:8222/healthz",
            "nats://127.0.0.1",
            "not a url",
        ] {
            assert_eq!(here(url), url);
        }
        // Nothing listens on port 1 here: loopback stays.
        assert_eq!(
            here("http://127.0.0.1:1/healthz?x=1"),
            "http://127.0.0.1:1/healthz?x=1"
        );
    }
}
