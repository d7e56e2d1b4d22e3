//! Which address a node's client and cluster listeners bind (monitoring is on loopback only:
//! its readers are all on the host). nats-server has one client address, so "loopback plus
//! the private address" is not possible: a node
//! whose clients are all on this host binds loopback; one that other hosts reach binds its
//! private address; only when the host does not have that address (a NAT's, or a host name)
//! does it bind every address, still with the login required.

use std::net::IpAddr;

/// Where the node listens, and why (the config step's title says it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listen {
    /// An IP literal: `127.0.0.1`, the private address, or `0.0.0.0`.
    pub address: String,
    pub why: &'static str,
}

impl Listen {
    pub fn at(&self, port: u16) -> String {
        host_port(&self.address, port)
    }
}

/// `ADDRESS:PORT`, an IPv6 address in brackets.
pub fn host_port(address: &str, port: u16) -> String {
    if address.contains(':') {
        format!("[{address}]:{port}")
    } else {
        format!("{address}:{port}")
    }
}

/// `private`: the node's private address; `own`: the host's addresses from its facts (empty
/// when unknown); `one_host`: the inventory has no other host, so no client comes from
/// elsewhere.
pub fn listen_address(private: &str, own: &[String], one_host: bool) -> Listen {
    let ip = private
        .trim_start_matches('[')
        .trim_end_matches(']')
        .parse::<IpAddr>();
    let listen = |address: &str, why| Listen {
        address: address.to_string(),
        why,
    };
    match ip {
        Ok(ip) if ip.is_loopback() => listen("127.0.0.1", "the private address is loopback"),
        _ if one_host => listen("127.0.0.1", "every client is on this host"),
        Ok(ip) if !ip.is_unspecified() && own.contains(&ip.to_string()) => Listen {
            address: ip.to_string(),
            why: "the private address",
        },
        Ok(_) => listen(
            "0.0.0.0",
            "every address: the private address is not one of this host's",
        ),
        Err(_) => listen(
            "0.0.0.0",
            "every address: the private address is a host name",
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> Vec<String> {
        ["127.0.0.1", "10.0.0.5", "fd00::5"]
            .map(String::from)
            .to_vec()
    }

    #[test]
    fn a_fleet_node_binds_its_private_address_when_it_has_it() {
        assert_eq!(
            listen_address("10.0.0.5", &own(), false).at(4222),
            "10.0.0.5:4222"
        );
        assert_eq!(
            listen_address("fd00::5", &own(), false).at(4222),
            "[fd00::5]:4222"
        );
        assert_eq!(
            listen_address("[fd00::5]", &own(), false).address,
            "fd00::5"
        );
    }

    #[test]
    fn one_host_or_a_loopback_address_binds_loopback() {
        assert_eq!(
            listen_address("10.0.0.5", &own(), true).address,
            "127.0.0.1"
        );
        assert_eq!(
            listen_address("nats.internal", &[], true).address,
            "127.0.0.1"
        );
        assert_eq!(listen_address("127.0.0.1", &[], false).address, "127.0.0.1");
    }

    #[test]
    fn an_address_the_host_lacks_or_a_name_binds_every_address() {
        // A NAT's address, or facts that did not list the addresses: binding it would fail.
        let nat = listen_address("203.0.113.7", &own(), false);
        assert_eq!(nat.address, "0.0.0.0");
        assert!(nat.why.contains("not one of this host's"), "{}", nat.why);
        assert_eq!(listen_address("10.0.0.5", &[], false).address, "0.0.0.0");
        assert_eq!(
            listen_address("nats.internal", &own(), false).address,
            "0.0.0.0"
        );
    }
}
