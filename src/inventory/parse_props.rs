//! Property test of the inventory parser and validator: inventories built from the real
//! sections and keys with good, bad and hostile values, then mutated a few characters at a
//! time. Whatever comes in, loading never panics, and every error and warning points at a
//! place in the file and carries no raw control character.
//!
//! 100,000 cases by default (about 10 s in CI's `cargo test`, a debug build, on two cores);
//! `PROPTEST_CASES=N` changes that.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use proptest::prelude::*;
use proptest::sample::select;
use proptest::test_runner::Config;

use super::parse_in;
use super::resolve::Env;

/// The tables besides `[[hosts]]`, each with the keys that belong there (and a wrong one);
/// an inventory has each at most once.
const TABLES: &[(&str, &[&str])] = &[
    (
        "[defaults]",
        &[
            "user",
            "port",
            "proxy_jump",
            "vars",
            "connection",
            "become",
            "keepalive",
            "identity_file",
        ],
    ),
    (
        "[groups.g]",
        &["hosts", "vars", "user", "proxy_jump", "port"],
    ),
    ("[groups.all]", &["hosts"]),
    (
        "[components.nats]",
        &["source", "version", "sha256", "base_url", "artifact"],
    ),
    (
        "[components.clickhouse]",
        &["source", "version", "sha256", "base_url", "artifact"],
    ),
    ("[components.redis]", &["source"]),
    (
        "[streams]",
        &[
            "max_msgs",
            "max_bytes",
            "max_age_secs",
            "duplicate_window_secs",
            "max_age",
        ],
    ),
    ("[thresholds]", &["min_memory_gib", "min_disk_gib", "disk"]),
    (
        "[services.s]",
        &[
            "roles",
            "hosts",
            "kind",
            "path",
            "command",
            "ports",
            "after",
            "user",
            "nats_user",
        ],
    ),
];

const HOST_KEYS: &[&str] = &[
    "address",
    "address",
    "private_address",
    "roles",
    "roles",
    "port",
    "user",
    "connection",
    "proxy_jump",
    "identity_file",
    "known_hosts",
    "host_key_checking",
    "connect_timeout",
    "keepalive",
    "become",
    "vars",
    "collector",
];

