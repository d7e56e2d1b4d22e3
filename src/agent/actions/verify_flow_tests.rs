//! Tests of `verify_flow`.

use super::*;

fn state(last_seq: u64, ack_floor: Option<u64>) -> StreamState {
    StreamState {
        last_seq,
        ack_floor,
        pending: 0,
        from_storage: false,
    }
}

fn streams(md: StreamState, ob: StreamState) -> BTreeMap<String, StreamState> {
    [
        ("MARKET_DATA".to_string(), md),
        ("ORDERBOOK_SNAP".to_string(), ob),
    ]
    .into()
}

#[test]
fn counts_are_parsed_from_tab_separated_rows() {
    let counts = parse_counts("trades\t12\norderbooks\t0\n");
    assert_eq!(counts["trades"], 12);
    assert_eq!(counts["orderbooks"], 0);
}

#[test]
fn jsz_gives_stream_tail_and_storage_ack_floor() {
    let jsz: Value = serde_json::from_str(
            r#"{"account_details":[{"stream_detail":[
                {"name":"MARKET_DATA","state":{"messages":5,"last_seq":9},
                 "consumer_detail":[{"name":"other","ack_floor":{"stream_seq":1}},
                                    {"name":"mp-storage-MARKET_DATA","ack_floor":{"stream_seq":7},"num_pending":2}]},
                {"name":"ORDERBOOK_SNAP","state":{"messages":3,"last_seq":3}}]}]}"#,
        )
        .unwrap();
    let states = parse_jsz(&jsz);
    assert_eq!(
        states["MARKET_DATA"],
        (
            StreamState {
                last_seq: 9,
                ack_floor: Some(7),
                pending: 2,
                from_storage: false,
            },
            true
        )
    );
    assert_eq!(states["ORDERBOOK_SNAP"].0.ack_floor, None);
}

/// In a cluster a follower's copy of the consumer lags: only the leader's counts.
#[test]
fn the_consumer_leader_is_the_node_not_among_its_replicas() {
    let on = |replicas: &str| -> Value {
        serde_json::from_str(&format!(
            r#"{{"cluster":{{"leader":"h2","replicas":[{replicas}]}}}}"#
        ))
        .unwrap()
    };
    assert!(is_leader_view(&on(r#"{"name":"h1"},{"name":"h3"}"#)));
    assert!(!is_leader_view(&on(r#"{"name":"h2"},{"name":"h3"}"#)));
    assert!(is_leader_view(&serde_json::json!({"name": "r1"})));
}

#[test]
fn each_broken_hop_is_named() {
    let trades = "trades".to_string();
    let missing = vec![&trades];
    let healthy: Result<Value, String> = Ok(serde_json::json!({"last_error": null}));
    let quiet = streams(state(10, Some(10)), state(5, Some(5)));
    assert!(diagnose(&missing, &quiet, &quiet, &healthy).starts_with("stream not receiving"));

    let grown_unacked = streams(state(20, Some(10)), state(9, Some(5)));
    let message = diagnose(&missing, &quiet, &grown_unacked, &healthy);
    assert!(message.starts_with("storage not consuming"), "{message}");
    let clickhouse_down: Result<Value, String> =
        Ok(serde_json::json!({"clickhouse": "error", "last_error": "connection refused"}));
    let message = diagnose(&missing, &quiet, &grown_unacked, &clickhouse_down);
    assert!(message.starts_with("inserts failing"), "{message}");
    assert!(message.contains("connection refused"), "{message}");

    let acked = streams(state(20, Some(20)), state(9, Some(9)));
    let failing: Result<Value, String> =
        Ok(serde_json::json!({"last_error": "Code: 60, table missing"}));
    let message = diagnose(&missing, &quiet, &acked, &failing);
    assert!(message.starts_with("inserts failing"), "{message}");
    assert!(message.contains("Code: 60"), "{message}");

    let no_consumer = streams(state(20, None), state(9, Some(9)));
    let message = diagnose(&missing, &quiet, &no_consumer, &healthy);
    assert!(
        message.contains("no consumer mp-storage-MARKET_DATA"),
        "{message}"
    );

    let only_one = [("MARKET_DATA".to_string(), state(1, Some(1)))].into();
    let message = diagnose(&missing, &quiet, &only_one, &healthy);
    assert!(message.contains("ORDERBOOK_SNAP missing"), "{message}");
}

#[test]
fn storage_health_gives_the_streams_it_read_through_the_api() {
    let health = serde_json::json!({
        "stream_last_seq": {"MARKET_DATA": 120},
        "consumer_ack_floor": {"MARKET_DATA": 100},
        "consumer_lag": {"MARKET_DATA": 20, "ORDERBOOK_SNAP": 0},
    });
    let states = states_from_health(&health);
    assert_eq!(states.len(), 1, "only streams storage has read: {states:?}");
    assert_eq!(
        states["MARKET_DATA"],
        StreamState {
            last_seq: 120,
            ack_floor: Some(100),
            pending: 20,
            from_storage: true,
        }
    );
    // An older storage without the fields: nothing, the monitoring is asked instead.
    assert!(states_from_health(&serde_json::json!({"consumer_lag": {}})).is_empty());
}
