//! Turning the many spellings of a version (`--version` banners, dpkg and rpm versions) into a
//! plain dotted number that can be compared.

/// The first dotted version number in `raw`: `nats-server: v2.9.10` -> `2.9.10`,
/// `18.16.1+ds-7.4` -> `18.16.1`, `1:2.9.10-1` -> `2.9.10` (epoch dropped),
/// `ClickHouse server version 23.8.2.7 (official build).` -> `23.8.2.7`.
///
/// A dot is required so that stray numbers in error messages (`error 127`) are not taken for
/// a version; None when there is no such number.
pub fn normalize_version(raw: &str) -> Option<String> {
    raw.split(|c: char| c.is_whitespace() || c == '(' || c == ',')
        .find_map(version_in_token)
}

fn version_in_token(token: &str) -> Option<String> {
    let mut t = token;
    // Debian/RPM epoch: `1:2.9.10-1`.
    if let Some((epoch, rest)) = t.split_once(':') {
        if !epoch.is_empty() && epoch.bytes().all(|b| b.is_ascii_digit()) {
            t = rest;
        }
    }
    if let Some(rest) = t.strip_prefix(['v', 'V']) {
        t = rest;
    }
    if !t.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let end = t
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(t.len());
    let v = t[..end].trim_end_matches('.');
    // Needs digits on both sides of a dot.
    let mut parts = v.split('.');
    let first_ok = parts.next().is_some_and(|p| !p.is_empty());
    let rest: Vec<&str> = parts.collect();
    (first_ok && !rest.is_empty() && rest.iter().all(|p| !p.is_empty())).then(|| v.to_string())
}

/// The glibc version from `getconf GNU_LIBC_VERSION` (`glibc 2.36`) or the first line of
/// `ldd --version` (`ldd (Debian GLIBC 2.36-9+deb12u4) 2.36`, `ldd (GNU libc) 2.17`). Other
/// libcs (musl prints `musl libc`) give None: the agent binary is built against glibc.
pub fn glibc_version(raw: &str) -> Option<String> {
    let lower = raw.to_ascii_lowercase();
    if !(lower.contains("glibc") || lower.contains("gnu libc") || lower.contains("gnu c library")) {
        return None;
    }
    normalize_version(raw)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_normalisation_table() {
        let table = [
            ("nats-server: v2.9.10", Some("2.9.10")),
            ("nats-server: v2.10.14", Some("2.10.14")),
            ("2.9.10-1+b4", Some("2.9.10")),
            ("18.16.1+ds-7.4", Some("18.16.1")),
            ("1:2.9.10-1", Some("2.9.10")),
            (
                "ClickHouse server version 23.8.2.7 (official build).",
                Some("23.8.2.7"),
            ),
            ("ClickHouse server version 18.16.1.", Some("18.16.1")),
            ("24.3.1.2672", Some("24.3.1.2672")),
            ("23.8.2.7-1", Some("23.8.2.7")),
            ("  v2.10.7\n", Some("2.10.7")),
            ("", None),
            ("nats-server: error 127", None),
            ("command not found", None),
            ("v", None),
            ("1.", None),
        ];
        for (raw, want) in table {
            assert_eq!(
                normalize_version(raw).as_deref(),
                want,
                "normalize_version({raw:?})"
            );
        }
    }

    #[test]
    fn glibc_from_getconf_and_ldd() {
        let table = [
            ("glibc 2.36", Some("2.36")),
            ("glibc 2.17", Some("2.17")),
            ("ldd (Debian GLIBC 2.36-9+deb12u4) 2.36", Some("2.36")),
            ("ldd (Ubuntu GLIBC 2.35-0ubuntu3.6) 2.35", Some("2.35")),
            ("ldd (GNU libc) 2.17", Some("2.17")),
            ("musl libc (x86_64)", None),
            ("", None),
        ];
        for (raw, want) in table {
            assert_eq!(
                glibc_version(raw).as_deref(),
                want,
                "glibc_version({raw:?})"
            );
        }
    }
}
