//! Whether a service's health answer means healthy, and if not, why: one pure judge used by
//! the agent (waiting after a start) and by the control node (`status`). JSON is parsed,
//! never substring-matched ("unhealthy" contains "healthy").

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How a service's health answer is judged (see [`crate::stack::health::judge`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expect {
    /// HTTP 200 whose JSON `field` equals `value` (parsed, never substring-matched).
    Json { field: String, value: String },
    /// The pipeline services' `/health`: JSON `field` equals `value`, with HTTP 200; any other
    /// answer (`degraded`, `unhealthy`, whatever its code) says why with its `last_error` or
    /// the source's `degraded` reasons.
    Report { field: String, value: String },
    /// HTTP 200 whose body, trimmed, is exactly this (ClickHouse's `/ping` says `Ok.`).
    Body(String),
    /// Any HTTP 2xx.
    Success,
    /// Something accepted a TCP connection.
    Accept,
}

/// One HTTP (or TCP) answer: `answered` is false when nothing answered (then `error` says
/// why: refused, no answer in time); `code` is 0 for a TCP check.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reply {
    pub answered: bool,
    pub code: u16,
    pub body: String,
    pub error: Option<String>,
}

impl Reply {
    pub fn http(code: u16, body: &str) -> Self {
        Reply {
            answered: true,
            code,
            body: body.to_string(),
            error: None,
        }
    }

    pub fn none(error: &str) -> Self {
        Reply {
            error: Some(error.to_string()),
            ..Reply::default()
        }
    }

    /// The body when it answered 200, else what went wrong, naming the call.
    pub fn ok_body(&self, name: &str) -> Result<&str, String> {
        match (self.answered, self.code) {
            (true, 200) => Ok(&self.body),
            (true, code) => Err(format!("{name}: HTTP {code}: {}", one_line(&self.body))),
            (false, _) => Err(format!(
                "{name}: {}",
                self.error.as_deref().unwrap_or("no answer")
            )),
        }
    }
}

/// `label` names the check in messages (`nats.healthz`); `path` is the URL's path
/// (`/healthz`), as messages about the body say it.
pub fn judge(expect: &Expect, reply: &Reply, label: &str, path: &str) -> Result<(), String> {
    match expect {
        Expect::Accept => answered(reply, label),
        Expect::Success => {
            answered(reply, label)?;
            if (200..300).contains(&reply.code) {
                Ok(())
            } else {
                Err(format!(
                    "{label}: HTTP {}: {}",
                    reply.code,
                    one_line(&reply.body)
                ))
            }
        }
        Expect::Body(want) => {
            let body = reply.ok_body(label)?;
            match body.trim() {
                b if b == want => Ok(()),
                other => Err(format!("{path} answered {other:?}, not {want:?}")),
            }
        }
        Expect::Json { field, value } => json_field(reply.ok_body(label)?, field, value, path),
        Expect::Report { field, value } => report(reply, label, path, field, value),
    }
}

fn answered(reply: &Reply, label: &str) -> Result<(), String> {
    if reply.answered {
        Ok(())
    } else {
        Err(format!(
            "{label}: {}",
            reply.error.as_deref().unwrap_or("no answer")
        ))
    }
}

/// A 200 body whose JSON `field` must be `value`; the body's own `error` says why not.
fn json_field(body: &str, field: &str, value: &str, path: &str) -> Result<(), String> {
    let json: Value = serde_json::from_str(body)
        .map_err(|e| format!("{path} is not JSON ({e}): {}", one_line(body)))?;
    let actual = json.get(field).and_then(Value::as_str);
    if actual == Some(value) {
        return Ok(());
    }
    let error = json.get("error").and_then(Value::as_str);
    Err(format!(
        "{path} {field} is {:?}{}",
        actual.unwrap_or("missing"),
        error.map(|e| format!(": {e}")).unwrap_or_default()
    ))
}

/// The pipeline's `/health`: judged at any HTTP code, a bad status explained by the service.
fn report(reply: &Reply, label: &str, path: &str, field: &str, value: &str) -> Result<(), String> {
    answered(reply, label)?;
    let (code, body) = (reply.code, reply.body.as_str());
    let json: Value = serde_json::from_str(body).map_err(|e| {
        format!(
            "{path} answered HTTP {code}, not JSON ({e}): {}",
            one_line(body)
        )
    })?;
    let status = json.get(field).and_then(Value::as_str);
    if status == Some(value) {
        return if code == 200 {
            Ok(())
        } else {
            Err(format!("{path} says {value:?} but answered HTTP {code}"))
        };
    }
    let last_error = match json.get("last_error") {
        None | Some(Value::Null) => None,
        Some(Value::String(e)) if e.trim().is_empty() => None,
        Some(Value::String(e)) => Some(one_line(e)),
        Some(other) => Some(one_line(&other.to_string())),
    };
    // A live collector names what degrades it (stalled streams, exchanges not connected).
    let reasons: Vec<String> = json["source"]["degraded"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).map(one_line).collect())
        .unwrap_or_default();
    let why = last_error.or_else(|| match reasons.as_slice() {
        [] => None,
        [one] => Some(one.clone()),
        [first, rest @ ..] => Some(format!("{first} (and {} more)", rest.len())),
    });
    Err(format!(
        "{path} {field} is {:?}{}",
        status.unwrap_or("missing"),
        why.map(|e| format!(": {e}")).unwrap_or_default()
    ))
}

/// The first line of `text`, at most 200 characters: what a message quotes of a body.
pub fn one_line(text: &str) -> String {
    let line = text.trim().lines().next().unwrap_or("");
    line.chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_expectation() {
        let ok = Reply::http(200, r#"{"status":"ok"}"#);
        let json = Expect::Json {
            field: "status".into(),
            value: "ok".into(),
        };
        assert_eq!(judge(&json, &ok, "x.health", "/h"), Ok(()));
        assert_eq!(
            judge(&json, &Reply::http(200, r#"{"status":"okay"}"#), "x", "/h"),
            Err(r#"/h status is "okay""#.into())
        );
        assert_eq!(
            judge(
                &Expect::Accept,
                &Reply::none("connection refused"),
                "x.tcp",
                ""
            ),
            Err("x.tcp: connection refused".into())
        );
        assert_eq!(judge(&Expect::Accept, &Reply::http(0, ""), "x", ""), Ok(()));
        assert_eq!(
            judge(&Expect::Success, &Reply::http(500, "boom"), "x.health", "/"),
            Err("x.health: HTTP 500: boom".into())
        );
        assert_eq!(
            judge(
                &Expect::Body("Ok.".into()),
                &Reply::http(200, "Ok.\n"),
                "c",
                "/ping"
            ),
            Ok(())
        );
    }
}
