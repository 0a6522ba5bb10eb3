//! [`AutomergeUrl`] and [`UrlHead`]: `automerge:<id>` with an optional `#head|head` part.

use std::fmt;
use std::str::FromStr;

use automerge::ChangeHash;

use crate::{base58check, DocumentId};

const SCHEME: &str = "automerge:";

/// Why a string is not an automerge URL, or a head cannot become a change hash.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidUrl {
    /// The text does not start with the lowercase `automerge:` scheme.
    #[error("not an automerge URL: {0:?}")]
    NotAutomergeUrl(String),
    /// More than one `#`.
    #[error("Invalid URL: contains multiple heads sections")]
    MultipleHeadsSections,
    /// The document id part is empty, has characters outside `[A-Za-z0-9_]`, or fails Base58Check.
    #[error("Invalid document URL: {0}")]
    InvalidDocumentId(String),
    /// A head fails Base58Check.
    #[error("Invalid head in URL: {0}")]
    InvalidHead(String),
    /// A head decodes, but not to the 32 bytes of a change hash.
    #[error("head {head} is {len} bytes long, a change hash has 32")]
    NotAChangeHash {
        /// The head as written in the URL.
        head: String,
        /// Its decoded length.
        len: usize,
    },
}

/// One head as written in URLs and in `remote-heads-changed`: Base58Check of a change hash.
///
/// Like automerge-repo, parsing checks the checksum but not the length; [`UrlHead::change_hash`]
/// is where a head that is not 32 bytes is refused.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct UrlHead {
    bytes: Vec<u8>,
}

impl UrlHead {
    /// The decoded bytes (32 for every head a real document has).
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The automerge change hash this head names.
    pub fn change_hash(&self) -> Result<ChangeHash, InvalidUrl> {
        ChangeHash::try_from(self.bytes.as_slice()).map_err(|_| InvalidUrl::NotAChangeHash {
            head: self.to_string(),
            len: self.bytes.len(),
        })
    }

    /// The head as 64-character lowercase hex, automerge's own rendering.
    pub fn to_hex(&self) -> String {
        hex::encode(&self.bytes)
    }
}

impl From<ChangeHash> for UrlHead {
    fn from(hash: ChangeHash) -> Self {
        UrlHead {
            bytes: hash.0.to_vec(),
        }
    }
}

impl From<&ChangeHash> for UrlHead {
    fn from(hash: &ChangeHash) -> Self {
        UrlHead::from(*hash)
    }
}

impl TryFrom<&UrlHead> for ChangeHash {
    type Error = InvalidUrl;

    fn try_from(head: &UrlHead) -> Result<Self, Self::Error> {
        head.change_hash()
    }
}

impl FromStr for UrlHead {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        base58check::decode(text)
            .map(|bytes| UrlHead { bytes })
            .ok_or_else(|| InvalidUrl::InvalidHead(text.into()))
    }
}

impl fmt::Display for UrlHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base58check::encode(&self.bytes))
    }
}

impl fmt::Debug for UrlHead {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "UrlHead({self})")
    }
}

/// Converts automerge heads to their URL form.
pub fn url_heads(heads: &[ChangeHash]) -> Vec<UrlHead> {
    heads.iter().map(UrlHead::from).collect()
}

/// `automerge:<id>`, optionally pinned to heads (`#h1|h2`; `#` alone means no heads).
///
/// Parsing follows `isValidAutomergeUrl` / `parseAutomergeUrl` of automerge-repo 2.5.6
/// (docs/protocol.md#automerge-urls): a bare document id or `automerge:<uuid>` is not a URL.
///
/// ```
/// use tandem_core::AutomergeUrl;
/// let url: AutomergeUrl = "automerge:2kGRUrX8w2KjaHC3xek1kijSVeee#".parse().unwrap();
/// assert_eq!(url.document_id().to_string(), "2kGRUrX8w2KjaHC3xek1kijSVeee");
/// assert_eq!(url.heads(), Some(&[][..]));
/// assert_eq!(url.to_string(), "automerge:2kGRUrX8w2KjaHC3xek1kijSVeee#");
/// ```
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct AutomergeUrl {
    document_id: DocumentId,
    heads: Option<Vec<UrlHead>>,
}

impl AutomergeUrl {
    /// The URL of the document's current state (no heads).
    pub fn new(document_id: DocumentId) -> Self {
        AutomergeUrl {
            document_id,
            heads: None,
        }
    }

    /// The URL of the document as it was at `heads`.
    pub fn with_heads(document_id: DocumentId, heads: Vec<UrlHead>) -> Self {
        AutomergeUrl {
            document_id,
            heads: Some(heads),
        }
    }

    /// The document.
    pub fn document_id(&self) -> &DocumentId {
        &self.document_id
    }

    /// The heads the URL is pinned to, if it has a `#` part.
    pub fn heads(&self) -> Option<&[UrlHead]> {
        self.heads.as_deref()
    }

    /// The pinned heads as automerge change hashes; fails if a head is not 32 bytes.
    pub fn change_hashes(&self) -> Result<Option<Vec<ChangeHash>>, InvalidUrl> {
        self.heads
            .as_ref()
            .map(|heads| heads.iter().map(UrlHead::change_hash).collect())
            .transpose()
    }
}

impl FromStr for AutomergeUrl {
    type Err = InvalidUrl;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let rest = text
            .strip_prefix(SCHEME)
            .ok_or_else(|| InvalidUrl::NotAutomergeUrl(text.into()))?;
        let mut sections = rest.split('#');
        let id_text = sections.next().unwrap_or_default();
        let heads_text = sections.next();
        if sections.next().is_some() {
            return Err(InvalidUrl::MultipleHeadsSections);
        }
        // JS first matches `^automerge:(\w+)$`, then checks the Base58Check of the id.
        let word = !id_text.is_empty()
            && id_text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_');
        if !word {
            return Err(InvalidUrl::NotAutomergeUrl(text.into()));
        }
        let document_id = id_text
            .parse()
            .map_err(|_| InvalidUrl::InvalidDocumentId(text.into()))?;
        let heads = match heads_text {
            None => None,
            Some("") => Some(Vec::new()),
            Some(list) => Some(list.split('|').map(str::parse).collect::<Result<_, _>>()?),
        };
        Ok(AutomergeUrl { document_id, heads })
    }
}

impl fmt::Display for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}", self.document_id)?;
        if let Some(heads) = &self.heads {
            f.write_str("#")?;
            for (i, head) in heads.iter().enumerate() {
                if i > 0 {
                    f.write_str("|")?;
                }
                write!(f, "{head}")?;
            }
        }
        Ok(())
    }
}

impl fmt::Debug for AutomergeUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AutomergeUrl({self})")
    }
}

impl From<DocumentId> for AutomergeUrl {
    fn from(id: DocumentId) -> Self {
        AutomergeUrl::new(id)
    }
}
