//! Probe output -> [`Facts`]. Pure, so every host quirk can be pinned down by a fixture.
//!
//! Two stages: [`Raw::split`] checks the framing (begin marker, closed sections, end marker) and
//! collects `key=value` lines and sections; [`parse`] then interprets them. Unknown keys and
//! sections are ignored so that a newer probe script still parses.

use std::collections::HashMap;

use super::error::FactsError;
use super::model::{Facts, Init, Installed, PortsSource, Tools};
use super::os;
use super::ports::watched_listening_ports;
use super::version::{glibc_version, normalize_version};

/// How many lines of output an error message quotes.
const HEAD_LINES: usize = 5;

/// Parses the output of [`PROBE_SCRIPT`](super::PROBE_SCRIPT).
///
/// Junk before the `mp_facts=1` line (login banners, rc-file chatter) is skipped. Missing
/// optional facts become None / false / 0; output that stops early, and missing `arch`, OS or
/// `uid`, are errors, because acting on half the facts could do damage.
pub fn parse(output: &str) -> Result<Facts, FactsError> {
    let raw = Raw::split(output)?;
    let missing = |key: &'static str, why: &'static str| FactsError::MissingKey {
        key,
        why,
        head: head(output),
    };

    let arch = raw
        .get("arch")
        .ok_or_else(|| missing("arch", "`uname -m` printed nothing"))?;
    let darwin = raw.get("uname_s") == Some("Darwin");
    let os = match (raw.section("os-release"), raw.section("sw_vers")) {
        (_, Some(sw)) if darwin => os::from_sw_vers(sw),
        (Some(osr), _) => os::from_os_release(osr),
        (None, Some(sw)) => os::from_sw_vers(sw),
        (None, None) if darwin => os::from_sw_vers(""),
        (None, None) => {
            return Err(FactsError::MissingOs { head: head(output) });
        }
    };
    let uid: u32 = match raw.get("uid") {
        None => return Err(missing("uid", "`id -u` printed nothing")),
        Some(v) => number("uid", v, "a numeric user id")?,
    };
    let cpus = match raw.get("cpus") {
        None => 0,
        Some(v) => number("cpus", v, "a CPU count")?,
    };

    let pid1 = raw.get("pid1").unwrap_or("").to_string();
    let pid1_name = pid1.rsplit('/').next().unwrap_or("");
    let init = if darwin || pid1_name == "launchd" {
        Init::Launchd
    } else if raw.get("run_systemd_system") == Some("yes")
        && (pid1_name == "systemd" || pid1_name.is_empty())
    {
        // An unknown PID 1 (no /proc, no ps) gets sd_booted()'s benefit of the doubt.
        Init::Systemd
    } else {
        Init::None
    };

    let ports_source = match raw.get("listen_source") {
        Some("ss") => PortsSource::Ss,
        Some("netstat") => PortsSource::Netstat,
        Some("proc") => PortsSource::Proc,
        _ => PortsSource::None,
    };
    let listening_ports =
        watched_listening_ports(ports_source, raw.section("listen").unwrap_or(""));

    let tool = |name: &str| raw.get(&format!("tool.{name}")) == Some("yes");
    let (nats_server, nats_server_raw) =
        installed(raw.get("nats_server_bin"), raw.get("nats_server_pkg"));
    let (clickhouse_server, clickhouse_server_raw) = installed(
        raw.get("clickhouse_server_bin"),
        raw.get("clickhouse_server_pkg"),
    );

    Ok(Facts {
        hostname: raw.get("hostname").unwrap_or("").to_string(),
        os,
        arch: arch.to_string(),
        kernel: raw.get("kernel").unwrap_or("").to_string(),
        cpus,
        memory_bytes: memory_bytes(&raw),
        disk_free_bytes: raw.get("disk_df").and_then(df_available_bytes).unwrap_or(0),
        deploy_dir: raw.get("deploy_dir").unwrap_or("").to_string(),
        app_release: raw
            .get("app_release")
            .filter(|r| !r.is_empty())
            .map(str::to_string),
        disk_path: raw.get("disk_path").unwrap_or("").to_string(),
        init,
        pid1,
        user: raw.get("user").unwrap_or("").to_string(),
        uid,
        is_root: uid == 0,
        passwordless_sudo: raw.get("sudo") == Some("yes"),
        glibc: raw.get("glibc_raw").and_then(glibc_version),
        tools: Tools {
            curl: tool("curl"),
            tar: tool("tar"),
            systemctl: tool("systemctl"),
            apt_get: tool("apt-get"),
            dnf: tool("dnf"),
            yum: tool("yum"),
            sha256sum: tool("sha256sum"),
            ss: tool("ss"),
            sudo: tool("sudo"),
        },
        listening_ports,
        ports_source,
        addresses: addresses(raw.section("addresses").unwrap_or("")),
        agent_files: raw
            .section("agents")
            .unwrap_or("")
            .lines()
            .filter_map(|l| {
                let (path, size) = l.trim().rsplit_once(' ')?;
                Some((path.to_string(), size.trim().parse().ok()?))
            })
            .collect(),
        installed: Installed {
            nats_server,
            nats_server_raw,
            clickhouse_server,
            clickhouse_server_raw,
        },
    })
}

