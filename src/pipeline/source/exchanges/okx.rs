//! okx: to be written.

use super::feed::{Feed, Poll};
use super::VenuePlan;

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = ["wss://ws.okx.com:8443/ws/v5/public", "https://www.okx.com", "", ""];

pub fn feeds(_plan: &VenuePlan) -> (Vec<Box<dyn Feed>>, Vec<Poll>) {
    (Vec::new(), Vec::new())
}
