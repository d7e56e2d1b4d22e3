//! `[components.*]` of the inventory: where each server comes from.
//!
//! ```toml
//! [components.nats]
//! source = "release"            # the vendor's release, downloaded on the host with curl
//! version = "2.10.7"
//! sha256 = "<64 hex digits>"    # required: the asset's line in the release's SHA256SUMS
//! # base_url = "http://mirror.internal"   # a mirror of https://github.com, same paths
//!
//! [components.nats]
//! source = "push"               # a file on the control node, uploaded (air-gapped hosts)
//! artifact = "files/nats-server-v2.10.7-linux-amd64.tar.gz"   # relative to the inventory
//! sha256 = "<64 hex digits>"
//!
//! [components.clickhouse]
//! source = "release"            # packages.clickhouse.com/tgz/stable, two archives
//! version = "25.10.1.3832"      # four parts, as the archives are named
//! sha256 = { "clickhouse-common-static-25.10.1.3832-amd64.tgz" = "...", "clickhouse-server-25.10.1.3832-amd64.tgz" = "..." }
//! # source = "push" takes artifact = ["files/<those two archives, or ClickHouse's .debs>"]
//! ```

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::stack::component;

/// How a component gets onto a host.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "source", rename_all = "snake_case", deny_unknown_fields)]
pub enum Source {
    /// The OS package (apt, dnf, yum).
    Os {},
    /// The vendor's release, pinned by version and sha256.
    Release {
        version: Option<String>,
        sha256: Option<Checksums>,
        /// A mirror of the vendor's site with the same paths (tests, proxies, air gaps with a
        /// local web server); the default is the vendor's own site.
        base_url: Option<String>,
    },
    /// A file on the control node, uploaded (air-gapped hosts).
    Push {
        /// Paths on the control node, relative to the inventory file's directory: one for
        /// NATS; for ClickHouse its two archives or packages (common-static and server).
        artifact: Artifacts,
        sha256: Option<Checksums>,
        version: Option<String>,
    },
}

/// One file, or several (ClickHouse comes as a common-static and a server archive).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Artifacts {
    One(String),
    Many(Vec<String>),
}

impl Artifacts {
    pub fn paths(&self) -> Vec<&str> {
        match self {
            Self::One(path) => vec![path],
            Self::Many(paths) => paths.iter().map(String::as_str).collect(),
        }
    }
}

impl Source {
    pub fn name(&self) -> &'static str {
        match self {
            Self::Os {} => "os",
            Self::Release { .. } => "release",
            Self::Push { .. } => "push",
        }
    }
}

/// The release's checksums: one sum (the one file a host needs), or sums by file name as the
/// vendor's SHA256SUMS lists them, for fleets of several architectures and for components
/// made of several files (ClickHouse).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum Checksums {
    One(String),
    ByFile(BTreeMap<String, String>),
}

impl Checksums {
    /// The sum for `file`; a single sum stands for whichever one file is asked for.
    pub fn for_file(&self, file: &str) -> Option<&str> {
        match self {
            Self::One(sum) => Some(sum),
            Self::ByFile(sums) => sums.get(file).map(String::as_str),
        }
    }

    fn all(&self) -> Vec<&str> {
        match self {
            Self::One(sum) => vec![sum],
            Self::ByFile(sums) => sums.values().map(String::as_str).collect(),
        }
    }
}

/// The inventory's `[components.*]`, by the names the components declare
/// (`stack::component::ALL`).
#[derive(Debug, Clone, PartialEq)]
pub struct Components {
    /// Every vendor's server, by name: as its table says, else its pinned release.
    sources: BTreeMap<&'static str, Source>,
    /// The settings a server takes beside its source (`[components.nats] tls`), by name and
    /// key, as written and as its module checked them.
    settings: BTreeMap<(&'static str, &'static str), toml::Value>,
}

impl Components {
    /// Where the vendor's server `name` comes from (None: not a vendor's server).
    pub fn source(&self, name: &str) -> Option<&Source> {
        self.sources.get(name)
    }