/// The framing-checked content of probe output, borrowing from it.
struct Raw<'a> {
    keys: HashMap<&'a str, &'a str>,
    sections: HashMap<&'a str, String>,
}

impl<'a> Raw<'a> {
    fn split(output: &'a str) -> Result<Self, FactsError> {
        let lines: Vec<&str> = output.lines().map(|l| l.trim_end_matches('\r')).collect();
        if lines.iter().all(|l| l.trim().is_empty()) {
            return Err(FactsError::Empty);
        }
        let start = lines
            .iter()
            .position(|l| l.starts_with("mp_facts="))
            .ok_or_else(|| FactsError::NotProbeOutput { head: head(output) })?;
        let format = &lines[start]["mp_facts=".len()..];
        if format != "1" {
            return Err(FactsError::UnsupportedFormat(format.to_string()));
        }

        let body = &lines[start..];
        let mut keys = HashMap::new();
        let mut sections = HashMap::new();
        let mut open: Option<(&str, Vec<&str>)> = None;
        for line in body {
            if let Some((name, content)) = &mut open {
                if line
                    .strip_prefix("--- end ")
                    .and_then(|r| r.strip_suffix(" ---"))
                    == Some(*name)
                {
                    sections.insert(*name, content.join("\n"));
                    open = None;
                } else {
                    content.push(line);
                }
            } else if let Some(name) = line
                .strip_prefix("--- ")
                .and_then(|r| r.strip_suffix(" ---"))
            {
                // A stray end marker opens nothing.
                if !name.starts_with("end ") {
                    open = Some((name, Vec::new()));
                }
            } else if let Some((k, v)) = line.split_once('=') {
                keys.insert(k, v);
            }
            // Anything else is noise and ignored.
        }

        let last = || {
            let l = body
                .iter()
                .rev()
                .find(|l| !l.trim().is_empty())
                .unwrap_or(&"");
            clip(l)
        };
        if let Some((name, _)) = open {
            return Err(FactsError::UnclosedSection {
                section: name.to_string(),
                lines: lines.len(),
                last: last(),
            });
        }
        if keys.get("probe_end") != Some(&"ok") {
            return Err(FactsError::Truncated {
                lines: lines.len(),
                last: last(),
            });
        }
        Ok(Raw { keys, sections })
    }

    /// A key's value; an empty value counts as absent (the probe prints `key=` when it failed).
    fn get(&self, key: &str) -> Option<&'a str> {
        self.keys
            .get(key)
            .copied()
            .filter(|v| !v.trim().is_empty())
            .map(str::trim)
    }

    fn section(&self, name: &str) -> Option<&str> {
        self.sections.get(name).map(String::as_str)
    }
}

fn number<T: std::str::FromStr>(
    key: &'static str,
    value: &str,
    expected: &'static str,
) -> Result<T, FactsError> {
    value.parse().map_err(|_| FactsError::BadValue {
        key,
        value: value.to_string(),
        expected,
    })
}

/// `/proc/meminfo`'s `MemTotal:  24684084 kB`, else macOS `hw.memsize` (bytes); 0 if neither.
/// `10.0.0.5/24` or `hostname -I`'s bare `10.0.0.5`, one per word; anything else is skipped.
fn addresses(section: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for word in section.split_whitespace() {
        let ip = word.split('/').next().unwrap_or_default();
        if let Ok(ip) = ip.parse::<std::net::IpAddr>() {
            let ip = ip.to_string();
            if !out.contains(&ip) {
                out.push(ip);
            }
        }
    }
    out
}

fn memory_bytes(raw: &Raw) -> u64 {
    let meminfo = raw.get("meminfo").and_then(|line| {
        let mut toks = line.split_whitespace().skip(1);
        let kb: u64 = toks.next()?.parse().ok()?;
        (toks.next() == Some("kB")).then(|| kb * 1024)
    });
    meminfo
        .or_else(|| raw.get("hw_memsize")?.parse().ok())
        .unwrap_or(0)
}

