//! Outgoing HTTP rules: host allow-lists and the IP check after DNS resolution.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A host pattern in an allow-list.
///
/// - `api.example.com`: exactly that host, any port;
/// - `*.example.com`: any subdomain of `example.com` (not `example.com` itself);
/// - `*`: any host;
/// - any of these with `:port`, e.g. `localhost:8080`, to allow only that port;
/// - IP literals (`127.0.0.1`, `[::1]:8080`) match the literal in the URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPattern {
    host: HostMatch,
    port: Option<u16>,
    text: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum HostMatch {
    Any,
    Exact(String),
    Suffix(String),
}

impl HostPattern {
    /// Whether `host` (a DNS name or IP literal, without brackets) and `port` match.
    pub fn matches(&self, host: &str, port: u16) -> bool {
        if self.port.is_some_and(|p| p != port) {
            return false;
        }
        let host = normalise_host(host);
        match &self.host {
            HostMatch::Any => true,
            HostMatch::Exact(h) => *h == host,
            HostMatch::Suffix(s) => {
                host.len() > s.len() + 1 && host.ends_with(s.as_str()) && {
                    host.as_bytes()[host.len() - s.len() - 1] == b'.'
                }
            }
        }
    }
}

fn normalise_host(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .trim_end_matches('.')
        .to_ascii_lowercase()
}

impl FromStr for HostPattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let text = s.trim().to_string();
        if text.contains("://") || text.contains('/') {
            return Err(format!(
                "`{text}` is not a host pattern; give only the host, like `api.example.com` or `api.example.com:8443` (no scheme or path)"
            ));
        }
        let (host, port) = split_host_port(&text)?;
        let host = normalise_host(host);
        if host.is_empty() {
            return Err(format!("`{text}` has an empty host"));
        }
        let host = if host == "*" {
            HostMatch::Any
        } else if let Some(rest) = host.strip_prefix("*.") {
            if rest.contains('*') || rest.is_empty() {
                return Err(format!(
                    "`{text}`: `*` may only stand alone or as the first label (`*.example.com`)"
                ));
            }
            HostMatch::Suffix(rest.to_string())
        } else if host.contains('*') {
            return Err(format!(
                "`{text}`: `*` may only stand alone or as the first label (`*.example.com`)"
            ));
        } else {
            HostMatch::Exact(host)
        };
        Ok(HostPattern { host, port, text })
    }
}

fn split_host_port(text: &str) -> Result<(&str, Option<u16>), String> {
    // `[v6]:port`, `[v6]`, bare v6 (two or more colons), `host:port`, `host`.
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let end = rest
            .find(']')
            .ok_or_else(|| format!("`{text}`: missing `]`"))?;
        let after = &rest[end + 1..];
        let port = after.strip_prefix(':');
        if !after.is_empty() && port.is_none() {
            return Err(format!("`{text}`: unexpected text after `]`"));
        }
        (&rest[..end], port)
    } else if text.matches(':').count() == 1 {
        let (h, p) = text.split_once(':').expect("one colon");
        (h, Some(p))
    } else {
        (text, None)
    };
    let port = port
        .map(|p| {
            p.parse::<u16>()
                .map_err(|_| format!("`{text}`: port `{p}` is not a number from 0 to 65535"))
        })
        .transpose()?;
    Ok((host, port))
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl Serialize for HostPattern {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HostPattern {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

/// Why an outgoing request was refused. Its `Display` is the message the operator sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EgressDenied {
    /// The plugin's manifest does not declare outgoing HTTP to this host.
    #[error("HTTP to `{host}:{port}` refused: the plugin's manifest does not declare this host")]
    NotDeclared {
        /// Host of the request.
        host: String,
        /// Port of the request.
        port: u16,
    },
    /// The operator's grant does not allow this host.
    #[error(
        "HTTP to `{host}:{port}` refused: the host is not in the grant's allow-list (grant it with `--allow-host {host}`)"
    )]
    NotGranted {
        /// Host of the request.
        host: String,
        /// Port of the request.
        port: u16,
    },
    /// The host resolved to an address in a range that must be granted explicitly.
    #[error(
        "HTTP to `{host}` refused: it resolves to {ip}, a {reason} address (grant the range explicitly with `--allow-private {ip}/32` if this is intended)"
    )]
    ForbiddenAddress {
        /// Host of the request.
        host: String,
        /// The address it resolved to.
        ip: IpAddr,
        /// Which kind of range, e.g. `loopback`.
        reason: &'static str,
    },
}

