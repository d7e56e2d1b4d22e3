//! Where a collector's messages come from. One trait, so a websocket source for a real exchange
//! fits beside the synthetic one: `next().await` yields messages as they arrive.

pub mod exchanges;
pub mod synthetic;

use std::sync::Arc;

use async_trait::async_trait;

use super::message::MarketMessage;
use exchanges::stats::FeedStats;

#[async_trait]
pub trait Source: Send {
    /// The next message; `None` when the source has ended for good.
    async fn next(&mut self) -> Option<MarketMessage>;

    /// Whether the collector may simply stop calling [`Source::next`] while its buffer is full.
    /// A generator can wait; an exchange's websocket cannot (the exchange keeps sending), so
    /// for such a source the collector counts each message it cannot buffer as dropped.
    fn can_pause(&self) -> bool;

    /// For logs: `synthetic (40 msg/s, seed 1)`.
    fn describe(&self) -> String;

    /// A live source's per-stream record, for `/health` and `/metrics`.
    fn feed_stats(&self) -> Option<Arc<FeedStats>> {
        None
    }
}
