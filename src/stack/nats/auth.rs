//! Who may connect to NATS and what each may do: one user per kind of client, with the least
//! permissions its work needs, and the password of each derived from the fleet's one NATS
//! secret (kept on the NATS hosts like the ClickHouse password), so a re-deploy renders the same
//! bytes and only one value has to be kept.
//!
//! The permissions were found by running the real services against nats-server 2.9 (the
//! integration test `pipeline_flow` proves rows arrive): the collector publishes with JetStream
//! acks (its data subjects, replies on its own inbox); the storage binds durable pull consumers
//! (stream and consumer info, consumer create, next-message requests, acks).

use std::fmt;

use sha2::{Digest, Sha256};

use super::streams::{StreamSpec, MARKET_DATA, ORDERBOOK_SNAP};

/// A kind of NATS client the fleet has, each its own user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NatsUser {
    /// mp-remote's agent on a NATS host: creates and updates the streams, watches replicas.
    Admin,
    /// The collectors: publish market data.
    Collector,
    /// The storage services: consume the streams.
    Storage,
    /// The user's own services (`[services.*]`): read anything, never write market data or
    /// change the streams.
    Services,
}

impl NatsUser {
    pub const ALL: [NatsUser; 4] = [
        NatsUser::Admin,
        NatsUser::Collector,
        NatsUser::Storage,
        NatsUser::Services,
    ];

    pub fn name(self) -> &'static str {
        match self {
            NatsUser::Admin => "mp-admin",
            NatsUser::Collector => "collector",
            NatsUser::Storage => "storage",
            NatsUser::Services => "services",
        }
    }

    /// The reply subjects of this user's requests (`{prefix}.…`): its own, so that no other
    /// user may subscribe to them.
    pub fn inbox_prefix(self) -> String {
        format!("_INBOX_{}", self.name().replace('-', "_"))
    }

    /// What this user may publish and subscribe to (None: everything).
    pub fn permissions(self, streams: &[StreamSpec]) -> Option<Permissions> {
        let data_subjects: Vec<String> = streams.iter().flat_map(|s| s.subjects.clone()).collect();
        let inbox = vec![format!("{}.>", self.inbox_prefix())];
        match self {
            NatsUser::Admin => None,
            NatsUser::Collector => Some(Permissions {
                publish_allow: data_subjects,
                publish_deny: Vec::new(),
                subscribe_allow: inbox,
            }),
            NatsUser::Storage => {
                let mut allow = vec!["$JS.API.INFO".to_string()];
                for stream in [MARKET_DATA, ORDERBOOK_SNAP] {
                    allow.extend([
                        format!("$JS.API.STREAM.INFO.{stream}"),
                        // async-nats creates with CONSUMER.CREATE (2.9+); DURABLE.CREATE is
                        // the older form a client may fall back to.
                        format!("$JS.API.CONSUMER.CREATE.{stream}.>"),
                        format!("$JS.API.CONSUMER.DURABLE.CREATE.{stream}.>"),
                        format!("$JS.API.CONSUMER.INFO.{stream}.>"),
                        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.>"),
                        format!("$JS.ACK.{stream}.>"),
                    ]);
                }
                Some(Permissions {
                    publish_allow: allow,
                    publish_deny: Vec::new(),
                    subscribe_allow: inbox,
                })
            }
            NatsUser::Services => {
                let mut deny = data_subjects;
                deny.extend(
                    ["CREATE", "UPDATE", "DELETE", "PURGE", "MSG.DELETE"]
                        .iter()
                        .map(|op| format!("$JS.API.STREAM.{op}.>")),
                );
                Some(Permissions {
                    publish_allow: vec![">".into()],
                    publish_deny: deny,
                    subscribe_allow: vec![">".into()],
                })
            }
        }
    }
}

/// Subjects a user may publish to (minus the denied ones) and subscribe to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Permissions {
    pub publish_allow: Vec<String>,
    pub publish_deny: Vec<String>,
    pub subscribe_allow: Vec<String>,
}

/// The user the cluster's routes authenticate as (not a client user).
pub const ROUTE_USER: &str = "route";

/// The fleet's NATS secret and the passwords derived from it. Debug never shows them.
#[derive(Clone, PartialEq, Eq)]
pub struct NatsCredentials {
    secret: String,
}

impl NatsCredentials {
    /// `secret`: the fleet's, as generated once and kept in [`super::SECRET_FILE`].
    pub fn new(secret: impl Into<String>) -> Self {
        NatsCredentials {
            secret: secret.into(),
        }
    }

    pub fn secret(&self) -> &str {
        &self.secret
    }

    pub fn password(&self, user: NatsUser) -> String {
        self.derive(user.name())
    }

    pub fn route_password(&self) -> String {
        self.derive(ROUTE_USER)
    }

    /// Every value that must never appear in an output: the secret and each password.
    pub fn all_secrets(&self) -> Vec<String> {
        let mut out = vec![self.secret.clone(), self.route_password()];
        out.extend(NatsUser::ALL.iter().map(|u| self.password(*u)));
        out
    }

    /// 32 hex characters of SHA-256 over a label and the secret: knowing one user's password
    /// tells nothing of another's, nor of the secret.
    fn derive(&self, name: &str) -> String {
        let digest = Sha256::digest(format!("mp-remote nats {name}\n{}", self.secret));
        hex::encode(digest)[..32].to_string()
    }
}

impl fmt::Debug for NatsCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NatsCredentials(<redacted>)")
    }
}

#[cfg(test)]
#[path = "auth_tests.rs"]
mod tests;
