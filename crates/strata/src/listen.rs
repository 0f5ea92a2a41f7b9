//! `strata serve --listen`: an address as Go programs take it, `HOST:PORT`
//! with a host name or IP address (`[…]` around IPv6), or `:PORT` for every
//! interface.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener, ToSocketAddrs};
use std::str::FromStr;

use anyhow::{Context, Result};

/// The forms `--listen` takes, for error messages.
pub const FORMS: &str = "HOST:PORT, e.g. 127.0.0.1:8086, localhost:8086 or :8086";

/// A `--listen` address, parsed but not yet resolved.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenAddr {
    /// A host name or IP address (IPv6 without brackets); empty for every
    /// interface.
    host: String,
    port: u16,
}

impl FromStr for ListenAddr {
    type Err = String;

    fn from_str(s: &str) -> Result<ListenAddr, String> {
        let bad = |why: &str| format!("{why}; expected {FORMS}");
        let (host, port) = s.rsplit_once(':').ok_or_else(|| bad("no port"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| bad(&format!("bad port {port:?}")))?;
        let host = match host.strip_prefix('[') {
            Some(rest) => {
                let ip = rest
                    .strip_suffix(']')
                    .and_then(|ip| ip.parse::<Ipv6Addr>().ok())
                    .ok_or_else(|| bad(&format!("bad IPv6 address {host:?}")))?;
                ip.to_string()
            }
            None if host.contains(':') => {
                return Err(bad("an IPv6 address goes in brackets, as in [::1]:8086"))
            }
            None if host.contains(|c: char| c.is_whitespace() || c == '/') => {
                return Err(bad(&format!("bad host {host:?}")))
            }
            None => host.to_string(),
        };
        Ok(ListenAddr { host, port })
    }
}

impl fmt::Display for ListenAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl ListenAddr {
    /// The socket address to bind: `0.0.0.0` for an empty host, else the
    /// host's first IPv4 address, or its first address if it has no IPv4
    /// one (as Go's `net.Listen` does: a listener on one of the host's
    /// addresses).
    /// `flag` is the flag it came from, named in errors.
    pub fn resolve_for(&self, flag: &str) -> Result<SocketAddr> {
        if self.host.is_empty() {
            return Ok(SocketAddr::new(
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                self.port,
            ));
        }
        let addrs: Vec<SocketAddr> = (self.host.as_str(), self.port)
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve the host of {flag} {self}"))?
            .collect();
        addrs
            .iter()
            .find(|a| a.is_ipv4())
            .or(addrs.first())
            .copied()
            .with_context(|| format!("the host of {flag} {self} has no address"))
    }

    /// Binds the listening socket (non-blocking, for tokio).
    pub fn bind(&self) -> Result<TcpListener> {
        self.bind_for("--listen")
    }

    /// [`Self::bind`] for the flag `flag` (named in errors).
    pub fn bind_for(&self, flag: &str) -> Result<TcpListener> {
        let addr = self.resolve_for(flag)?;
        let listener = TcpListener::bind(addr).map_err(|e| {
            let shown = if addr.to_string() == self.to_string() {
                self.to_string()
            } else {
                format!("{self} ({addr})")
            };
            let why = match e.kind() {
                std::io::ErrorKind::AddrInUse => format!(
                    "the port is in use by another process (another strata serve?); \
                     stop it or choose another {flag} address"
                ),
                std::io::ErrorKind::AddrNotAvailable => {
                    "the address is not one of this machine's".to_string()
                }
                std::io::ErrorKind::PermissionDenied => {
                    "permission denied (ports below 1024 need privileges)".to_string()
                }
                _ => return anyhow::Error::new(e).context(format!("cannot listen on {shown}")),
            };
            anyhow::anyhow!("cannot listen on {shown}: {why}")
        })?;
        listener
            .set_nonblocking(true)
            .context("making the listening socket non-blocking")?;
        Ok(listener)
    }
}

/// The address clients should use for a listener bound to `addr`: the
/// loopback address in place of an unspecified one.
pub fn client_addr(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), addr.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), addr.port())
        }
        _ => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<ListenAddr, String> {
        s.parse()
    }

    #[test]
    fn forms_parse_and_print_back() {
        for s in [
            "127.0.0.1:8086",
            "localhost:8086",
            ":8086",
            "0.0.0.0:1",
            "[::1]:8086",
            "[::]:0",
            "example.com:443",
        ] {
            assert_eq!(parse(s).map(|a| a.to_string()), Ok(s.to_string()), "{s}");
        }
    }

    #[test]
    fn bad_forms_name_the_expected_form() {
        for s in [
            "8086",
            "localhost",
            "localhost:",
            "localhost:http",
            "localhost:70000",
            "::1:8086",
            "[::1:8086",
            "[foo]:8086",
            "a b:8086",
            "",
        ] {
            let e = parse(s).expect_err(s);
            assert!(e.contains(FORMS), "{s}: {e}");
        }
    }

    #[test]
    fn an_empty_host_is_every_interface() {
        assert_eq!(
            parse(":8086").unwrap().resolve_for("--listen").unwrap(),
            "0.0.0.0:8086".parse().unwrap()
        );
    }

    #[test]
    fn localhost_resolves_to_ipv4_loopback() {
        let a = parse("localhost:8086")
            .unwrap()
            .resolve_for("--listen")
            .unwrap();
        assert_eq!(a, "127.0.0.1:8086".parse().unwrap());
    }

    #[test]
    fn binding_a_taken_port_says_so() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let e = parse(&format!("localhost:{port}"))
            .unwrap()
            .bind()
            .unwrap_err();
        let msg = format!("{e:#}");
        assert!(
            msg.starts_with(&format!(
                "cannot listen on localhost:{port} (127.0.0.1:{port}): the port is in use"
            )),
            "{msg}"
        );
    }

    #[test]
    fn clients_use_loopback_for_every_interface() {
        let c = |s: &str| client_addr(s.parse().unwrap()).to_string();
        assert_eq!(c("0.0.0.0:8086"), "127.0.0.1:8086");
        assert_eq!(c("[::]:8086"), "[::1]:8086");
        assert_eq!(c("10.1.2.3:8086"), "10.1.2.3:8086");
    }
}
