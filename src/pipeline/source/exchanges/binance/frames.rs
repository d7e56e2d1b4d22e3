//! Binance's frames and REST answers into typed values: every field checked, every error
//! naming the field, never a panic on what the wire holds.

use super::*;

/// `code 2: Invalid request: unknown variable` from `{"code":..,"msg":..}`.
pub(super) fn describe_error(error: &Value) -> String {
    if !error.is_object() {
        return excerpt(&error.to_string());
    }
    let code = error
        .get("code")
        .map_or_else(|| "?".to_string(), Value::to_string);
    let msg = error
        .get("msg")
        .and_then(Value::as_str)
        .unwrap_or("(no msg)");
    format!("code {code}: {msg}")
}

/// Spot `trade` (`t`) and futures `aggTrade` (`a`): the same fields otherwise.
pub(super) fn parse_trade(event: &Value, id_field: &str) -> Result<(i64, MarketData), String> {
    // `m`: the buyer is the maker, so the taker sold.
    let buyer_is_maker = boolean(event, "m")?;
    let trade_ts_ms = int(event, "T")?;
    let trade = Trade {
        trade_id: id(event, id_field)?,
        price: decimal(event, "p")?,
        quantity: decimal(event, "q")?,
        side: if buyer_is_maker { "sell" } else { "buy" }.to_string(),
        is_maker: buyer_is_maker,
        trade_ts_ms,
    };
    Ok((trade_ts_ms, MarketData::Trade(trade)))
}

/// `markPriceUpdate`: `p` mark, `i` index, `r` funding rate, `T` next funding time.
pub(super) fn parse_funding(event: &Value) -> Result<(i64, MarketData), String> {
    let event_ms = int(event, "E")?;
    let funding = FundingRate {
        current_funding_rate: decimal(event, "r")?,
        mark_price: decimal(event, "p")?,
        index_price: decimal(event, "i")?,
        funding_ts_ms: event_ms,
        next_funding_ts_ms: int(event, "T")?,
    };
    Ok((event_ms, MarketData::FundingRate(funding)))
}

/// `forceOrder`: the liquidation order in `o`; filled price and quantity when there are.
pub(super) fn parse_liquidation(event: &Value) -> Result<(i64, MarketData), String> {
    let event_ms = int(event, "E")?;
    let order = field(event, "o")?;
    let side = match text(order, "S")? {
        "SELL" => "sell",
        "BUY" => "buy",
        other => return Err(format!("o.S is {other:?}, not BUY or SELL")),
    };
    let liquidation = Liquidation {
        side: side.to_string(),
        price: filled_or(order, "ap", "p")?,
        quantity: filled_or(order, "z", "q")?,
        liquidation_ts_ms: int(order, "T").map_err(|e| format!("o.{e}"))?,
    };
    Ok((event_ms, MarketData::Liquidation(liquidation)))
}

/// The filled value (`ap`, `z`) unless it is empty or zero, else the order's own (`p`, `q`).
pub(super) fn filled_or(order: &Value, filled: &str, own: &str) -> Result<Decimal8, String> {
    let value = match order.get(filled) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.trim().is_empty() => None,
        Some(_) => Some(decimal(order, filled).map_err(|e| format!("o.{e}"))?),
    };
    match value {
        Some(v) if v.0 != 0 => Ok(v),
        _ => decimal(order, own).map_err(|e| format!("o.{e}")),
    }
}

pub(super) fn parse_diff(event: &Value, market: Market) -> Result<Diff, String> {
    let prev = match market {
        Market::Spot => None,
        Market::Perpetual => Some(unsigned(event, "pu")?),
    };
    let diff = Diff {
        first: unsigned(event, "U")?,
        last: unsigned(event, "u")?,
        prev,
        ts_ms: int(event, "E")?,
        bids: levels(event, "b")?,
        asks: levels(event, "a")?,
    };
    if diff.first > diff.last {
        return Err(format!("U={} is after u={}", diff.first, diff.last));
    }
    Ok(diff)
}

/// `{"lastUpdateId":..,"bids":[..],"asks":[..]}` (futures add `E` and `T`), or an error answer.
pub(super) fn parse_snapshot(body: &str) -> Result<Snapshot, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    if value.get("code").is_some() && value.get("lastUpdateId").is_none() {
        return Err(format!("error answer: {}", describe_error(&value)));
    }
    Ok(Snapshot {
        last_update_id: unsigned(&value, "lastUpdateId")?,
        ts_ms: value.get("E").and_then(Value::as_i64).unwrap_or(0),
        bids: levels(&value, "bids")?,
        asks: levels(&value, "asks")?,
    })
}

pub(super) fn field<'a>(value: &'a Value, name: &str) -> Result<&'a Value, String> {
    match value.get(name) {
        Some(Value::Null) | None => Err(format!("missing field {name}")),
        Some(v) => Ok(v),
    }
}

pub(super) fn text<'a>(value: &'a Value, name: &str) -> Result<&'a str, String> {
    field(value, name)?
        .as_str()
        .ok_or_else(|| format!("field {name} is not a string"))
}

pub(super) fn boolean(value: &Value, name: &str) -> Result<bool, String> {
    field(value, name)?
        .as_bool()
        .ok_or_else(|| format!("field {name} is not true or false"))
}

/// A millisecond time or a count: a JSON integer, or one written as a string (Binance's
/// `/futures/data` examples quote `timestamp`).
pub(super) fn int(value: &Value, name: &str) -> Result<i64, String> {
    let v = field(value, name)?;
    v.as_i64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| format!("field {name} is not an integer"))
}

pub(super) fn unsigned(value: &Value, name: &str) -> Result<u64, String> {
    let v = field(value, name)?;
    v.as_u64()
        .or_else(|| v.as_str().and_then(|s| s.trim().parse().ok()))
        .ok_or_else(|| format!("field {name} is not an unsigned integer"))
}

/// Binance writes prices, quantities and rates as decimal strings.
pub(super) fn decimal(value: &Value, name: &str) -> Result<Decimal8, String> {
    match field(value, name)? {
        Value::String(s) => s.parse().map_err(|e| format!("field {name}: {e}")),
        Value::Number(n) => n
            .to_string()
            .parse()
            .map_err(|e| format!("field {name}: {e}")),
        _ => Err(format!("field {name} is not a decimal string")),
    }
}

/// A trade id: Binance sends a number; kept as its text.
pub(super) fn id(value: &Value, name: &str) -> Result<String, String> {
    match field(value, name)? {
        Value::Number(n) if n.is_u64() || n.is_i64() => Ok(n.to_string()),
        Value::String(s) if !s.is_empty() => Ok(s.clone()),
        _ => Err(format!("field {name} is not a trade id")),
    }
}

pub(super) fn levels(value: &Value, name: &str) -> Result<Vec<(String, String)>, String> {
    let list = field(value, name)?
        .as_array()
        .ok_or_else(|| format!("field {name} is not a list"))?;
    list.iter()
        .map(|level| match level.as_array().map(Vec::as_slice) {
            Some([Value::String(price), Value::String(quantity), ..]) => {
                Ok((price.clone(), quantity.clone()))
            }
            _ => Err(format!(
                "field {name} holds {level}, not [\"price\",\"quantity\"]"
            )),
        })
        .collect()
}
