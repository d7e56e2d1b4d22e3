//! Why the stack could not produce what was asked: a bad version string, an impossible JetStream
//! layout, a value that must not go into a config file. Messages say what to change.

use thiserror::Error;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum StackError {
    #[error(
        "`{raw}` is not a ClickHouse version: expected dotted numbers such as 23.8.2.7 or 18.16.1"
    )]
    BadVersion { raw: String },

    #[error(
        "no host has the `nats` role: JetStream needs at least one NATS node to hold the streams"
    )]
    NoNatsNodes,

    #[error("stream replicas must be at least 1, but 0 was asked for")]
    ZeroReplicas,

    #[error(
        "stream replicas {requested} > {nodes} NATS node(s): JetStream puts every replica on a \
         different server; add NATS nodes or ask for at most {nodes} replicas"
    )]
    TooManyReplicas { requested: usize, nodes: usize },

    #[error("stream replicas {requested} > 5: JetStream supports at most 5 replicas per stream")]
    ReplicasAboveMax { requested: usize },

    #[error("invalid {field} `{value}`: {why}")]
    InvalidValue {
        field: &'static str,
        value: String,
        why: String,
    },

    #[error("template `{template}` did not render: {detail}")]
    Template {
        template: &'static str,
        detail: String,
    },
}

impl StackError {
    pub(crate) fn invalid(
        field: &'static str,
        value: impl Into<String>,
        why: impl Into<String>,
    ) -> Self {
        StackError::InvalidValue {
            field,
            value: value.into(),
            why: why.into(),
        }
    }
}
