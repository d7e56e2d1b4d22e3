//! A local order book, kept from a snapshot plus diffs, as every exchange's rules need one.
//! The exchange's own price and quantity text is kept beside the parsed value: OKX's checksum
//! is computed over the strings exactly as sent.

use std::collections::BTreeMap;

use crate::pipeline::message::{Decimal8, Level, MarketData, MarketMessage, Orderbook};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Bid,
    Ask,
}

/// One level as the exchange wrote it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawLevel {
    pub price: String,
    pub quantity: String,
}

#[derive(Debug, Clone, Default)]
pub struct LocalBook {
    bids: BTreeMap<Decimal8, (Decimal8, RawLevel)>,
    asks: BTreeMap<Decimal8, (Decimal8, RawLevel)>,
    /// The exchange's id of the last update applied (Binance `u`, OKX `seqId`, Deribit
    /// `change_id`).
    pub last_update_id: u64,
    /// When the exchange says the last update happened, UTC milliseconds.
    pub ts_ms: i64,
    /// Built from a snapshot and every diff since applied in order: only then is it published.
    pub synced: bool,
}

impl LocalBook {
    /// Forgets everything: the book waits for a new snapshot.
    pub fn reset(&mut self) {
        *self = LocalBook::default();
    }

    /// Sets one level from the exchange's text; a quantity of zero removes the price. An
    /// unparsable number is an error naming it (the book is then unusable: re-snapshot).
    pub fn set(&mut self, side: Side, price: &str, quantity: &str) -> Result<(), String> {
        let p: Decimal8 = price.parse()?;
        let q: Decimal8 = quantity.parse()?;
        let levels = match side {
            Side::Bid => &mut self.bids,
            Side::Ask => &mut self.asks,
        };
        if q.0 == 0 {
            levels.remove(&p);
        } else {
            let raw = RawLevel {
                price: price.to_string(),
                quantity: quantity.to_string(),
            };
            levels.insert(p, (q, raw));
        }
        Ok(())
    }

    /// Removes one price (Deribit's `delete`).
    pub fn remove(&mut self, side: Side, price: &str) -> Result<(), String> {
        let p: Decimal8 = price.parse()?;
        match side {
            Side::Bid => self.bids.remove(&p),
            Side::Ask => self.asks.remove(&p),
        };
        Ok(())
    }

    /// Replaces the whole book with a snapshot, marked synced at `update_id`.
    pub fn replace<'a>(
        &mut self,
        bids: impl IntoIterator<Item = (&'a str, &'a str)>,
        asks: impl IntoIterator<Item = (&'a str, &'a str)>,
        update_id: u64,
        ts_ms: i64,
    ) -> Result<(), String> {
        self.reset();
        for (price, quantity) in bids {
            self.set(Side::Bid, price, quantity)?;
        }
        for (price, quantity) in asks {
            self.set(Side::Ask, price, quantity)?;
        }
        self.last_update_id = update_id;
        self.ts_ms = ts_ms;
        self.synced = true;
        Ok(())
    }

    /// The best `n` levels of a side as the exchange wrote them: bids from the highest price,
    /// asks from the lowest.
    pub fn top_raw(&self, side: Side, n: usize) -> Vec<&RawLevel> {
        match side {
            Side::Bid => self.bids.values().rev().take(n).map(|(_, r)| r).collect(),
            Side::Ask => self.asks.values().take(n).map(|(_, r)| r).collect(),
        }
    }

    /// The best `n` levels of a side, parsed.
    pub fn top(&self, side: Side, n: usize) -> Vec<Level> {
        match side {
            Side::Bid => self
                .bids
                .iter()
                .rev()
                .take(n)
                .map(|(p, (q, _))| [*p, *q])
                .collect(),
            Side::Ask => self
                .asks
                .iter()
                .take(n)
                .map(|(p, (q, _))| [*p, *q])
                .collect(),
        }
    }

    pub fn len(&self, side: Side) -> usize {
        match side {
            Side::Bid => self.bids.len(),
            Side::Ask => self.asks.len(),
        }
    }

    /// The best bid at or above the best ask: the book is wrong (a missed update).
    pub fn crossed(&self) -> bool {
        match (self.bids.keys().next_back(), self.asks.keys().next()) {
            (Some(bid), Some(ask)) => bid >= ask,
            _ => false,
        }
    }

    /// The top `depth` levels as a MarketPrism order book message.
    pub fn message(
        &self,
        exchange: &str,
        market_type: &str,
        symbol: &str,
        depth: usize,
        now_ms: i64,
    ) -> MarketMessage {
        MarketMessage {
            exchange: exchange.to_string(),
            market_type: market_type.to_string(),
            symbol: symbol.to_string(),
            ts_ms: if self.ts_ms > 0 { self.ts_ms } else { now_ms },
            collected_ts_ms: now_ms,
            data: MarketData::Orderbook(Orderbook {
                bids: self.top(Side::Bid, depth),
                asks: self.top(Side::Ask, depth),
                last_update_id: self.last_update_id,
                depth_levels: depth as u32,
            }),
            collector_id: None,
            seq: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn diffs_set_and_remove_levels_and_top_is_best_first() {
        let mut book = LocalBook::default();
        book.replace(
            [("100.5", "1"), ("100", "2"), ("99", "3")],
            [("101", "1"), ("102.25", "2")],
            7,
            1_000,
        )
        .unwrap();
        book.set(Side::Bid, "100", "0").unwrap();
        book.set(Side::Ask, "100.75", "4.5").unwrap();
        let bids = book.top(Side::Bid, 5);
        assert_eq!(bids[0][0].to_string(), "100.5");
        assert_eq!(bids[1][0].to_string(), "99");
        assert_eq!(book.top(Side::Ask, 1)[0][0].to_string(), "100.75");
        assert_eq!(book.top_raw(Side::Ask, 3)[2].price, "102.25");
        assert!(!book.crossed());
        book.set(Side::Bid, "101", "1").unwrap();
        assert!(book.crossed());
        assert!(book.set(Side::Bid, "abc", "1").is_err());
    }

    #[test]
    fn message_holds_depth_levels_and_the_exchange_update_id() {
        let mut book = LocalBook::default();
        book.replace([("1", "1"), ("0.9", "1")], [("1.1", "1")], 42, 5)
            .unwrap();
        let message = book.message("binance", "spot", "BTC-USDT", 1, 9);
        let MarketData::Orderbook(b) = &message.data else {
            panic!("not a book")
        };
        assert_eq!((b.bids.len(), b.asks.len(), b.last_update_id), (1, 1, 42));
        assert_eq!((message.ts_ms, message.collected_ts_ms), (5, 9));
    }
}
