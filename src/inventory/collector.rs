//! `collector` tables (in `[defaults]`, `[groups.NAME]` or a host): where a collector's data
//! comes from. Checked with positions like every other key, merged key by key (defaults <
//! groups < host), then checked as a whole, so `inventory check` refuses what the collector
//! would refuse on the host.
//!
//! ```toml
//! [groups.feeds.collector]
//! source = "exchanges"
//! exchanges = ["binance", "okx"]
//! symbols = ["BTC-USDT", "ETH-USDT"]
//! types = ["trade", "orderbook", "funding_rate"]
//! ```

use std::ops::Range;
use std::time::Duration;

use serde::Deserialize;
use toml::{Spanned, Value};

use super::error::{known_list, InventoryError};
use super::validate::Checker;
use crate::pipeline::config::{Endpoints, SourceConfig, SourceKind};
use crate::pipeline::message::{DataType, Exchange};
use crate::pipeline::source::exchanges::{markets, split_symbol};

/// A `collector` table as written.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCollector {
    pub source: Option<Spanned<String>>,
    pub rate: Option<Spanned<Value>>,
    pub exchanges: Option<Spanned<Vec<Spanned<String>>>>,
    pub symbols: Option<Spanned<Vec<Spanned<String>>>>,
    pub types: Option<Spanned<Vec<Spanned<String>>>>,
    pub book_depth: Option<Spanned<Value>>,
    pub book_interval: Option<Spanned<Value>>,
    pub stall_after: Option<Spanned<Value>>,
    pub binance: Option<RawEndpoints>,
    pub okx: Option<RawEndpoints>,
    pub deribit: Option<RawEndpoints>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEndpoints {
    pub ws_url: Option<Spanned<String>>,
    pub rest_url: Option<Spanned<String>>,
    pub futures_ws_url: Option<Spanned<String>>,
    pub futures_rest_url: Option<Spanned<String>>,
}

/// A value and where it was written.
type At<T> = Option<(T, Range<usize>)>;

/// One layer's `collector` table, each value checked on its own.
#[derive(Debug, Clone, Default)]
pub(crate) struct CollectorLayer {
    source: At<SourceKind>,
    rate: At<u32>,
    exchanges: At<Vec<Exchange>>,
    symbols: At<Vec<String>>,
    types: At<Vec<DataType>>,
    book_depth: At<u32>,
    book_interval: At<Duration>,
    stall_after: At<Duration>,
    /// (exchange, key, url)
    urls: Vec<(Exchange, &'static str, String, Range<usize>)>,
}

impl CollectorLayer {
    /// `upper` over `self`, key by key; URLs per exchange and key.
    pub fn overlay(&mut self, upper: &CollectorLayer) {
        fn over<T: Clone>(lower: &mut At<T>, upper: &At<T>) {
            if upper.is_some() {
                lower.clone_from(upper);
            }
        }
        over(&mut self.source, &upper.source);
        over(&mut self.rate, &upper.rate);
        over(&mut self.exchanges, &upper.exchanges);
        over(&mut self.symbols, &upper.symbols);
        over(&mut self.types, &upper.types);
        over(&mut self.book_depth, &upper.book_depth);
        over(&mut self.book_interval, &upper.book_interval);
        over(&mut self.stall_after, &upper.stall_after);
        for url in &upper.urls {
            self.urls.retain(|u| (u.0, u.1) != (url.0, url.1));
            self.urls.push(url.clone());
        }
    }
}

/// A host's collector settings, merged and checked as a whole.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CollectorChoice {
    /// What goes into `[source]` of `collector.toml`.
    pub source: SourceConfig,
    /// `rate` when the inventory set it (else the `collector_rate` var or the default).
    pub rate: Option<u32>,
}