/// The outgoing HTTP rules of one plugin's capabilities.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EgressRules {
    /// What the manifest declares; empty means no HTTP at all.
    pub declared: Vec<HostPattern>,
    /// What the grant allows; empty means no HTTP at all.
    pub granted: Vec<HostPattern>,
    /// Loopback, private and link-local ranges the operator opened explicitly.
    pub allow_private: Vec<IpNet>,
}

impl EgressRules {
    /// Whether any outgoing HTTP can be allowed at all.
    pub fn is_enabled(&self) -> bool {
        !self.declared.is_empty() && !self.granted.is_empty()
    }

    /// Check a request's host (before DNS).
    pub fn check_host(&self, host: &str, port: u16) -> Result<(), EgressDenied> {
        let host = normalise_host(host);
        if !self.declared.iter().any(|p| p.matches(&host, port)) {
            return Err(EgressDenied::NotDeclared { host, port });
        }
        if !self.granted.iter().any(|p| p.matches(&host, port)) {
            return Err(EgressDenied::NotGranted { host, port });
        }
        Ok(())
    }

    /// Check an address `host` resolved to (after DNS, before connecting).
    pub fn check_ip(&self, host: &str, ip: IpAddr) -> Result<(), EgressDenied> {
        match forbidden_ip_reason(ip) {
            Some(reason) if !self.allow_private.iter().any(|net| net.contains(&ip)) => {
                Err(EgressDenied::ForbiddenAddress {
                    host: normalise_host(host),
                    ip,
                    reason,
                })
            }
            _ => Ok(()),
        }
    }
}

/// Why `ip` is not a public unicast address, or `None` if it is.
///
/// Covers loopback, RFC 1918 private, link-local (including the cloud metadata
/// address 169.254.169.254), CGNAT, unspecified, broadcast, multicast, documentation,
/// benchmarking and reserved ranges, IPv6 unique-local and link-local, and IPv4
/// addresses embedded in IPv6 (mapped, compatible, NAT64), which are judged as IPv4.
pub fn forbidden_ip_reason(ip: IpAddr) -> Option<&'static str> {
    match ip {
        IpAddr::V4(v4) => v4_reason(v4),
        IpAddr::V6(v6) => v6_reason(v6),
    }
}

fn v4_reason(ip: Ipv4Addr) -> Option<&'static str> {
    let o = ip.octets();
    Some(match o {
        [127, ..] => "loopback",
        [169, 254, 169, 254] => "link-local (cloud metadata)",
        [169, 254, ..] => "link-local",
        [10, ..] => "private",
        [172, b, ..] if (16..32).contains(&b) => "private",
        [192, 168, ..] => "private",
        [100, b, ..] if (64..128).contains(&b) => "shared (CGNAT)",
        [0, ..] => "unspecified",
        [255, 255, 255, 255] => "broadcast",
        [a, ..] if (224..240).contains(&a) => "multicast",
        [a, ..] if a >= 240 => "reserved",
        [192, 0, 0, _] => "IETF protocol assignment",
        [192, 0, 2, _] | [198, 51, 100, _] | [203, 0, 113, _] => "documentation",
        [198, b, ..] if b == 18 || b == 19 => "benchmarking",
        _ => return None,
    })
}

