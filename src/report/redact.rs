//! Secrets out of everything mp-remote writes: a [`Secret`] hides itself when printed or
//! serialised, and a [`Redactor`] scrubs known secret strings (and their SHA-256, which the
//! ClickHouse users file holds) from text and JSON before it reaches a record, a log or a report.

use std::sync::{Arc, RwLock};

use sha2::{Digest, Sha256};

/// What a secret is replaced with.
pub const MASK: &str = "********";

/// Secrets shorter than this are not scrubbed: masking every "a" would garble the record and
/// protect nothing.
const MIN_SECRET_LEN: usize = 6;

/// A secret value: shows as [`MASK`] in Debug, Display and serialisation; [`Secret::expose`]
/// is the one way to the plain text.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(MASK)
    }
}

impl serde::Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

/// The secrets of one run, shared by everything that writes (clones share the same list).
/// Register a secret before anything that may carry it is written.
#[derive(Clone, Default)]
pub struct Redactor {
    needles: Arc<RwLock<Vec<String>>>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} strings)", self.read().len())
    }
}

impl Redactor {
    /// Scrubs `secret` from now on, and its SHA-256 in hex (either case).
    pub fn register(&self, secret: &str) {
        if secret.len() < MIN_SECRET_LEN {
            return;
        }
        let hash = hex::encode(Sha256::digest(secret.as_bytes()));
        let mut needles = self.needles.write().unwrap_or_else(|e| e.into_inner());
        for needle in [secret.to_string(), hash.to_uppercase(), hash] {
            if !needles.contains(&needle) {
                needles.push(needle);
            }
        }
        // Longest first: a secret that contains another is masked whole.
        needles.sort_by_key(|n| std::cmp::Reverse(n.len()));
    }

    pub fn register_secret(&self, secret: &Secret) {
        self.register(secret.expose());
    }

    /// `text` with every registered secret replaced by [`MASK`].
    pub fn redact(&self, text: &str) -> String {
        let needles = self.read();
        let mut out = text.to_string();
        for needle in needles.iter() {
            if out.contains(needle.as_str()) {
                out = out.replace(needle.as_str(), MASK);
            }
        }
        out
    }

    /// Every string (and object key) in `value`, redacted in place.
    pub fn redact_json(&self, value: &mut serde_json::Value) {
        use serde_json::Value;
        match value {
            Value::String(text) => {
                let clean = self.redact(text);
                if clean != *text {
                    *text = clean;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.redact_json(v)),
            Value::Object(map) => {
                let entries = std::mem::take(map);
                for (key, mut item) in entries {
                    self.redact_json(&mut item);
                    map.insert(self.redact(&key), item);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    /// `value` as JSON, redacted.
    pub fn to_json<T: serde::Serialize>(&self, value: &T) -> serde_json::Result<serde_json::Value> {
        let mut json = serde_json::to_value(value)?;
        self.redact_json(&mut json);
        Ok(json)
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<String>> {
        self.needles.read().unwrap_or_else(|e| e.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PASSWORD: &str = "0123456789abcdef0123456789abcdef";

    #[test]
    fn secret_never_shows() {
        let secret = Secret::new(PASSWORD);
        assert_eq!(format!("{secret}"), MASK);
        assert_eq!(format!("{secret:?}"), "Secret(********)");
        assert_eq!(serde_json::to_string(&secret).unwrap(), "\"********\"");
        assert_eq!(secret.expose(), PASSWORD);
    }

    #[test]
    fn redacts_the_secret_and_its_sha256() {
        let redactor = Redactor::default();
        let hash = hex::encode(Sha256::digest(PASSWORD.as_bytes()));
        let text = format!(
            "pw={PASSWORD}\n<password_sha256_hex>{hash}</password_sha256_hex> {}",
            hash.to_uppercase()
        );
        assert_eq!(redactor.redact(&text), text, "nothing registered yet");
        redactor.clone().register(PASSWORD);
        assert_eq!(
            redactor.redact(&text),
            "pw=********\n<password_sha256_hex>********</password_sha256_hex> ********"
        );
    }

    #[test]
    fn short_strings_are_not_secrets() {
        let redactor = Redactor::default();
        redactor.register("");
        redactor.register("abc");
        assert_eq!(redactor.redact("abc"), "abc");
    }

    #[test]
    fn redacts_json_strings_and_keys() {
        let redactor = Redactor::default();
        redactor.register(PASSWORD);
        let mut value = serde_json::json!({
            "a": [format!("x{PASSWORD}y"), 1, null],
            PASSWORD: {"b": PASSWORD}
        });
        redactor.redact_json(&mut value);
        assert_eq!(
            value,
            serde_json::json!({"a": ["x********y", 1, null], "********": {"b": "********"}})
        );
    }
}