fn names<T: Copy>(all: &[T], name: fn(T) -> &'static str) -> Vec<&'static str> {
    all.iter().map(|t| name(*t)).collect()
}

impl Checker<'_> {
    pub(crate) fn collector(
        &self,
        scope: &str,
        raw: Option<&RawCollector>,
    ) -> Result<CollectorLayer, InventoryError> {
        let Some(raw) = raw else {
            return Ok(CollectorLayer::default());
        };
        let scope = format!("collector of {scope}");
        let mut layer = CollectorLayer::default();
        if let Some(s) = &raw.source {
            let kind =
                match s.get_ref().as_str() {
                    "synthetic" => SourceKind::Synthetic,
                    "exchanges" => SourceKind::Exchanges,
                    other => return Err(self.src.invalid(
                        s.span(),
                        format!("unknown source {other:?} in {scope}"),
                        "use \"synthetic\" (generated data) or \"exchanges\" (live market data)",
                    )),
                };
            layer.source = Some((kind, s.span()));
        }
        if let Some(v) = &raw.rate {
            layer.rate = Some((
                self.whole(v, "rate", &scope, 1, 1_000_000, "rate = 40")?,
                v.span(),
            ));
        }
        if let Some(list) = &raw.exchanges {
            let all = names(&Exchange::ALL, Exchange::as_str);
            let parsed = self.list(list, "exchanges", &scope, |name| {
                Exchange::ALL
                    .into_iter()
                    .find(|e| e.as_str() == name)
                    .ok_or_else(|| {
                        (
                            format!("unknown exchange {name:?}"),
                            format!("use {}", known_list(&all)),
                        )
                    })
            })?;
            layer.exchanges = Some((parsed, list.span()));
        }
        if let Some(list) = &raw.symbols {
            let parsed = self.list(list, "symbols", &scope, |symbol| {
                match split_symbol(symbol) {
                    Some(_) => Ok(symbol.to_string()),
                    None => Err((
                        format!("symbol {symbol:?} is not BASE-QUOTE"),
                        "write symbols in capitals with a dash, e.g. \"BTC-USDT\"".to_string(),
                    )),
                }
            })?;
            layer.symbols = Some((parsed, list.span()));
        }
        if let Some(list) = &raw.types {
            let all = names(&DataType::ALL, DataType::as_str);
            let parsed = self.list(list, "types", &scope, |name| {
                DataType::ALL
                    .into_iter()
                    .find(|t| t.as_str() == name)
                    .ok_or_else(|| {
                        (
                            format!("unknown data type {name:?}"),
                            format!("use {}", known_list(&all)),
                        )
                    })
            })?;
            layer.types = Some((parsed, list.span()));
        }
        if let Some(v) = &raw.book_depth {
            let depth = self.whole(v, "book_depth", &scope, 1, 400, "book_depth = 20")?;
            layer.book_depth = Some((depth, v.span()));
        }
        if let Some(v) = &raw.book_interval {
            let d =
                self.duration_at_least(v, "book_interval", &scope, Duration::from_millis(100))?;
            layer.book_interval = Some((d, v.span()));
        }
        if let Some(v) = &raw.stall_after {
            let d = self.duration_at_least(v, "stall_after", &scope, Duration::from_secs(1))?;
            layer.stall_after = Some((d, v.span()));
        }
        for (exchange, endpoints) in [
            (Exchange::Binance, &raw.binance),
            (Exchange::Okx, &raw.okx),
            (Exchange::Deribit, &raw.deribit),
        ] {
            let Some(e) = endpoints else { continue };
            let keys = [
                ("ws_url", &e.ws_url),
                ("rest_url", &e.rest_url),
                ("futures_ws_url", &e.futures_ws_url),
                ("futures_rest_url", &e.futures_rest_url),
            ];
            for (key, value) in keys {
                let Some(value) = value else { continue };
                let url = self.endpoint(exchange, key, value, &scope)?;
                layer.urls.push((exchange, key, url, value.span()));
            }
        }
        Ok(layer)
    }

    /// The merged layers as one choice, or the first thing that does not fit together.
    pub(crate) fn collector_choice(
        &self,
        host: &str,
        merged: &CollectorLayer,
    ) -> Result<CollectorChoice, InventoryError> {
        let mut source = SourceConfig::default();
        let take = |v: &At<Vec<Exchange>>| v.as_ref().map(|(x, _)| x.clone());
        if let Some((kind, _)) = &merged.source {
            source.kind = *kind;
        }
        if let Some(exchanges) = take(&merged.exchanges) {
            source.exchanges = exchanges;
        }
        if let Some((symbols, _)) = &merged.symbols {
            source.symbols = symbols.clone();
        }
        if let Some((types, _)) = &merged.types {
            source.types = types.clone();
        }
        if let Some((d, _)) = merged.book_depth {
            source.book_depth = d;
        }
        if let Some((d, _)) = merged.book_interval {
            source.book_interval = d;
        }
        if let Some((d, _)) = merged.stall_after {
            source.stall_after = d;
        }
        for (exchange, key, url, _) in &merged.urls {
            let e: &mut Endpoints = match exchange {
                Exchange::Binance => &mut source.binance,
                Exchange::Okx => &mut source.okx,
                Exchange::Deribit => &mut source.deribit,
            };
            let slot = match *key {
                "ws_url" => &mut e.ws_url,
                "rest_url" => &mut e.rest_url,
                "futures_ws_url" => &mut e.futures_ws_url,
                _ => &mut e.futures_rest_url,
            };
            *slot = Some(url.clone());
        }
        let scope = format!("the collector of host {host:?}");
        if source.kind == SourceKind::Synthetic {
            // Keys only a live source reads would be ignored silently: say so instead.
            let live_only = [
                merged.types.as_ref().map(|(_, s)| ("types", s.clone())),
                merged
                    .book_depth
                    .as_ref()
                    .map(|(_, s)| ("book_depth", s.clone())),
                merged
                    .book_interval
                    .as_ref()
                    .map(|(_, s)| ("book_interval", s.clone())),
                merged
                    .stall_after
                    .as_ref()
                    .map(|(_, s)| ("stall_after", s.clone())),
                merged.urls.first().map(|u| (u.1, u.3.clone())),
            ];
            if let Some((key, span)) = live_only.into_iter().flatten().next() {
                return Err(self.src.invalid(
                    span,
                    format!(
                        "{key} applies to source = \"exchanges\" only, and {scope} is synthetic"
                    ),
                    "set source = \"exchanges\" in the same collector table, or remove the key",
                ));
            }
        } else {
            self.exchange_fit(&scope, merged, &source)?;
        }
        Ok(CollectorChoice {
            source,
            rate: merged.rate.as_ref().map(|(r, _)| *r),
        })
    }

    /// Every type served by some configured exchange, and every exchange with an instrument.
    fn exchange_fit(
        &self,
        scope: &str,
        merged: &CollectorLayer,
        source: &SourceConfig,
    ) -> Result<(), InventoryError> {
        // A combination is pointed at its own key when the layer set it, else at `source`.
        let at = |own: Option<Range<usize>>| {
            own.or_else(|| merged.source.as_ref().map(|(_, s)| s.clone()))
                .unwrap_or(0..0)
        };
        // Listed types must each come from some exchange; the default (all) means "what
        // the exchanges serve", which is never empty.
        let listed = merged.types.as_ref().map(|(_, span)| span.clone());
        for t in source.types.iter().filter(|_| listed.is_some()) {
            if source.exchanges.iter().all(|e| markets(*e, *t).is_empty()) {
                let from: Vec<&str> = Exchange::ALL
                    .into_iter()
                    .filter(|e| !markets(*e, *t).is_empty())
                    .map(Exchange::as_str)
                    .collect();
                return Err(self.src.invalid(
                    at(listed.clone()),
                    format!(
                        "{t} is not served by {} in {scope}",
                        known_list(&names(&source.exchanges, Exchange::as_str))
                    ),
                    format!(
                        "{t} comes from {}: add one to exchanges, or drop {t} from types",
                        known_list(&from)
                    ),
                ));
            }
        }
        if source.exchanges.contains(&Exchange::Deribit)
            && !source
                .symbols
                .iter()
                .any(|s| matches!(s.split('-').next(), Some("BTC" | "ETH")))
        {
            return Err(self.src.invalid(
                at(merged.symbols.as_ref().map(|(_, s)| s.clone())),
                format!("deribit has no instrument for these symbols in {scope}"),
                "deribit is collected for BTC and ETH: add \"BTC-USDT\" or drop deribit",
            ));
        }
        Ok(())
    }

    fn list<T: PartialEq>(
        &self,
        list: &Spanned<Vec<Spanned<String>>>,
        key: &str,
        scope: &str,
        parse: impl Fn(&str) -> Result<T, (String, String)>,
    ) -> Result<Vec<T>, InventoryError> {
        if list.get_ref().is_empty() {
            return Err(self.src.invalid(
                list.span(),
                format!("empty {key} in {scope}"),
                format!("list at least one, or remove {key} to keep the default"),
            ));
        }
        let mut out = Vec::new();
        for item in list.get_ref() {
            let parsed = parse(item.get_ref()).map_err(|(message, hint)| {
                self.src
                    .invalid(item.span(), format!("{message} in {key} of {scope}"), hint)
            })?;
            if !out.contains(&parsed) {
                out.push(parsed);
            }
        }
        Ok(out)
    }

    fn whole(
        &self,
        v: &Spanned<Value>,
        key: &str,
        scope: &str,
        min: i64,
        max: i64,
        example: &str,
    ) -> Result<u32, InventoryError> {
        match v.get_ref() {
            Value::Integer(n) if (min..=max).contains(n) => Ok(*n as u32),
            other => Err(self.src.invalid(
                v.span(),
                format!("{key} in {scope} must be a whole number from {min} to {max}, not {other}"),
                format!("e.g. {example}"),
            )),
        }
    }

    fn duration_at_least(
        &self,
        v: &Spanned<Value>,
        key: &str,
        scope: &str,
        least: Duration,
    ) -> Result<Duration, InventoryError> {
        let d = self.duration(key, scope, v, false)?;
        if d < least {
            return Err(self.src.invalid(
                v.span(),
                format!(
                    "{key} in {scope} must be at least {}",
                    humantime::format_duration(least)
                ),
                format!("e.g. {key} = \"1s\""),
            ));
        }
        Ok(d)
    }

    fn endpoint(
        &self,
        exchange: Exchange,
        key: &str,
        value: &Spanned<String>,
        scope: &str,
    ) -> Result<String, InventoryError> {
        let url = value.get_ref().trim();
        let name = exchange.as_str();
        if key.starts_with("futures") && exchange != Exchange::Binance {
            return Err(self.src.invalid(
                value.span(),
                format!("{name}.{key} in {scope}: only binance has separate futures endpoints"),
                format!("use {name}.ws_url"),
            ));
        }
        let schemes: &[&str] = if key.ends_with("ws_url") {
            &["ws://", "wss://"]
        } else {
            &["http://", "https://"]
        };
        let host = schemes.iter().find_map(|s| url.strip_prefix(s));
        let ok = host.is_some_and(|rest| {
            !rest.is_empty()
                && !rest.starts_with('/')
                && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
        });
        if !ok {
            return Err(self.src.invalid(
                value.span(),
                format!(
                    "{name}.{key} in {scope} is not a {} URL: {url:?}",
                    schemes.join(" or ")
                ),
                format!("e.g. {key} = \"{}example.net:9443/stream\"", schemes[1]),
            ));
        }
        Ok(url.to_string())
    }
}

#[cfg(test)]
#[path = "collector_tests.rs"]
mod tests;
