//! The types Binance serves over REST only (open interest, long/short ratios), polled.

use super::*;

pub(super) type Parse = fn(&str, &PollContext) -> Result<Vec<MarketMessage>, String>;

/// Open interest and the long/short ratios of each symbol's perpetual, as the plan asks.
pub(super) fn polls(plan: &VenuePlan, symbols: &[(String, String)]) -> Vec<Poll> {
    let endpoints: [(DataType, &str, Parse); 3] = [
        (
            DataType::OpenInterest,
            "openInterestHist",
            parse_open_interest,
        ),
        (
            DataType::LsrTopPosition,
            "topLongShortPositionRatio",
            parse_lsr_top_position,
        ),
        (
            DataType::LsrAllAccount,
            "globalLongShortAccountRatio",
            parse_lsr_all_account,
        ),
    ];
    let market_type = MarketType::Perpetual.as_str();
    let rest = plan.urls.futures_rest.trim_end_matches('/');
    let mut out = Vec::new();
    for (data_type, path, parse) in endpoints {
        if !serves(plan, data_type, MarketType::Perpetual) {
            continue;
        }
        for (normalised, wire) in symbols {
            out.push(Poll {
                stream: stream_name(data_type.as_str(), EXCHANGE, market_type, normalised),
                url: format!(
                    "{rest}/futures/data/{path}?symbol={wire}&period={RATIO_PERIOD}&limit=1"
                ),
                every: POLL_EVERY,
                parse,
                context: PollContext {
                    exchange: EXCHANGE.to_string(),
                    market_type: market_type.to_string(),
                    symbol: normalised.clone(),
                    now_ms: 0,
                },
            });
        }
    }
    out
}

/// The rows of a `/futures/data` answer (a list; an error answer is an object with `code`),
/// each checked to be about the symbol asked for.
pub(super) fn rows(body: &str, context: &PollContext) -> Result<Vec<Value>, String> {
    let value: Value = serde_json::from_str(body).map_err(|e| format!("not JSON: {e}"))?;
    let rows = match value {
        Value::Array(rows) => rows,
        Value::Object(_) if value.get("code").is_some() => {
            return Err(format!("error answer: {}", describe_error(&value)))
        }
        _ => return Err("not a list of rows".into()),
    };
    // Normalised to wire drops the dash; the other way would need a guess.
    let wire = context.symbol.replace('-', "");
    for row in &rows {
        if !row.is_object() {
            return Err(format!("a row that is not an object: {row}"));
        }
        match row.get("symbol").and_then(Value::as_str) {
            Some(symbol) if symbol != wire => {
                return Err(format!("a row for {symbol}, not {wire}"));
            }
            _ => {}
        }
    }
    Ok(rows)
}

pub(super) fn poll_message(context: &PollContext, ts_ms: i64, data: MarketData) -> MarketMessage {
    message(
        &context.exchange,
        &context.market_type,
        &context.symbol,
        ts_ms,
        context.now_ms,
        data,
    )
}

/// `openInterestHist`: `sumOpenInterest` contracts, `sumOpenInterestValue` USD; the mark price
/// is their ratio.
pub fn parse_open_interest(
    body: &str,
    context: &PollContext,
) -> Result<Vec<MarketMessage>, String> {
    rows(body, context)?
        .iter()
        .map(|row| {
            let contracts = decimal(row, "sumOpenInterest")?;
            let usd = decimal(row, "sumOpenInterestValue")?;
            let mark_price = ratio(usd, contracts)
                .ok_or("sumOpenInterestValue / sumOpenInterest is out of range")?;
            let data = MarketData::OpenInterest(OpenInterest {
                open_interest_value: contracts,
                open_interest_usd: usd,
                mark_price,
            });
            Ok(poll_message(context, int(row, "timestamp")?, data))
        })
        .collect()
}

/// `topLongShortPositionRatio`: the top traders' long and short shares of positions.
pub fn parse_lsr_top_position(
    body: &str,
    context: &PollContext,
) -> Result<Vec<MarketMessage>, String> {
    rows(body, context)?
        .iter()
        .map(|row| {
            let data = MarketData::LsrTopPosition(LsrTopPosition {
                long_position_ratio: decimal(row, "longAccount")?,
                short_position_ratio: decimal(row, "shortAccount")?,
                period: RATIO_PERIOD.to_string(),
            });
            Ok(poll_message(context, int(row, "timestamp")?, data))
        })
        .collect()
}

/// `globalLongShortAccountRatio`: all accounts' long and short shares.
pub fn parse_lsr_all_account(
    body: &str,
    context: &PollContext,
) -> Result<Vec<MarketMessage>, String> {
    rows(body, context)?
        .iter()
        .map(|row| {
            let data = MarketData::LsrAllAccount(LsrAllAccount {
                long_account_ratio: decimal(row, "longAccount")?,
                short_account_ratio: decimal(row, "shortAccount")?,
                period: RATIO_PERIOD.to_string(),
            });
            Ok(poll_message(context, int(row, "timestamp")?, data))
        })
        .collect()
}

/// `a / b` rounded half away from zero to 8 decimals; 0 when `b` is 0 (no open interest).
pub(super) fn ratio(a: Decimal8, b: Decimal8) -> Option<Decimal8> {
    if b.0 == 0 {
        return Some(Decimal8(0));
    }
    let numerator = i128::from(a.0) * 100_000_000;
    let denominator = i128::from(b.0);
    let (quotient, remainder) = (numerator / denominator, numerator % denominator);
    let rounded = if 2 * remainder.abs() >= denominator.abs() {
        quotient + numerator.signum() * denominator.signum()
    } else {
        quotient
    };
    i64::try_from(rounded).ok().map(Decimal8)
}
