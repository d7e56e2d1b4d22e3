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

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Components {
    pub nats: Source,
    pub clickhouse: Source,
    /// `[components.nats] tls = { cert, key, ca }`: NATS clients and routes speak TLS.
    pub nats_tls: Option<NatsTlsPaths>,
}

/// The certificate every NATS node presents (to clients and to the other nodes' routes), its
/// key, and the CA that signed it: paths on the control node, relative to the inventory.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NatsTlsPaths {
    pub cert: String,
    pub key: String,
    pub ca: String,
}

/// The seed's pinned releases, used when the inventory names no source.
pub const NATS_PINNED: &str = crate::stack::nats::PINNED;
pub const CLICKHOUSE_PINNED: &str = crate::stack::clickhouse::PINNED;

impl Components {
    /// Where the vendor's server `name` comes from (None: not a vendor's server).
    pub fn source(&self, name: &str) -> Option<&Source> {
        match name {
            "nats" => Some(&self.nats),
            "clickhouse" => Some(&self.clickhouse),
            _ => None,
        }
    }

    pub fn from_table(table: &toml::Table) -> Result<Self, String> {
        let get = |name: &str, pinned: &str| -> Result<Source, String> {
            let without_tls = table.get(name).map(|value| {
                let mut value = value.clone();
                if let Some(t) = value.as_table_mut() {
                    t.remove("tls");
                }
                value
            });
            let source = match without_tls {
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
            Ok(source)
        };
        for key in table.keys() {
            if !["nats", "clickhouse", "storage", "collector"].contains(&key.as_str()) {
                return Err(format!(
                    "[components.{key}] is not a component: use nats, clickhouse, storage or collector"
                ));
            }
        }
        let tls_of = |name: &str| table.get(name).and_then(|t| t.get("tls"));
        if tls_of("clickhouse").is_some() {
            return Err("[components.clickhouse]: tls applies to [components.nats] only".into());
        }
        let nats_tls = match tls_of("nats") {
            None => None,
            Some(value) => Some(value.clone().try_into::<NatsTlsPaths>().map_err(|e| {
                format!("[components.nats]: tls: {e}; write tls = {{ cert = \"...\", key = \"...\", ca = \"...\" }}")
            })?),
        };
        Ok(Self {
            nats: get("nats", NATS_PINNED)?,
            clickhouse: get("clickhouse", CLICKHOUSE_PINNED)?,
            nats_tls,
        })
    }
}

/// Malformed values are refused here, before any host is touched. A missing sha256 is not:
/// whether it is needed depends on the hosts' roles (see plan/install.rs).
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
        assert_eq!(c.nats, Source::Os {});
        assert_eq!(
            c.nats_tls,
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
        assert_eq!(components.nats, Source::Os {});
        assert!(
            matches!(components.clickhouse, Source::Release { version: Some(ref v), .. } if v == CLICKHOUSE_PINNED)
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
        } = &one.nats
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
        } = &by_file.nats
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
            push.nats,
            Source::Push {
                artifact: Artifacts::One("files/nats.tar.gz".into()),
                sha256: Some(Checksums::One(SUM.into())),
                version: None
            }
        );
        assert_eq!(push.nats.name(), "push");
        let two = parse(&format!(
            "[clickhouse]\nsource = \"push\"\nartifact = [\"a.tgz\", \"b.tgz\"]\nsha256 = {{ \"a.tgz\" = \"{SUM}\" }}\n"
        ))
        .unwrap();
        let Source::Push { artifact, .. } = &two.clickhouse else {
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