    /// The setting `key` of `[components.NAME]` (one its module declares), as written.
    pub fn setting(&self, name: &str, key: &str) -> Option<&toml::Value> {
        self.settings
            .iter()
            .find(|((n, k), _)| *n == name && *k == key)
            .map(|(_, v)| v)
    }

    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let names: Vec<&str> = component::ALL.iter().map(|c| c.name).collect();
        for key in table.keys() {
            if !names.contains(&key.as_str()) {
                return Err(format!(
                    "[components.{key}] is not a component: use {}",
                    one_of(&names)
                ));
            }
        }
        let vendors = || {
            component::ALL
                .into_iter()
                .filter_map(|c| Some((c, c.vendor_plan()?, c.pinned()?)))
        };
        // A setting of another server's written here: say where it belongs.
        for (c, plan, _) in vendors() {
            let Some(own) = table.get(c.name).and_then(toml::Value::as_table) else {
                continue;
            };
            for key in own.keys() {
                if plan.settings.iter().any(|s| s.key == key) {
                    continue;
                }
                let others: Vec<String> = vendors()
                    .filter(|(_, p, _)| p.settings.iter().any(|s| s.key == key))
                    .map(|(o, _, _)| format!("[components.{}]", o.name))
                    .collect();
                if !others.is_empty() {
                    return Err(format!(
                        "[components.{}]: {key} applies to {} only",
                        c.name,
                        others.join(" or ")
                    ));
                }
            }
        }
        let mut settings = BTreeMap::new();
        for (c, plan, _) in vendors() {
            for setting in plan.settings {
                let Some(value) = table.get(c.name).and_then(|t| t.get(setting.key)) else {
                    continue;
                };
                (setting.check)(value)
                    .map_err(|e| format!("[components.{}]: {}: {e}", c.name, setting.key))?;
                settings.insert((c.name, setting.key), value.clone());
            }
        }
        let mut sources = BTreeMap::new();
        for (c, plan, pinned) in vendors() {
            let name = c.name;
            let without_settings = table.get(name).map(|value| {
                let mut value = value.clone();
                if let Some(t) = value.as_table_mut() {
                    for setting in plan.settings {
                        t.remove(setting.key);
                    }
                }
                value
            });
            let source = match without_settings {
                None => Source::Release {
                    version: Some(pinned.to_string()),
                    sha256: None,
                    base_url: None,
                },
                Some(value) => value.try_into::<Source>().map_err(|e| {
                    format!(
                        "[components.{name}]: {e}; use source = \"os\", \"release\" (version, sha256, base_url) or \"push\" (artifact, sha256, version)"
                    )
                })?,
            };
            validate(&source).map_err(|e| format!("[components.{name}]: {e}"))?;
            sources.insert(name, source);
        }
        Ok(Self { sources, settings })
    }
}

/// `a, b or c`.
fn one_of(names: &[&str]) -> String {
    match names {
        [] => String::new(),
        [one] => one.to_string(),
        [rest @ .., last] => format!("{} or {last}", rest.join(", ")),
    }
}

/// Malformed values are refused here, before any host is touched. A missing sha256 is not:
/// whether it is needed depends on the hosts' roles (each server's install steps and its
/// `check_source`, `plan::vendor`).
fn validate(source: &Source) -> Result<(), String> {
    match source {
        Source::Os {} => Ok(()),
        Source::Release {
            version,
            sha256,
            base_url,
        } => {
            if let Some(v) = version {
                check_version(v)?;
            }
            if let Some(url) = base_url {
                check_base_url(url)?;
            }
            for sum in sha256.iter().flat_map(Checksums::all) {
                check_sha256(sum)?;
            }
            Ok(())
        }
        Source::Push {
            artifact,
            sha256,
            version,
        } => {
            if artifact.paths().is_empty() {
                return Err(
                    "artifact = [] names no file: give the path of a .tar.gz, a binary or a .deb"
                        .into(),
                );
            }
            for path in artifact.paths() {
                if path.trim().is_empty() || path.ends_with('/') {
                    return Err(format!(
                        "artifact = \"{path}\" names no file: give the path of a .tar.gz, a binary or a .deb"
                    ));
                }
            }
            if let Some(v) = version {
                check_version(v)?;
            }
            for sum in sha256.iter().flat_map(Checksums::all) {
                check_sha256(sum)?;
            }
            Ok(())
        }
    }
}

/// A version as the vendors write it: `2.10.7`, `v2.10.7`, `25.10.1.3832`. It ends up in
/// file names and URLs.
pub(crate) fn check_version(version: &str) -> Result<(), String> {
    let ok = !version.is_empty()
        && version
            .trim_start_matches('v')
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-+".contains(c));
    if ok {
        Ok(())
    } else {
        Err(format!(
            "version = {version:?} is not a version: write it like \"2.10.7\""
        ))
    }
}

/// A mirror's address: http or https, nothing a shell or curl would read otherwise.
pub(crate) fn check_base_url(url: &str) -> Result<(), String> {
    if (url.starts_with("http://") || url.starts_with("https://"))
        && !url.contains(|c: char| c.is_whitespace() || c.is_control() || "'\"`$\\".contains(c))
    {
        Ok(())
    } else {
        Err(format!(
            "base_url = {url:?} is not an http:// or https:// URL"
        ))
    }
}