/// The Available column of a `df -Pk` data line, in bytes. Located as the third of three
/// numbers followed by a `N%` capacity, so file system names with spaces do not shift it.
fn df_available_bytes(line: &str) -> Option<u64> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    let numeric = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    toks.windows(4).find_map(|w| {
        let is_row = numeric(w[0]) && numeric(w[1]) && numeric(w[2]) && w[3].ends_with('%');
        if is_row {
            w[2].parse::<u64>().ok().map(|kb| kb * 1024)
        } else {
            None
        }
    })
}

/// The server binary's own `--version` wins over the package database: it is what will run.
/// The raw string stays set even if no version could be read from it, since something is
/// installed.
fn installed(bin: Option<&str>, pkg: Option<&str>) -> (Option<String>, Option<String>) {
    let candidates = [bin, pkg];
    let found = candidates
        .iter()
        .flatten()
        .find_map(|raw| normalize_version(raw).map(|v| (v, raw.to_string())));
    match found {
        Some((v, raw)) => (Some(v), Some(raw)),
        None => (
            None,
            candidates.iter().flatten().next().map(|s| s.to_string()),
        ),
    }
}

fn clip(line: &str) -> String {
    const MAX: usize = 160;
    match line.char_indices().nth(MAX) {
        Some((i, _)) => format!("{}...", &line[..i]),
        None => line.to_string(),
    }
}

