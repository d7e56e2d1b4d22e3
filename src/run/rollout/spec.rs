//! `--serial N|N%|LIST` and the failure budgets `--max-failed` / `--max-unreachable`
//! (`N|N%`): parsed and checked before anything runs. Pure.

use std::fmt;
use std::str::FromStr;

/// One batch size: a host count, or a share of the hosts being rolled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Size {
    Hosts(usize),
    Percent(u32),
}

impl Size {
    /// Hosts in a batch of `total`: a share rounds down, but a batch has at least one host.
    pub fn of(self, total: usize) -> usize {
        match self {
            Size::Hosts(n) => n,
            Size::Percent(p) => (total * p as usize / 100).max(1),
        }
    }
}

impl fmt::Display for Size {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Size::Hosts(n) => write!(f, "{n}"),
            Size::Percent(p) => write!(f, "{p}%"),
        }
    }
}

/// `N` or `N%` (at most 100%): the number and whether it is a share.
fn count_or_share(text: &str, what: &str, example: &str) -> Result<(u64, bool), String> {
    let (number, percent) = match text.strip_suffix('%') {
        Some(n) => (n, true),
        None => (text, false),
    };
    let n: u64 = number.parse().map_err(|_| {
        format!("{what} {text:?} is not a number of hosts (N) or a share (N%), e.g. {example}")
    })?;
    if percent && n > 100 {
        return Err(format!("{what} {text:?}: a share is at most 100%"));
    }
    Ok((n, percent))
}

fn parse_size(text: &str, what: &str) -> Result<Size, String> {
    let text = text.trim();
    match count_or_share(text, what, "2 or 25%")? {
        (0, _) => Err(format!("{what} {text:?}: a batch needs at least one host")),
        (n, true) => Ok(Size::Percent(n as u32)),
        (n, false) => Ok(Size::Hosts(n as usize)),
    }
}

/// `--serial`: the batch sizes in order; the last one repeats.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Serial(pub Vec<Size>);

impl FromStr for Serial {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        if text.trim().is_empty() {
            return Err("--serial is empty: write N, N% or a list like 1,5,20%".into());
        }
        let sizes = text
            .split(',')
            .map(|part| parse_size(part, "--serial"))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Serial(sizes))
    }
}

impl Serial {
    /// Everything at once: one batch.
    pub fn all() -> Self {
        Serial(vec![Size::Percent(100)])
    }

    /// The sizes of the batches that cover `total` hosts, in order.
    pub fn batch_sizes(&self, total: usize) -> Vec<usize> {
        let mut sizes = Vec::new();
        let mut left = total;
        let mut next = self.0.iter();
        let mut size = self.0.last().copied().unwrap_or(Size::Percent(100));
        while left > 0 {
            if let Some(s) = next.next() {
                size = *s;
            }
            let n = size.of(total).min(left);
            sizes.push(n);
            left -= n;
        }
        sizes
    }
}

impl fmt::Display for Serial {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(Size::to_string).collect();
        f.write_str(&parts.join(","))
    }
}

/// A failure budget: how many hosts may fail (or be unreachable) before the rollout stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Budget {
    Hosts(usize),
    Percent(u32),
}

impl FromStr for Budget {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match count_or_share(text.trim(), "budget", "1 or 10%")? {
            (n, true) => Ok(Budget::Percent(n as u32)),
            (n, false) => Ok(Budget::Hosts(n as usize)),
        }
    }
}

impl Budget {
    /// `count` of `of` hosts is over the budget (a share is exceeded, as in Ansible's
    /// `max_fail_percentage`, only when strictly above it).
    pub fn exceeded(self, count: usize, of: usize) -> bool {
        match self {
            Budget::Hosts(n) => count > n,
            Budget::Percent(p) => count * 100 > p as usize * of,
        }
    }
}

impl fmt::Display for Budget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Budget::Hosts(n) => write!(f, "{n}"),
            Budget::Percent(p) => write!(f, "{p}%"),
        }
    }
}

impl Default for Budget {
    /// No failure is tolerated: the first one stops the rollout (Kamal's behaviour).
    fn default() -> Self {
        Budget::Hosts(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serial_forms() {
        assert_eq!("2".parse(), Ok(Serial(vec![Size::Hosts(2)])));
        assert_eq!("25%".parse(), Ok(Serial(vec![Size::Percent(25)])));
        assert_eq!(
            "1,5,20%".parse(),
            Ok(Serial(vec![
                Size::Hosts(1),
                Size::Hosts(5),
                Size::Percent(20)
            ]))
        );
        assert_eq!("100%".parse(), Ok(Serial(vec![Size::Percent(100)])));
    }

    #[test]
    fn bad_serials_are_refused_with_what_to_write() {
        for bad in ["0", "0%", "150%", "", "1,,2", "a", "-1", "1.5", "5,x"] {
            let error = bad.parse::<Serial>().unwrap_err();
            assert!(error.contains("--serial"), "{bad}: {error}");
        }
    }

    #[test]
    fn batch_sizes_repeat_the_last_size() {
        let serial: Serial = "1,5,20%".parse().unwrap();
        assert_eq!(serial.batch_sizes(20), [1, 5, 4, 4, 4, 2]);
        let serial: Serial = "2".parse().unwrap();
        assert_eq!(serial.batch_sizes(5), [2, 2, 1]);
        // A share rounds down but never to an empty batch.
        let serial: Serial = "10%".parse().unwrap();
        assert_eq!(serial.batch_sizes(3), [1, 1, 1]);
        assert_eq!(Serial::all().batch_sizes(7), [7]);
        assert_eq!(Serial::all().batch_sizes(0), Vec::<usize>::new());
    }

    #[test]
    fn budgets() {
        assert_eq!("0".parse(), Ok(Budget::Hosts(0)));
        assert_eq!("10%".parse(), Ok(Budget::Percent(10)));
        for bad in ["-1", "101%", "x", "1.5"] {
            assert!(bad.parse::<Budget>().is_err(), "{bad}");
        }
        assert!(!Budget::Hosts(1).exceeded(1, 10));
        assert!(Budget::Hosts(1).exceeded(2, 10));
        assert!(Budget::Hosts(0).exceeded(1, 10));
        assert!(!Budget::Percent(20).exceeded(2, 10));
        assert!(Budget::Percent(20).exceeded(3, 10));
        assert!(!Budget::Percent(100).exceeded(5, 5));
        assert!(Budget::Percent(0).exceeded(1, 5));
    }
}
