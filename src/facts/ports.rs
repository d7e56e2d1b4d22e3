//! Listening TCP ports from whichever listing the host could give: `ss -tln`, `netstat -an`
//! (Linux and BSD/macOS spellings) or the raw `/proc/net/tcp{,6}` tables. Lines that do not
//! look like a listener (headers, UDP, unix sockets, established connections) are skipped, so a
//! format we did not foresee yields fewer ports, never wrong ones.

use super::model::{watched_ports, PortsSource};

/// Every distinct port with a TCP listener in `text`, sorted.
pub fn listening_ports(source: PortsSource, text: &str) -> Vec<u16> {
    let line_port: fn(&str) -> Option<u16> = match source {
        PortsSource::Ss => ss_port,
        PortsSource::Netstat => netstat_port,
        PortsSource::Proc => proc_port,
        PortsSource::None => return Vec::new(),
    };
    let mut ports: Vec<u16> = text.lines().filter_map(line_port).collect();
    ports.sort_unstable();
    ports.dedup();
    ports
}

/// [`listening_ports`] narrowed to [`watched_ports`].
pub fn watched_listening_ports(source: PortsSource, text: &str) -> Vec<u16> {
    let mut ports = listening_ports(source, text);
    let watched = watched_ports();
    ports.retain(|p| watched.contains(p));
    ports
}

/// `LISTEN 0 4096 0.0.0.0:4222 0.0.0.0:*`. Old iproute2 drops the State column when filtering
/// on one state, so take the first `addr:port` token instead of a fixed column: the peer comes
/// after it and has `*` as its port, headers have `Port`.
pub(crate) fn ss_port(line: &str) -> Option<u16> {
    line.split_whitespace()
        .filter_map(|tok| tok.rsplit_once(':'))
        .map(|(_, port)| port)
        .find(|port| port != &"*")
        .and_then(|port| port.parse().ok())
}

/// Linux `tcp 0 0 0.0.0.0:4222 0.0.0.0:* LISTEN`, `tcp6 0 0 :::4222 :::* LISTEN`;
/// macOS `tcp4 0 0 *.4222 *.* LISTEN`, `tcp46 ...`, `tcp4 0 0 127.0.0.1.8123 *.* LISTEN`.
/// The port follows whichever of `:` and `.` comes last in the local address.
fn netstat_port(line: &str) -> Option<u16> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    if !toks.first()?.starts_with("tcp") || !toks.contains(&"LISTEN") {
        return None;
    }
    let local = toks.get(3)?;
    let sep = local.rfind([':', '.'])?;
    local[sep + 1..].parse().ok()
}

/// `0: 00000000:107E 00000000:0000 0A ...`: hex local port, and state `0A` is TCP_LISTEN.
fn proc_port(line: &str) -> Option<u16> {
    let toks: Vec<&str> = line.split_whitespace().collect();
    if toks.len() < 4 || !toks[0].ends_with(':') || toks[3] != "0A" {
        return None;
    }
    let (_, port) = toks[1].rsplit_once(':')?;
    u16::from_str_radix(port, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ss_with_and_without_header_and_state_column() {
        let text = "\
State      Recv-Q Send-Q Local Address:Port               Peer Address:Port
LISTEN     0      4096   127.0.0.53%lo:53         0.0.0.0:*
LISTEN 0      128          0.0.0.0:22         0.0.0.0:*
LISTEN 0      4096               *:4222             *:*
LISTEN 0      4096       127.0.0.1:8123       0.0.0.0:*
LISTEN 0      4096           [::1]:9000          [::]:*
LISTEN 0      4096  [::ffff:127.0.0.1]:8085      *:*
LISTEN 0      128             [::]:22            [::]:*
Recv-Q Send-Q Local Address:Port Peer Address:Port
0      128    *:8087             *:*
";
        assert_eq!(
            listening_ports(PortsSource::Ss, text),
            [22, 53, 4222, 8085, 8087, 8123, 9000]
        );
        assert_eq!(
            watched_listening_ports(PortsSource::Ss, text),
            [4222, 8085, 8087, 8123, 9000]
        );
    }

    #[test]
    fn netstat_macos_format() {
        let text = "\
Active Internet connections (including servers)
Proto Recv-Q Send-Q  Local Address          Foreign Address        (state)
tcp4       0      0  *.4222                 *.*                    LISTEN
tcp4       0      0  127.0.0.1.8123         *.*                    LISTEN
tcp6       0      0  ::1.9000               *.*                    LISTEN
tcp46      0      0  *.8222                 *.*                    LISTEN
tcp4       0      0  192.168.1.20.50512     140.82.112.4.443       ESTABLISHED
tcp4       0      0  192.168.1.20.50513     10.0.0.5.8087          ESTABLISHED
udp4       0      0  *.8085                 *.*
";
        assert_eq!(
            listening_ports(PortsSource::Netstat, text),
            [4222, 8123, 8222, 9000]
        );
    }

    #[test]
    fn netstat_linux_format() {
        let text = "\
tcp        0      0 0.0.0.0:22              0.0.0.0:*               LISTEN
tcp        0      0 127.0.0.1:9000          0.0.0.0:*               LISTEN
tcp        0      0 10.0.0.4:51234          10.0.0.5:4222           ESTABLISHED
tcp6       0      0 :::8123                 :::*                    LISTEN
unix  2      [ ACC ]     STREAM     LISTENING     12051    /var/run/docker.sock
";
        assert_eq!(
            listening_ports(PortsSource::Netstat, text),
            [22, 8123, 9000]
        );
    }

    #[test]
    fn proc_net_tcp_hex_ports_and_listen_state_only() {
        let text = "\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 16732 1 ffff9c4a7a1e8000 100 0 0 10 0
   1: 0100007F:2328 00000000:0000 0A 00000000:00000000 00:00000000 00000000   995        0 18211 1 ffff9c4a7a1e87c0 100 0 0 10 0
   2: 0F02000A:C5D2 0502000A:107E 01 00000000:00000000 02:000A7D4B 00000000  1000        0 20111 2 ffff9c4a7a1e9f00 20 4 30 10 -1
   3: 0100007F:1FBB 0100007F:E0A2 06 00000000:00000000 03:00001770 00000000     0        0 0 3 ffff9c4a7a1ea6c0
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:107E 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000   994        0 19002 1 ffff9c4a74c30000 100 0 0 10 0
";
        assert_eq!(listening_ports(PortsSource::Proc, text), [22, 4222, 9000]);
    }

    #[test]
    fn no_source_means_no_ports() {
        assert!(listening_ports(PortsSource::None, "LISTEN 0 128 *:4222 *:*").is_empty());
    }
}
