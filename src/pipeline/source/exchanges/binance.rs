//! binance: to be written.

use super::feed::{Feed, Poll};
use super::VenuePlan;

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = ["wss://stream.binance.com:9443/stream", "https://api.binance.com", "wss://fstream.binance.com/stream", "https://fapi.binance.com"];

pub fn feeds(_plan: &VenuePlan) -> (Vec<Box<dyn Feed>>, Vec<Poll>) {
    (Vec::new(), Vec::new())
}
