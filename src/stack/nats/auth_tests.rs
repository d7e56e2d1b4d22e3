use super::*;
use crate::stack::nats::{streams, StreamLimits};

#[test]
fn passwords_are_stable_distinct_and_hide_the_secret() {
    let c = NatsCredentials::new("0123456789abcdef0123456789abcdef");
    let again = NatsCredentials::new("0123456789abcdef0123456789abcdef");
    let mut all = c.all_secrets();
    assert_eq!(all, again.all_secrets(), "same secret, same passwords");
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 6, "secret, route and 4 users all differ");
    for p in &all[..] {
        assert!(p.len() == 32 && p.chars().all(|c| c.is_ascii_hexdigit()));
    }
    assert_ne!(
        c.password(NatsUser::Storage),
        NatsCredentials::new("another").password(NatsUser::Storage)
    );
    assert_eq!(format!("{c:?}"), "NatsCredentials(<redacted>)");
}

#[test]
fn collector_publishes_data_only_and_reads_its_own_inbox() {
    let p = NatsUser::Collector
        .permissions(&streams(1, &StreamLimits::default()))
        .unwrap();
    assert_eq!(
        p.publish_allow,
        [
            "trade.>",
            "funding_rate.>",
            "open_interest.>",
            "liquidation.>",
            "volatility_index.>",
            "lsr_top_position.>",
            "lsr_all_account.>",
            "orderbook.>"
        ]
    );
    assert!(p.publish_deny.is_empty());
    assert_eq!(p.subscribe_allow, ["_INBOX_collector.>"]);
}

#[test]
fn storage_consumes_and_cannot_publish_data_or_change_streams() {
    let p = NatsUser::Storage
        .permissions(&streams(1, &StreamLimits::default()))
        .unwrap();
    assert_eq!(p.subscribe_allow, ["_INBOX_storage.>"]);
    assert!(p
        .publish_allow
        .contains(&"$JS.ACK.MARKET_DATA.>".to_string()));
    assert!(p
        .publish_allow
        .contains(&"$JS.API.CONSUMER.MSG.NEXT.ORDERBOOK_SNAP.>".to_string()));
    assert!(p
        .publish_allow
        .iter()
        .all(|s| s.starts_with("$JS.") && !s.contains("STREAM.CREATE") && !s.contains("DELETE")));
}

#[test]
fn services_read_anything_but_never_write_data_or_streams() {
    let p = NatsUser::Services
        .permissions(&streams(1, &StreamLimits::default()))
        .unwrap();
    assert_eq!(p.publish_allow, [">"]);
    assert_eq!(p.subscribe_allow, [">"]);
    for denied in [
        "trade.>",
        "orderbook.>",
        "$JS.API.STREAM.DELETE.>",
        "$JS.API.STREAM.UPDATE.>",
    ] {
        assert!(p.publish_deny.contains(&denied.to_string()), "{denied}");
    }
    assert_eq!(
        NatsUser::Admin.permissions(&streams(1, &StreamLimits::default())),
        None
    );
    assert_eq!(NatsUser::Admin.inbox_prefix(), "_INBOX_mp_admin");
}