pub(crate) fn check_sha256(sum: &str) -> Result<(), String> {
    if sum.len() == 64 && sum.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(format!(
            "sha256 = {sum:?} is not a sha256: 64 hex digits, as `sha256sum FILE` prints them"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::stack::nats::{plan::tls_paths, NatsTlsPaths};

    const SUM: &str = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    fn parse(text: &str) -> Result<Components, String> {
        Components::from_table(&toml::from_str(text).unwrap())
    }

    #[test]
    fn nats_tls_is_read_beside_the_source() {
        let c = parse(
            "[nats]\nsource = \"os\"\ntls = { cert = \"c.pem\", key = \"k.pem\", ca = \"ca.pem\" }\n",
        )
        .unwrap();
        assert_eq!(c.source("nats"), Some(&Source::Os {}));
        assert_eq!(
            tls_paths(&c),
            Some(NatsTlsPaths {
                cert: "c.pem".into(),
                key: "k.pem".into(),
                ca: "ca.pem".into()
            })
        );
        let missing = parse("[nats]\nsource = \"os\"\ntls = { cert = \"c.pem\" }\n").unwrap_err();
        assert!(
            missing.contains("[components.nats]: tls: missing field `key`"),
            "{missing}"
        );
        let clickhouse =
            parse("[clickhouse]\nsource = \"os\"\ntls = { cert = \"c.pem\" }\n").unwrap_err();
        assert!(
            clickhouse.contains("NATS") || clickhouse.contains("nats"),
            "{clickhouse}"
        );
    }

    #[test]
    fn sources_parse_with_defaults() {
        let components = parse("[nats]\nsource = \"os\"\n").unwrap();
        assert_eq!(components.source("nats"), Some(&Source::Os {}));
        assert!(
            matches!(components.source("clickhouse"), Some(Source::Release { version: Some(ref v), .. }) if v == crate::stack::clickhouse::PINNED)
        );
        assert!(parse("[nats]\nsource = \"apt\"\n")
            .unwrap_err()
            .contains("[components.nats]"));
        assert!(parse("[redis]\nsource = \"os\"\n").is_err());
    }

    #[test]
    fn release_with_one_sum_or_sums_by_file_and_a_mirror() {
        let one = parse(&format!(
            "[nats]\nsource = \"release\"\nversion = \"2.9.10\"\nsha256 = \"{SUM}\"\nbase_url = \"http://10.0.0.1:8080\"\n"
        ))
        .unwrap();
        let Source::Release {
            version,
            sha256,
            base_url,
        } = one.source("nats").unwrap()
        else {
            panic!("{one:?}")
        };
        assert_eq!(version.as_deref(), Some("2.9.10"));
        assert_eq!(base_url.as_deref(), Some("http://10.0.0.1:8080"));
        assert_eq!(sha256.as_ref().unwrap().for_file("anything"), Some(SUM));

        let by_file = parse(&format!(
            "[nats]\nsource = \"release\"\nsha256 = {{ \"nats-server-v2.10.7-linux-amd64.tar.gz\" = \"{SUM}\" }}\n"
        ))
        .unwrap();
        let Source::Release {
            sha256: Some(sums), ..
        } = by_file.source("nats").unwrap()
        else {
            panic!("{by_file:?}")
        };
        assert_eq!(
            sums.for_file("nats-server-v2.10.7-linux-amd64.tar.gz"),
            Some(SUM)
        );
        assert_eq!(
            sums.for_file("nats-server-v2.10.7-linux-arm64.tar.gz"),
            None
        );
    }

    #[test]
    fn push_parses() {
        let push = parse(&format!(
            "[nats]\nsource = \"push\"\nartifact = \"files/nats.tar.gz\"\nsha256 = \"{SUM}\"\n"
        ))
        .unwrap();
        assert_eq!(
            *push.source("nats").unwrap(),
            Source::Push {
                artifact: Artifacts::One("files/nats.tar.gz".into()),
                sha256: Some(Checksums::One(SUM.into())),
                version: None
            }
        );
        assert_eq!(push.source("nats").unwrap().name(), "push");
        let two = parse(&format!(
            "[clickhouse]\nsource = \"push\"\nartifact = [\"a.tgz\", \"b.tgz\"]\nsha256 = {{ \"a.tgz\" = \"{SUM}\" }}\n"
        ))
        .unwrap();
        let Source::Push { artifact, .. } = two.source("clickhouse").unwrap() else {
            panic!("{two:?}")
        };
        assert_eq!(artifact.paths(), ["a.tgz", "b.tgz"]);
        assert!(parse("[clickhouse]\nsource = \"push\"\nartifact = []\n").is_err());
    }

    #[test]
    fn malformed_values_are_refused_with_what_to_write() {
        let short = parse("[nats]\nsource = \"release\"\nsha256 = \"abc\"\n").unwrap_err();
        assert!(
            short.contains("[components.nats]") && short.contains("64 hex digits"),
            "{short}"
        );
        let url = parse("[nats]\nsource = \"release\"\nbase_url = \"ftp://x\"\n").unwrap_err();
        assert!(url.contains("base_url"), "{url}");
        let version = parse("[nats]\nsource = \"release\"\nversion = \"2.10 7\"\n").unwrap_err();
        assert!(version.contains("not a version"), "{version}");
        let artifact = parse("[nats]\nsource = \"push\"\nartifact = \"\"\n").unwrap_err();
        assert!(artifact.contains("names no file"), "{artifact}");
        let unknown = parse("[nats]\nsource = \"release\"\nurl = \"http://x\"\n").unwrap_err();
        assert!(unknown.contains("base_url"), "{unknown}");
        let push_without_artifact = parse("[nats]\nsource = \"push\"\n").unwrap_err();
        assert!(
            push_without_artifact.contains("artifact"),
            "{push_without_artifact}"
        );
    }
}
