//! deribit: to be written.

use super::feed::{Feed, Poll};
use super::VenuePlan;

/// ws, rest, futures ws, futures rest.
pub const DEFAULT_URLS: [&str; 4] = ["wss://www.deribit.com/ws/api/v2", "https://www.deribit.com", "", ""];

pub fn feeds(_plan: &VenuePlan) -> (Vec<Box<dyn Feed>>, Vec<Poll>) {
    (Vec::new(), Vec::new())
}