/// Values of a key: (good, bad: the kinds the issue found). Mostly good, so that a case gets
/// past the first checks to the later ones.
fn values_for(key: &str) -> (&'static [&'static str], &'static [&'static str]) {
    match key {
        "name" => (&["\"a\"", "\"b\"", "\"c\"", "\"mp-1.lan\""], &["\"all\"", "\"\"", "\"x y\""]),
        "address" | "private_address" => (
            &["\"10.0.0.1\"", "\"mp-1.lan\"", "\"::1\""],
            &[
                "\"127.0.0.9:2222\"", "\"root@127.0.0.9\"", "\"-oProxyCommand=id\"", "\"host;id\"",
                "\"ssh://host\"", "\"[::1]\"", "\"\"",
            ],
        ),
        "roles" => (
            &[
                "[\"nats\"]", "[\"clickhouse\", \"storage\"]", "[\"collector\"]",
                "[\"nats\", \"clickhouse\", \"storage\", \"collector\"]",
            ],
            &["[\"natz\"]", "[]"],
        ),
        "hosts" => (&["[\"a\"]", "[\"a\", \"b\"]"], &["[\"zz\"]", "[]"]),
        "port" => (&["22", "2222"], &["0", "65536", "\"22\""]),
        "user" => (&["\"root\"", "\"deploy\""], &["\"root;id\"", "\"\"", "\"a@b\"", "\"-o\""]),
        "connection" => (&["\"local\"", "\"ssh\""], &["\"telnet\""]),
        "proxy_jump" => (
            &["\"a\"", "\"b\"", "\"none\"", "\"me@gw.lan:2022\""],
            &["\"\"", "\"a,b\"", "\"gw;id.lan\""],
        ),
        "identity_file" | "known_hosts" => (&["\"~/.ssh/id_ed25519\""], &["\"\"", "[]"]),
        "host_key_checking" => (&["\"strict\"", "\"accept-new\""], &["\"maybe\""]),
        "connect_timeout" | "keepalive" => (&["\"10s\"", "5"], &["\"0s\"", "-1", "\"soon\""]),
        "become" => (&["true", "false"], &["\"yes\""]),
        "vars" => (
            &[
                "{ deploy_dir = \"/opt/mp\" }", "{ collector_rate = 10 }",
                "{ nats_max_store_gib = 2 }", "{}",
            ],
            &[
                "{ deploy_dir = \"relative/dir\" }", "{ deploy_dir = \"/\" }",
                "{ deploy_dir = 42 }", "{ collector_rate = \"fast\" }", "{ collector_rate = -1 }",
                "{ deploy_dri = \"/x\" }",
            ],
        ),
        "collector" => (
            &["{ source = \"synthetic\", rate = 5 }"],
            &["{ source = \"exchanges\" }", "{ rate = 0 }"],
        ),
        "source" => (&["\"os\"", "\"release\"", "\"push\""], &["\"npm\""]),
        "version" => (&["\"2.10.7\"", "\"25.10.1.3832\""], &["\"25.10.1\"", "\"2.10 7\"", "2"]),
        "sha256" => (
            &[
                "\"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\"",
                "{ \"nats-server-v2.10.7-linux-amd64.tar.gz\" = \"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\" }",
            ],
            &["\"abc\""],
        ),
        "base_url" => (&["\"http://mirror\""], &["\"ftp://x\""]),
        "artifact" => (&["\"files/nats.tar.gz\"", "[\"a.tgz\", \"b.tgz\"]"], &["\"\"", "[]"]),
        "max_msgs" | "max_bytes" | "max_age_secs" | "duplicate_window_secs" => {
            (&["1000", "60"], &["0", "-5", "\"x\""])
        }
        "min_memory_gib" | "min_disk_gib" => (&["4", "0.5"], &["-4", "nan", "\"4\""]),
        "kind" => (&["\"python\"", "\"binary\""], &["\"java\""]),
        "path" => (&["\"services/echo\""], &["\"\""]),
        "command" => (&["\"python3 app.py\"", "[\"./run\"]"], &["\"\""]),
        "ports" => (&["[8000]"], &["[4222]", "[0]"]),
        "after" => (&["[\"nats\"]"], &["[\"s\"]", "[\"nothing\"]"]),
        "nats_user" => (&["\"collector\"", "\"services\""], &["\"mp-admin\"", "\"root\""]),
        _ => (VALUES, VALUES),
    }
}

/// Any key's value: what a careless or hostile file holds.
const VALUES: &[&str] = &[
    "\"a\"",
    "\"\"",
    "\"all\"",
    "\"\\u001b[31m\"",
    "\"\\u0000\"",
    "\"é\"",
    "\"a,b\"",
    "22",
    "-1",
    "9223372036854775807",
    "1.5",
    "nan",
    "-inf",
    "true",
    "1979-05-27",
    "[1, \"x\"]",
    "{}",
    "{ a = { b = 1 } }",
];

/// Characters a mutation puts in: TOML's own syntax, line breaks, controls, wide ones.
const MUTATIONS: &[char] = &[
    '"', '\'', '[', ']', '{', '}', '=', ',', '.', '#', '\n', '\r', '\t', ' ', '\\', '\u{0}',
    '\u{1b}', '\u{7f}', 'é', '😀', 'a', '1',
];