fn v6_reason(ip: Ipv6Addr) -> Option<&'static str> {
    if let Some(v4) = ip.to_ipv4_mapped() {
        return v4_reason(v4);
    }
    let s = ip.segments();
    // NAT64 well-known prefix 64:ff9b::/96 embeds an IPv4 address.
    if s[0..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        let v4 = Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
        return v4_reason(v4);
    }
    Some(if ip.is_loopback() {
        "loopback"
    } else if ip.is_unspecified() {
        "unspecified"
    } else if s[0] & 0xffc0 == 0xfe80 {
        "link-local"
    } else if s[0] & 0xfe00 == 0xfc00 {
        "unique-local (private)"
    } else if s[0] & 0xff00 == 0xff00 {
        "multicast"
    } else if s[0] == 0x2001 && s[1] == 0x0db8 {
        "documentation"
    } else if s[0..6] == [0, 0, 0, 0, 0, 0] {
        // Deprecated IPv4-compatible addresses (::a.b.c.d).
        "IPv4-compatible (deprecated)"
    } else {
        return None;
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        s.parse().unwrap()
    }

    #[test]
    fn patterns_match_hosts_and_ports() {
        assert!(p("api.example.com").matches("API.example.com.", 443));
        assert!(!p("api.example.com").matches("example.com", 443));
        assert!(p("*.example.com").matches("a.b.example.com", 80));
        assert!(!p("*.example.com").matches("example.com", 80));
        assert!(!p("*.example.com").matches("badexample.com", 80));
        assert!(p("*").matches("anything", 1));
        assert!(p("localhost:8080").matches("localhost", 8080));
        assert!(!p("localhost:8080").matches("localhost", 8081));
        assert!(p("[::1]:80").matches("[::1]", 80));
        assert!(p("::1").matches("::1", 80));
    }

    #[test]
    fn bad_patterns_say_why() {
        assert!(
            HostPattern::from_str("https://x.com")
                .unwrap_err()
                .contains("no scheme")
        );
        assert!(
            HostPattern::from_str("a.*.com")
                .unwrap_err()
                .contains("first label")
        );
        assert!(
            HostPattern::from_str("x.com:99999")
                .unwrap_err()
                .contains("port")
        );
    }

    #[test]
    fn metadata_loopback_and_private_are_forbidden() {
        for (ip, reason) in [
            ("127.0.0.1", "loopback"),
            ("169.254.169.254", "link-local (cloud metadata)"),
            ("10.1.2.3", "private"),
            ("172.16.0.1", "private"),
            ("192.168.1.1", "private"),
            ("100.64.0.1", "shared (CGNAT)"),
            ("0.0.0.0", "unspecified"),
            ("::1", "loopback"),
            ("fe80::1", "link-local"),
            ("fd00::1", "unique-local (private)"),
            ("::ffff:127.0.0.1", "loopback"),
            ("::ffff:169.254.169.254", "link-local (cloud metadata)"),
            ("64:ff9b::a9fe:a9fe", "link-local (cloud metadata)"),
            ("::", "unspecified"),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(forbidden_ip_reason(ip), Some(reason), "{ip}");
        }
        for ok in ["93.184.216.34", "1.1.1.1", "2606:4700::1111", "172.32.0.1"] {
            assert_eq!(forbidden_ip_reason(ok.parse().unwrap()), None, "{ok}");
        }
    }

    #[test]
    fn policy_needs_declaration_grant_and_public_ip() {
        let pol = EgressRules {
            declared: vec![p("*")],
            granted: vec![p("api.example.com")],
            allow_private: vec!["127.0.0.0/8".parse().unwrap()],
        };
        assert!(pol.check_host("api.example.com", 443).is_ok());
        assert!(matches!(
            pol.check_host("evil.example", 443),
            Err(EgressDenied::NotGranted { .. })
        ));
        assert!(pol.check_ip("x", "127.0.0.1".parse().unwrap()).is_ok());
        let err = pol
            .check_ip("x", "169.254.169.254".parse().unwrap())
            .unwrap_err();
        assert!(
            err.to_string()
                .contains("169.254.169.254, a link-local (cloud metadata) address")
        );

        let narrow = EgressRules {
            declared: vec![p("api.example.com")],
            granted: vec![p("*")],
            allow_private: vec![],
        };
        assert!(matches!(
            narrow.check_host("other.example.com", 443),
            Err(EgressDenied::NotDeclared { .. })
        ));
    }
}