/// The first few non-blank lines of `output`, on one line, for error messages.
fn head(output: &str) -> String {
    let lines: Vec<String> = output
        .lines()
        .map(|l| l.trim_end_matches('\r'))
        .filter(|l| !l.trim().is_empty())
        .take(HEAD_LINES)
        .map(clip)
        .collect();
    format!("`{}`", lines.join("` | `"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "mp_facts=1\narch=x86_64\nuid=1000\n--- os-release ---\nID=debian\nVERSION_ID=\"12\"\n--- end os-release ---\nprobe_end=ok\n";

    #[test]
    fn minimal_output_defaults_optional_facts() {
        let f = parse(MINIMAL).unwrap();
        assert_eq!(f.arch, "x86_64");
        assert_eq!(f.os.family, "debian");
        assert_eq!(f.uid, 1000);
        assert!(!f.is_root && !f.passwordless_sudo && !f.can_become_root());
        assert_eq!((f.cpus, f.memory_bytes, f.disk_free_bytes), (0, 0, 0));
        assert_eq!(f.init, Init::None);
        assert_eq!(f.glibc, None);
        assert_eq!(f.tools, Tools::default());
        assert_eq!(f.ports_source, PortsSource::None);
        assert_eq!(f.installed, Installed::default());
    }

    #[test]
    fn agents_found_by_the_probe_come_with_their_sizes() {
        let text = MINIMAL.replace(
            "probe_end=ok",
            "--- agents ---\n/var/lib/mp-remote/bin/mp-remote-0123 21443240\n.mp-remote/bin/mp-remote-4567 x\n--- end agents ---\nprobe_end=ok",
        );
        let f = parse(&text).unwrap();
        assert_eq!(f.agent_files.len(), 1, "{:?}", f.agent_files);
        assert_eq!(
            f.agent_files["/var/lib/mp-remote/bin/mp-remote-0123"],
            21443240
        );
        assert!(parse(MINIMAL).unwrap().agent_files.is_empty());
    }

    #[test]
    fn addresses_from_ip_or_hostname_lose_prefixes_repeats_and_junk() {
        let ip = "127.0.0.1/8\n10.0.0.5/24\n::1/128\nfe80::1/64\n10.0.0.5/24\n";
        assert_eq!(addresses(ip), ["127.0.0.1", "10.0.0.5", "::1", "fe80::1"]);
        assert_eq!(
            addresses("10.0.0.5 172.17.0.2 \n"),
            ["10.0.0.5", "172.17.0.2"]
        );
        assert!(addresses("Usage: ip [ OPTIONS ]").is_empty());
    }

    #[test]
    fn banner_noise_crlf_and_unknown_keys_are_tolerated() {
        let out = format!(
            "Welcome to host!\r\nlast_login=yesterday\r\n{}future_key=1\r\n--- future ---\r\nx=y\r\n--- end future ---\r\n",
            MINIMAL.replace('\n', "\r\n")
        );
        let f = parse(&out).unwrap();
        assert_eq!(f.os.version_id, "12");
        assert_eq!(f.uid, 1000);
    }

    #[test]
    fn empty_output() {
        assert_eq!(parse(""), Err(FactsError::Empty));
        assert_eq!(parse(" \n\n"), Err(FactsError::Empty));
    }

    #[test]
    fn not_probe_output() {
        let err = parse("fish: Unknown command: mp_facts\n").unwrap_err();
        assert!(matches!(err, FactsError::NotProbeOutput { .. }), "{err:?}");
        assert!(err.to_string().contains("fish: Unknown command"), "{err}");
    }

    #[test]
    fn unsupported_format() {
        let err = parse(&MINIMAL.replace("mp_facts=1", "mp_facts=2")).unwrap_err();
        assert_eq!(err, FactsError::UnsupportedFormat("2".into()));
    }

    #[test]
    fn output_cut_inside_a_section() {
        let cut = &MINIMAL[..MINIMAL.find("VERSION_ID").unwrap()];
        let err = parse(cut).unwrap_err();
        assert_eq!(
            err,
            FactsError::UnclosedSection {
                section: "os-release".into(),
                lines: 5,
                last: "ID=debian".into(),
            }
        );
        assert!(err.to_string().contains("did not run to its end"), "{err}");
    }

    #[test]
    fn output_cut_between_lines_and_mid_line() {
        let cut = &MINIMAL[..MINIMAL.find("probe_end").unwrap()];
        let err = parse(cut).unwrap_err();
        assert!(
            matches!(&err, FactsError::Truncated { lines: 7, last } if last == "--- end os-release ---"),
            "{err:?}"
        );
        // A line cut in half must not be taken for a complete value either.
        for cut in [2, 4] {
            let err = parse(&MINIMAL[..MINIMAL.len() - cut]).unwrap_err();
            assert!(matches!(err, FactsError::Truncated { .. }), "{err:?}");
        }
    }

    #[test]
    fn missing_essentials() {
        let err = parse(&MINIMAL.replace("arch=x86_64", "arch=")).unwrap_err();
        assert!(
            matches!(err, FactsError::MissingKey { key: "arch", .. }),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .starts_with("probe output has no `arch=` line"),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("first lines were: `mp_facts=1` | `arch=`"),
            "{err}"
        );

        let err = parse(&MINIMAL.replace("uid=1000\n", "")).unwrap_err();
        assert!(
            matches!(err, FactsError::MissingKey { key: "uid", .. }),
            "{err:?}"
        );

        let no_os = "mp_facts=1\narch=x86_64\nuid=0\nprobe_end=ok\n";
        assert!(matches!(parse(no_os), Err(FactsError::MissingOs { .. })));
    }

    #[test]
    fn bad_numbers() {
        let err = parse(&MINIMAL.replace("uid=1000", "uid=root")).unwrap_err();
        assert_eq!(
            err.to_string(),
            "probe output line `uid=root` is invalid: expected a numeric user id"
        );
        let err = parse(&MINIMAL.replace("uid=1000", "uid=1000\ncpus=two")).unwrap_err();
        assert!(
            matches!(err, FactsError::BadValue { key: "cpus", .. }),
            "{err:?}"
        );
    }

    #[test]
    fn df_line_parsing() {
        let table = [
            (
                "/dev/vda  264212084 12856868  82429020      14% /",
                Some(82429020 * 1024),
            ),
            (
                "map auto_home 0 0 0 100% /System/Volumes/Data/home",
                Some(0),
            ),
            (
                "/dev/mapper/vg-root 52403200 3145728 49257472 7% /",
                Some(49257472 * 1024),
            ),
            ("df: /x: No such file or directory", None),
            (
                "Filesystem 1024-blocks Used Available Capacity Mounted on",
                None,
            ),
        ];
        for (line, want) in table {
            assert_eq!(df_available_bytes(line), want, "{line:?}");
        }
    }

    #[test]
    fn installed_prefers_binary_and_keeps_raw() {
        assert_eq!(
            installed(Some("nats-server: v2.10.7"), Some("2.9.10-1+b4")),
            (Some("2.10.7".into()), Some("nats-server: v2.10.7".into()))
        );
        assert_eq!(
            installed(None, Some("18.16.1+ds-7.4")),
            (Some("18.16.1".into()), Some("18.16.1+ds-7.4".into()))
        );
        assert_eq!(
            installed(Some("garbage"), None),
            (None, Some("garbage".into()))
        );
        assert_eq!(installed(None, None), (None, None));
    }
}
