//! Looking at a deployed pipeline from the outside: rows in ClickHouse, the streams and the
//! storage's consumers in NATS, the services' health; and the proof that nothing was lost.

use std::collections::{BTreeMap, BTreeSet};

use super::{wait_for, Fleet};

/// The eight tables of `marketprism_hot`.
pub use mp_remote::plan::pipeline::TABLES;

/// Which test host runs what.
pub struct Pipeline<'a> {
    pub fleet: &'a Fleet,
    pub clickhouse: &'a str,
    /// Every NATS node.
    pub nats: &'a [&'a str],
    pub storage: &'a str,
    pub collector: &'a str,
}

/// Whether this node's copy of a consumer is its leader's (or it has no replicas).
fn leader_view(consumer: &serde_json::Value) -> bool {
    let cluster = &consumer["cluster"];
    let Some(leader) = cluster["leader"].as_str() else {
        return true;
    };
    !cluster["replicas"]
        .as_array()
        .is_some_and(|rs| rs.iter().any(|r| r["name"] == leader))
}

fn single_quoted(text: &str) -> String {
    format!("'{}'", text.replace('\'', r"'\''"))
}

impl Pipeline<'_> {
    /// A query as the MarketPrism user, on the ClickHouse host.
    pub fn sql(&self, query: &str) -> String {
        self.fleet.exec(
            self.clickhouse,
            &format!(
                "curl -sS --fail-with-body -H 'X-ClickHouse-User: marketprism' -H \"X-ClickHouse-Key: $(cat /etc/marketprism/clickhouse-password)\" --data-binary {} http://127.0.0.1:8123/",
                single_quoted(query)
            ),
        )
    }

    pub fn row_counts(&self) -> BTreeMap<String, u64> {
        let query = TABLES
            .iter()
            .map(|t| format!("SELECT '{t}', count() FROM marketprism_hot.{t}"))
            .collect::<Vec<_>>()
            .join(" UNION ALL ");
        self.sql(&format!("{query} FORMAT TabSeparated"))
            .lines()
            .filter_map(|l| {
                let (t, n) = l.split_once('\t')?;
                Some((t.to_string(), n.trim().parse().ok()?))
            })
            .collect()
    }

    /// A service's health JSON (`port` 8085 storage, 8087 collector), Null when it does not answer.
    pub fn health(&self, host: &str, port: u16) -> serde_json::Value {
        let body = self.fleet.exec(
            host,
            &format!("curl -s -m 3 http://127.0.0.1:{port}/health || true"),
        );
        serde_json::from_str(&body).unwrap_or(serde_json::Value::Null)
    }

    /// Per stream: (last sequence, storage consumer's pending + unacked), from NATS `/jsz` of
    /// every node: the consumer as its leader reports it (a follower's copy lags behind).
    pub fn streams(&self) -> BTreeMap<String, (u64, u64)> {
        let mut out: BTreeMap<String, (u64, u64)> = BTreeMap::new();
        for node in self.nats {
            let body = self.fleet.exec(
                node,
                "curl -s 'http://127.0.0.1:8222/jsz?streams=true&consumers=true' || true",
            );
            let Ok(jsz) = serde_json::from_str::<serde_json::Value>(&body) else {
                continue;
            };
            for stream in jsz["account_details"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|a| a["stream_detail"].as_array().into_iter().flatten())
            {
                let name = stream["name"].as_str().unwrap_or_default().to_string();
                let entry = out.entry(name.clone()).or_insert((0, u64::MAX));
                entry.0 = entry
                    .0
                    .max(stream["state"]["last_seq"].as_u64().unwrap_or(0));
                let consumer = stream["consumer_detail"].as_array().and_then(|cs| {
                    cs.iter()
                        .find(|c| c["name"] == format!("mp-storage-{name}").as_str())
                });
                if let Some(c) = consumer.filter(|c| leader_view(c)) {
                    entry.1 = c["num_pending"].as_u64().unwrap_or(0)
                        + c["num_ack_pending"].as_u64().unwrap_or(0);
                }
            }
        }
        out
    }

    /// Messages in both streams together.
    pub fn stream_tail(&self) -> u64 {
        self.streams().values().map(|(seq, _)| seq).sum()
    }

    /// Waits until the streams took `messages` more than now (the collectors keep publishing).
    pub fn wait_for_messages(&self, what: &str, messages: u64) {
        let start = self.stream_tail();
        wait_for(what, 180, || self.stream_tail() >= start + messages);
    }

    /// Systemd unit control on a host.
    pub fn systemctl(&self, host: &str, args: &str) {
        self.fleet.exec(host, &format!("systemctl {args}"));
    }

    pub fn wait_healthy(&self, host: &str, port: u16) {
        wait_for(&format!("{host}:{port} healthy"), 120, || {
            self.health(host, port)["status"] == "healthy"
        });
    }

    /// Stops the collector, waits until storage has stored everything in the streams, then
    /// checks that every trade and order book sequence the collector published is in
    /// ClickHouse: per collector boot, sequences 1..=max with no gap. Returns the duplicates.
    pub fn assert_nothing_lost(&self) -> u64 {
        let published = self.health(self.collector, 8087);
        let published_trades = published["published_by_type"]["trade"]
            .as_u64()
            .unwrap_or_else(|| panic!("collector health has published_by_type: {published}"));
        self.systemctl(self.collector, "stop mp-collector");
        wait_for("storage to store everything in the streams", 180, || {
            self.streams().values().all(|(_, pending)| *pending == 0)
        });
        let trade_ids = self.sql("SELECT trade_id FROM marketprism_hot.trades FORMAT TabSeparated");
        let mut boots: BTreeMap<String, BTreeSet<u64>> = BTreeMap::new();
        let mut rows = 0u64;
        for id in trade_ids.lines() {
            rows += 1;
            let (boot, seq) = id
                .rsplit_once('-')
                .unwrap_or_else(|| panic!("trade_id {id:?} is not COLLECTOR-BOOT-SEQ"));
            boots
                .entry(boot.to_string())
                .or_default()
                .insert(seq.parse().unwrap_or_else(|_| panic!("trade_id {id:?}")));
        }
        assert!(!boots.is_empty(), "no trades stored");
        let mut distinct = 0u64;
        for (boot, seqs) in &boots {
            let max = *seqs.iter().next_back().unwrap();
            let missing: Vec<u64> = (1..=max).filter(|s| !seqs.contains(s)).take(20).collect();
            assert!(
                missing.is_empty(),
                "{boot}: {} of {max} trades missing, first: {missing:?}",
                max - seqs.len() as u64
            );
            distinct += seqs.len() as u64;
        }
        let newest = boots.values().map(|s| s.len() as u64).max().unwrap_or(0);
        assert!(
            newest >= published_trades,
            "the collector said {published_trades} trades were published; {newest} are stored"
        );
        if boots.len() == 1 {
            let books = self.sql(
                "SELECT count(DISTINCT last_update_id), min(last_update_id), max(last_update_id) FROM marketprism_hot.orderbooks FORMAT TabSeparated",
            );
            let n: Vec<u64> = books
                .split_whitespace()
                .map(|x| x.parse().unwrap())
                .collect();
            assert_eq!((n[0], n[1]), (n[2], 1), "order books missing: {books}");
        }
        let duplicates = rows - distinct;
        println!(
            "nothing lost: {distinct} trades over {} collector boot(s), {duplicates} duplicate rows",
            boots.len()
        );
        duplicates
    }
}
