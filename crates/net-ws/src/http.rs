//! The HTTP/1.1 request that starts every socket, as the application's hook sees it, and the
//! WebSocket handshake's keys, for HTTP servers of any framework. hyper reads the requests.

use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// The HTTP request that opened a socket, as the application's
/// [`Authenticate`](crate::Authenticate) hook sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UpgradeRequest {
    /// `GET`, normally.
    pub method: String,
    /// The path and query, e.g. `/sync?token=…`.
    pub path: String,
    /// Header names (lower-cased) and values, in order.
    pub headers: Vec<(String, String)>,
}

impl UpgradeRequest {
    /// The head of an HTTP request as the `http` crate (hyper, axum) holds it.
    pub fn from_http<B>(request: &hyper::Request<B>) -> UpgradeRequest {
        UpgradeRequest {
            method: request.method().as_str().to_owned(),
            path: request.uri().path_and_query().map_or_else(
                || request.uri().path().to_owned(),
                |p| p.as_str().to_owned(),
            ),
            headers: request
                .headers()
                .iter()
                .map(|(name, value)| {
                    (
                        name.as_str().to_owned(),
                        String::from_utf8_lossy(value.as_bytes()).into_owned(),
                    )
                })
                .collect(),
        }
    }

    /// The first header of that name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first value of a query parameter, undecoded.
    pub fn query(&self, name: &str) -> Option<&str> {
        let (_, query) = self.path.split_once('?')?;
        query
            .split('&')
            .filter_map(|pair| pair.split_once('=').or(Some((pair, ""))))
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v)
    }

    /// Whether this asks for a WebSocket.
    pub fn is_websocket_upgrade(&self) -> bool {
        let has_token = |name: &str, token: &str| {
            self.header(name)
                .is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
        };
        has_token("upgrade", "websocket")
            && has_token("connection", "upgrade")
            && self.header("sec-websocket-key").is_some()
    }
}

/// The `Sec-WebSocket-Accept` value that answers a request's `Sec-WebSocket-Key` (RFC 6455
/// §4.2.2), for applications that answer the upgrade in their own HTTP server and then hand the
/// socket to [`WebSocketAcceptor::accept_upgraded`](crate::WebSocketAcceptor::accept_upgraded).
///
/// ```
/// // The example from RFC 6455 §1.3.
/// let accept = tandem_net_ws::websocket_accept_key("dGhlIHNhbXBsZSBub25jZQ==");
/// assert_eq!(accept, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
/// ```
pub fn websocket_accept_key(sec_websocket_key: &str) -> String {
    derive_accept_key(sec_websocket_key.as_bytes())
}

/// The `Sec-WebSocket-Key` of a request, if it is a version-13 WebSocket upgrade; `header`
/// reads one request header by (lower-case) name from whatever HTTP framework holds it.
///
/// ```
/// let headers = [
///     ("upgrade", "websocket"),
///     ("connection", "keep-alive, Upgrade"),
///     ("sec-websocket-version", "13"),
///     ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
/// ];
/// let header = |name: &str| headers.iter().find(|(n, _)| *n == name).map(|(_, v)| *v);
/// assert_eq!(
///     tandem_net_ws::websocket_upgrade_key(header).as_deref(),
///     Some("dGhlIHNhbXBsZSBub25jZQ==")
/// );
/// assert_eq!(tandem_net_ws::websocket_upgrade_key(|_| None), None);
/// ```
pub fn websocket_upgrade_key<'a>(header: impl Fn(&str) -> Option<&'a str>) -> Option<String> {
    let has = |name: &str, token: &str| {
        header(name).is_some_and(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    };
    if !has("upgrade", "websocket")
        || !has("connection", "upgrade")
        || !has("sec-websocket-version", "13")
    {
        return None;
    }
    header("sec-websocket-key").map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(raw: &[(&str, &str)], target: &str) -> UpgradeRequest {
        let mut builder = hyper::Request::builder().uri(target);
        for (name, value) in raw {
            builder = builder.header(*name, *value);
        }
        UpgradeRequest::from_http(&builder.body(()).unwrap())
    }

    #[test]
    fn an_upgrade_request_reads_its_headers_and_query() {
        let upgrade = request(
            &[
                ("Host", "a"),
                ("Upgrade", "websocket"),
                ("Connection", "keep-alive, Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="),
            ],
            "/sync?token=abc&x",
        );
        assert!(upgrade.is_websocket_upgrade());
        assert_eq!(upgrade.query("token"), Some("abc"));
        assert_eq!(upgrade.query("x"), Some(""));
        assert_eq!(upgrade.header("HOST"), Some("a"));
        assert_eq!(upgrade.path, "/sync?token=abc&x");
        assert!(!request(&[("Host", "a")], "/health").is_websocket_upgrade());
    }
}