/// `key = value` lines, each key once: (key, which value, how far to stretch a string).
fn lines(keys: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec((select(keys), any::<usize>(), any::<u8>()), 0..7).prop_map(|lines| {
        let mut seen = BTreeSet::new();
        let mut text = String::new();
        for (key, which, stretch) in lines {
            if !seen.insert(key) {
                continue;
            }
            let (good, bad) = values_for(key);
            let pool = match which % 12 {
                0 => VALUES,
                1 | 2 => bad,
                _ => good,
            };
            let value = pool[(which / 12) % pool.len()];
            let value = match value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
                // Now and then a string far past every limit.
                Some(inner) if stretch >= 250 && !inner.is_empty() => {
                    format!("\"{}\"", inner.repeat(usize::from(stretch) * 40))
                }
                _ => value.to_string(),
            };
            text.push_str(&format!("{key} = {value}\n"));
        }
        text
    })
}

fn host() -> impl Strategy<Value = String> {
    let (names, addresses) = (values_for("name").0, values_for("address").0);
    (select(names), select(addresses), lines(HOST_KEYS)).prop_map(|(name, address, lines)| {
        // The address first: a later `address` line replaces it, or is a duplicate key.
        let address = if lines.contains("address =") {
            String::new()
        } else {
            format!("address = {address}\n")
        };
        format!("[[hosts]]\nname = {name}\n{address}{lines}")
    })
}

fn table() -> impl Strategy<Value = (usize, String)> {
    (0..TABLES.len()).prop_flat_map(|t| {
        lines(TABLES[t].1).prop_map(move |lines| (t, format!("{}\n{lines}", TABLES[t].0)))
    })
}

/// A position, an operation (insert, replace, delete) and a character.
fn mutation() -> impl Strategy<Value = (usize, u8, char)> {
    (any::<usize>(), 0u8..3, select(MUTATIONS))
}

fn inventory() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(host(), 1..4),
        prop::collection::vec(table(), 0..4),
        select(&[0usize, 0, 0, 0, 0, 0, 1, 2][..]),
        prop::collection::vec(mutation(), 2),
    )
        .prop_map(|(hosts, tables, mutate, mutations)| {
            let mut text = hosts.concat();
            let mut seen = BTreeSet::new();
            for (t, table) in tables {
                if seen.insert(t) {
                    text.push_str(&table);
                }
            }
            for (at, op, c) in mutations.into_iter().take(mutate) {
                if text.is_empty() {
                    text.push(c);
                    continue;
                }
                let mut i = at % text.len();
                while !text.is_char_boundary(i) {
                    i -= 1;
                }
                match op {
                    0 => text.insert(i, c),
                    1 => {
                        text.remove(i);
                        text.insert(i, c);
                    }
                    _ => {
                        text.remove(i);
                    }
                }
            }
            text
        })
}

fn env() -> Env {
    Env {
        home: Some(PathBuf::from("/home/me")),
        user: "me".to_string(),
        existing_files: Some(BTreeSet::from([PathBuf::from("/home/me/.ssh/id_ed25519")])),
    }
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(100_000)
}

/// What may reach a terminal: line breaks of the snippet, tabs copied from the source.
fn raw_control(text: &str) -> Option<char> {
    text.chars()
        .find(|c| c.is_control() && *c != '\n' && *c != '\t')
}

proptest! {
    #![proptest_config(Config {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    })]

    #[test]
    fn any_inventory_loads_or_is_refused_at_a_place(text in inventory()) {
        let path = Path::new("inv.toml");
        match parse_in(&text, path, None, &env()) {
            Ok(inventory) => {
                for warning in &inventory.warnings {
                    prop_assert!(warning.starts_with("inv.toml:"), "{warning}");
                    prop_assert_eq!(raw_control(warning), None, "{:?}", warning);
                }
            }
            Err(error) => {
                let shown = error.to_string();
                prop_assert!(error.location().is_some(), "no place: {shown}");
                prop_assert!(shown.starts_with("inv.toml:"), "{shown}");
                prop_assert_eq!(raw_control(&shown), None, "{:?}", shown);
            }
        }
    }
}
