//! The NATS TLS files (`[components.nats] tls`) in a host's plan: on a NATS node the CA, the
//! certificate and its key, each restarting the server (`service`, the step that runs it)
//! when it changes; on every other host the CA alone, for its clients.

use crate::stack::nats::{NatsTlsFiles, TLS_CA_FILE, TLS_CERT_FILE, TLS_KEY_FILE};

use super::model::{Action, Step};

/// The certificate, its key (readable by the server's account only) and the CA, each
/// restarting the server when it changes.
pub(super) fn server_steps(tls: &NatsTlsFiles, service: &str) -> Vec<Step> {
    let file = |id: &str, path: &str, content: &str, mode: u32, owner: Option<&str>| Step {
        id: id.into(),
        title: format!("TLS {path}"),
        action: Action::File {
            path: path.into(),
            content: content.into(),
            mode,
            owner: owner.map(str::to_string),
        },
        notify: vec![service.into()],
    };
    vec![
        ca_step(tls, Some(service)),
        file(
            "init.nats.tls-cert",
            TLS_CERT_FILE,
            &tls.cert_pem,
            0o644,
            None,
        ),
        file(
            "init.nats.tls-key",
            TLS_KEY_FILE,
            &tls.key_pem,
            0o600,
            Some("nats:nats"),
        ),
    ]
}

/// The CA that signed the NATS certificate, for every client on the host; restarts the
/// server step `notify` names, if any.
pub(super) fn ca_step(tls: &NatsTlsFiles, notify: Option<&str>) -> Step {
    Step {
        id: "init.nats.tls-ca".into(),
        title: format!("TLS {TLS_CA_FILE}"),
        action: Action::File {
            path: TLS_CA_FILE.into(),
            content: tls.ca_pem.clone(),
            mode: 0o644,
            owner: None,
        },
        notify: notify.into_iter().map(str::to_string).collect(),
    }
}
