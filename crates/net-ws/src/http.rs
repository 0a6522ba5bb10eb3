//! The HTTP/1.1 request that starts every socket: a WebSocket upgrade, or a plain `GET` that a
//! probe sends to see that the server runs.
//!
//! We read the request head ourselves (rather than letting tungstenite do it) so that one port
//! serves both, and so that the application sees the request before we answer it.

use tokio::io::{AsyncRead, AsyncReadExt};
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;

/// A request head bigger than this is refused: nobody needs 16 KiB of headers to sync.
const MAX_HEAD: usize = 16 * 1024;
const MAX_HEADERS: usize = 64;

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

/// Why a request head could not be read.
#[derive(Debug, thiserror::Error)]
pub(crate) enum HeadError {
    #[error("connection closed before the request was complete")]
    Closed,
    #[error("request head larger than {MAX_HEAD} bytes")]
    TooLarge,
    #[error("malformed HTTP request: {0}")]
    Malformed(String),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// Reads one request head. Returns it and whatever bytes followed it.
pub(crate) async fn read_request<S: AsyncRead + Unpin>(
    stream: &mut S,
) -> Result<(UpgradeRequest, Vec<u8>), HeadError> {
    let mut buffer = Vec::with_capacity(1024);
    let mut chunk = [0u8; 2048];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HeadError::Closed);
        }
        buffer.extend_from_slice(&chunk[..n]);
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let mut request = httparse::Request::new(&mut headers);
        match request.parse(&buffer) {
            Ok(httparse::Status::Complete(len)) => {
                let head = UpgradeRequest {
                    method: request.method.unwrap_or_default().to_owned(),
                    path: request.path.unwrap_or_default().to_owned(),
                    headers: request
                        .headers
                        .iter()
                        .map(|h| {
                            (
                                h.name.to_ascii_lowercase(),
                                String::from_utf8_lossy(h.value).into_owned(),
                            )
                        })
                        .collect(),
                };
                return Ok((head, buffer[len..].to_vec()));
            }
            Ok(httparse::Status::Partial) if buffer.len() < MAX_HEAD => continue,
            Ok(httparse::Status::Partial) => return Err(HeadError::TooLarge),
            Err(error) => return Err(HeadError::Malformed(error.to_string())),
        }
    }
}

/// The `101 Switching Protocols` answer to an upgrade request.
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

pub(crate) fn switching_protocols(request: &UpgradeRequest) -> Vec<u8> {
    let key = request.header("sec-websocket-key").unwrap_or_default();
    format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    )
    .into_bytes()
}

/// A complete plain-text response that closes the connection.
pub(crate) fn plain_response(status: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_an_upgrade_request_and_keeps_what_follows() {
        let raw = b"GET /sync?token=abc&x HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\nConnection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\nextra";
        let (request, rest) = read_request(&mut &raw[..]).await.unwrap();
        assert!(request.is_websocket_upgrade());
        assert_eq!(request.query("token"), Some("abc"));
        assert_eq!(request.query("x"), Some(""));
        assert_eq!(request.header("HOST"), Some("a"));
        assert_eq!(rest, b"extra");
        // RFC 6455's example key and answer.
        let answer = String::from_utf8(switching_protocols(&request)).unwrap();
        assert!(answer.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
    }

    #[tokio::test]
    async fn a_plain_get_is_not_an_upgrade_and_garbage_is_an_error() {
        let (request, _) = read_request(&mut &b"GET /health HTTP/1.1\r\n\r\n"[..])
            .await
            .unwrap();
        assert!(!request.is_websocket_upgrade());
        assert!(read_request(&mut &b"\x00\x01garbage\r\n\r\n"[..])
            .await
            .is_err());
        assert!(matches!(
            read_request(&mut &b"GET / HTTP/1.1\r\n"[..]).await,
            Err(HeadError::Closed)
        ));
    }
}
