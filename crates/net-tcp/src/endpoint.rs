//! Where a server listens or a client connects: a TCP address or a Unix socket's path.

use std::fmt;
use std::path::PathBuf;

/// A TCP address (`tcp://host:port`) or a Unix socket (`unix:/path/to/socket`).
///
/// ```
/// use tandem_net_tcp::Endpoint;
/// let tcp: Endpoint = "tcp://127.0.0.1:4100".parse()?;
/// assert_eq!(tcp, Endpoint::Tcp("127.0.0.1:4100".into()));
/// let unix: Endpoint = "unix:/run/tandem.sock".parse()?;
/// assert_eq!(unix.to_string(), "unix:/run/tandem.sock");
/// assert!("ws://127.0.0.1:3030".parse::<Endpoint>().is_err());
/// # Ok::<(), tandem_net_tcp::InvalidEndpoint>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `host:port`, resolved when connecting.
    Tcp(String),
    /// The path of a Unix domain socket.
    Unix(PathBuf),
}

/// A string that is neither `tcp://host:port` nor `unix:/path`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not a TCP or Unix socket endpoint (tcp://host:port or unix:/path): {0:?}")]
pub struct InvalidEndpoint(pub String);

impl std::str::FromStr for Endpoint {
    type Err = InvalidEndpoint;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidEndpoint(text.to_owned());
        if let Some(address) = text.strip_prefix("tcp://") {
            // A port is required: there is no default port for this protocol.
            let (host, port) = address.rsplit_once(':').ok_or_else(invalid)?;
            if host.is_empty() || host.contains('/') || port.parse::<u16>().is_err() {
                return Err(invalid());
            }
            return Ok(Endpoint::Tcp(address.to_owned()));
        }
        if let Some(path) = text.strip_prefix("unix:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(invalid());
            }
            return Ok(Endpoint::Unix(PathBuf::from(path)));
        }
        Err(invalid())
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp(address) => write!(f, "tcp://{address}"),
            Endpoint::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_without_a_port_or_a_path_are_refused() {
        for bad in [
            "tcp://",
            "tcp://host",
            "tcp://host:port",
            "tcp://:80",
            "tcp://h/x:1",
            "unix:",
            "unix://",
            "127.0.0.1:80",
        ] {
            assert!(bad.parse::<Endpoint>().is_err(), "{bad} was accepted");
        }
        assert_eq!(
            "unix:///tmp/s".parse::<Endpoint>(),
            Ok(Endpoint::Unix("/tmp/s".into()))
        );
        assert_eq!(
            "tcp://[::1]:9".parse::<Endpoint>(),
            Ok(Endpoint::Tcp("[::1]:9".into()))
        );
    }
}
