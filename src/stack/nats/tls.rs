//! The TLS files of a fleet's NATS (`[components.nats] tls`), as read on the control node: one
//! certificate every node presents (its SANs must name every node's private address, which
//! routes use, and 127.0.0.1, which the agent uses), its key, and the CA that signed it.

use std::fmt;

#[derive(Clone, PartialEq, Eq)]
pub struct NatsTlsFiles {
    pub cert_pem: String,
    pub key_pem: String,
    pub ca_pem: String,
}

impl fmt::Debug for NatsTlsFiles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsTlsFiles")
            .field("cert_pem", &format!("{} bytes", self.cert_pem.len()))
            .field("key_pem", &"<redacted>")
            .field("ca_pem", &format!("{} bytes", self.ca_pem.len()))
            .finish()
    }
}

/// The certificate every NATS node presents (to clients and to the other nodes' routes), its
/// key, and the CA that signed it, as `[components.nats] tls` names them: paths on the control
/// node, relative to the inventory.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsPaths {
    pub cert: String,
    pub key: String,
    pub ca: String,
}
