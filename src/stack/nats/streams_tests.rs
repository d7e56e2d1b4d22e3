use super::*;

#[test]
fn default_streams_exactly() {
    let got = streams(1, &StreamLimits::default());
    let want = vec![
        StreamSpec {
            name: "MARKET_DATA".into(),
            subjects: [
                "trade.>",
                "funding_rate.>",
                "open_interest.>",
                "liquidation.>",
                "volatility_index.>",
                "lsr_top_position.>",
                "lsr_all_account.>",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect(),
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_msgs: 5_000_000,
            max_bytes: 2_147_483_648,
            max_age_secs: 172_800,
            duplicate_window_secs: 300,
            replicas: 1,
        },
        StreamSpec {
            name: "ORDERBOOK_SNAP".into(),
            subjects: vec!["orderbook.>".into()],
            storage: StorageType::File,
            discard: DiscardPolicy::Old,
            max_msgs: 5_000_000,
            max_bytes: 2_147_483_648,
            max_age_secs: 172_800,
            duplicate_window_secs: 300,
            replicas: 1,
        },
    ];
    assert_eq!(got, want);
    assert_eq!(got[0].max_age(), Duration::from_secs(48 * 3600));
    assert_eq!(got[0].duplicate_window(), Duration::from_secs(300));
}

#[test]
fn every_data_type_has_exactly_one_stream() {
    let specs = streams(1, &StreamLimits::default());
    for t in [
        "orderbook",
        "trade",
        "funding_rate",
        "open_interest",
        "liquidation",
        "lsr_top_position",
        "lsr_all_account",
        "volatility_index",
    ] {
        let n = specs
            .iter()
            .filter(|s| s.subjects.contains(&format!("{t}.>")))
            .count();
        assert_eq!(n, 1, "{t}");
    }
}

#[test]
fn replicas_follow_the_node_count_up_to_three() {
    for (nodes, replicas) in [(1, 1), (2, 2), (3, 3), (4, 3), (7, 3)] {
        for s in streams(nodes, &StreamLimits::default()) {
            assert_eq!(s.replicas, replicas, "{nodes} nodes");
        }
    }
    assert!(streams_with_replicas(5, &StreamLimits::default())
        .iter()
        .all(|s| s.replicas == 5));
}

#[test]
fn limits_deserialise_with_defaults() {
    let l: StreamLimits = serde_json::from_str(r#"{"max_age_secs": 86400}"#).unwrap();
    assert_eq!(
        l,
        StreamLimits {
            max_age_secs: 86400,
            ..StreamLimits::default()
        }
    );
    let l: StreamLimits = serde_json::from_str("{}").unwrap();
    assert_eq!(l, StreamLimits::default());
    assert!(serde_json::from_str::<StreamLimits>(r#"{"max_agee": 1}"#).is_err());
    let s = streams(2, &l);
    assert_eq!(s[1].max_age_secs, 172_800);
}

#[test]
fn limits_validation() {
    assert_eq!(StreamLimits::default().validate(), Ok(()));
    let zero = StreamLimits {
        max_bytes: 0,
        ..StreamLimits::default()
    };
    assert_eq!(
        zero.validate().unwrap_err().to_string(),
        "invalid stream max_bytes `0`: 0 means unlimited to JetStream; give a limit"
    );
    let window = StreamLimits {
        max_age_secs: 60,
        ..StreamLimits::default()
    };
    assert_eq!(
        window.validate().unwrap_err().to_string(),
        "invalid stream duplicate_window_secs `300`: longer than max_age_secs (60); JetStream \
         refuses that"
    );
}

#[test]
fn layout_validation() {
    assert_eq!(validate_layout(1, None), Ok(1));
    assert_eq!(validate_layout(2, None), Ok(2));
    assert_eq!(validate_layout(5, None), Ok(3));
    assert_eq!(validate_layout(5, Some(5)), Ok(5));
    assert_eq!(validate_layout(3, Some(1)), Ok(1));
    assert_eq!(validate_layout(0, None), Err(StackError::NoNatsNodes));
    assert_eq!(validate_layout(0, Some(1)), Err(StackError::NoNatsNodes));
    assert_eq!(validate_layout(3, Some(0)), Err(StackError::ZeroReplicas));
    assert_eq!(
        validate_layout(2, Some(3)),
        Err(StackError::TooManyReplicas {
            requested: 3,
            nodes: 2
        })
    );
    assert_eq!(
        validate_layout(7, Some(6)),
        Err(StackError::ReplicasAboveMax { requested: 6 })
    );
    assert_eq!(
        validate_layout(2, Some(3)).unwrap_err().to_string(),
        "stream replicas 3 > 2 NATS node(s): JetStream puts every replica on a different server; \
         add NATS nodes or ask for at most 2 replicas"
    );
    assert_eq!(
        validate_layout(0, None).unwrap_err().to_string(),
        "no host has the `nats` role: JetStream needs at least one NATS node to hold the streams"
    );
}

#[test]
fn diff_of_equal_specs_is_empty() {
    let s = streams(3, &StreamLimits::default());
    assert!(diff(&s[0], &s[0]).is_empty());
    // Subject order does not matter.
    let mut reordered = s[0].clone();
    reordered.subjects.reverse();
    assert!(diff(&reordered, &s[0]).is_empty());
}

#[test]
fn diff_lists_every_differing_field() {
    let wanted = streams(3, &StreamLimits::default()).remove(0);
    let mut actual = wanted.clone();
    actual.subjects.retain(|s| s != "trade.>");
    actual.subjects.push("foo.>".into());
    actual.storage = StorageType::Memory;
    actual.discard = DiscardPolicy::New;
    actual.max_msgs = 1000;
    actual.max_bytes = 1 << 20;
    actual.max_age_secs = 3600;
    actual.duplicate_window_secs = 120;
    actual.replicas = 1;
    assert_eq!(
        diff(&actual, &wanted),
        [
            "subjects: missing trade.>; extra foo.>",
            "storage: server has memory, wanted file (cannot be changed in place)",
            "discard: server has new, wanted old",
            "max_msgs: server has 1000, wanted 5000000",
            "max_bytes: server has 1048576, wanted 2147483648",
            "max_age: server has 3600s, wanted 172800s",
            "duplicate_window: server has 120s, wanted 300s",
            "replicas: server has 1, wanted 3",
        ]
    );
    let mut renamed = wanted.clone();
    renamed.name = "OTHER".into();
    assert_eq!(
        diff(&renamed, &wanted),
        ["name: server has OTHER, wanted MARKET_DATA"]
    );
}

#[test]
fn specs_serialise_as_plain_data() {
    let s = &streams(1, &StreamLimits::default())[1];
    assert_eq!(
        serde_json::to_string(s).unwrap(),
        r#"{"name":"ORDERBOOK_SNAP","subjects":["orderbook.>"],"storage":"file","discard":"old","max_msgs":5000000,"max_bytes":2147483648,"max_age_secs":172800,"duplicate_window_secs":300,"replicas":1}"#
    );
    let back: StreamSpec = serde_json::from_str(&serde_json::to_string(s).unwrap()).unwrap();
    assert_eq!(&back, s);
}
