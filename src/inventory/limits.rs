//! `[streams]` and `[thresholds]`: the JetStream streams' limits and the resources a host
//! must have, checked with positions (the deploy reads them again, already sound).

use std::ops::Range;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::InventoryError;
use super::validate::Checker;
use crate::stack::StreamLimits;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStreams {
    pub max_msgs: Option<Spanned<Value>>,
    pub max_bytes: Option<Spanned<Value>>,
    pub max_age_secs: Option<Spanned<Value>>,
    pub duplicate_window_secs: Option<Spanned<Value>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawThresholds {
    pub min_memory_gib: Option<Spanned<Value>>,
    pub min_disk_gib: Option<Spanned<Value>>,
}

impl Checker<'_> {
    pub(crate) fn streams(&self, raw: &Spanned<RawStreams>) -> Result<(), InventoryError> {
        let r = raw.get_ref();
        let defaults = StreamLimits::default();
        let limits = StreamLimits {
            max_msgs: self.stream_limit("max_msgs", &r.max_msgs, defaults.max_msgs)?,
            max_bytes: self.stream_limit("max_bytes", &r.max_bytes, defaults.max_bytes)?,
            max_age_secs: self.stream_limit(
                "max_age_secs",
                &r.max_age_secs,
                defaults.max_age_secs,
            )?,
            duplicate_window_secs: self.stream_limit(
                "duplicate_window_secs",
                &r.duplicate_window_secs,
                defaults.duplicate_window_secs,
            )?,
        };
        limits.validate().map_err(|e| {
            // The one rule across fields: the window against the age, whichever was written.
            let span: Range<usize> = r
                .duplicate_window_secs
                .as_ref()
                .or(r.max_age_secs.as_ref())
                .map_or(raw.span(), Spanned::span);
            self.src.invalid(span, format!("[streams]: {e}"), "")
        })
    }

    fn stream_limit(
        &self,
        key: &str,
        value: &Option<Spanned<Value>>,
        default: u64,
    ) -> Result<u64, InventoryError> {
        let Some(value) = value else {
            return Ok(default);
        };
        match value.get_ref() {
            Value::Integer(n) if *n > 0 => Ok(n.unsigned_abs()),
            other => Err(self.src.invalid(
                value.span(),
                format!("[streams] {key} = {other} is not a limit"),
                format!("write a whole number above 0 (0 would mean unlimited to JetStream), e.g. {key} = {default}"),
            )),
        }
    }

    pub(crate) fn thresholds(&self, raw: &Spanned<RawThresholds>) -> Result<(), InventoryError> {
        let r = raw.get_ref();
        for (key, value) in [
            ("min_memory_gib", &r.min_memory_gib),
            ("min_disk_gib", &r.min_disk_gib),
        ] {
            let Some(value) = value else { continue };
            let ok = match value.get_ref() {
                Value::Integer(n) => *n >= 0,
                Value::Float(f) => f.is_finite() && *f >= 0.0,
                _ => false,
            };
            if !ok {
                return Err(self.src.invalid(
                    value.span(),
                    format!(
                        "[thresholds] {key} = {} is not an amount of GiB",
                        value.get_ref()
                    ),
                    "write a number of GiB, 0 or more, e.g. min_memory_gib = 4 (0 checks nothing)",
                ));
            }
        }
        Ok(())
    }
}
