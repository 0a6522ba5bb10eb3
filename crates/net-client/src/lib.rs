//! The client side every tandem transport shares: dial the server, hand the connection to the
//! repo, and when it ends (or an attempt fails) dial again after an exponential backoff with
//! jitter, until the repo stops, the server refuses us, or the configured number of failures in
//! a row is reached. A transport supplies only [`Dial`], one attempt over its own medium.
//!
//! ```
//! use tandem_core::{Connection, LocalPeer};
//! use tandem_net_client::{Attempt, Dial, Reconnecting, Retry};
//! use tokio::sync::watch;
//!
//! /// A transport whose server never answers.
//! struct Nowhere;
//!
//! #[async_trait::async_trait]
//! impl Dial for Nowhere {
//!     fn target(&self) -> String {
//!         "nowhere".into()
//!     }
//!     async fn dial(&self, _: &LocalPeer) -> Result<(Connection, watch::Receiver<bool>), Attempt> {
//!         Err(Attempt::Refused("no such server".into()))
//!     }
//! }
//!
//! let client = Reconnecting::new(Nowhere, Retry::default());
//! assert_eq!(*client.states().borrow(), tandem_core::ConnectionState::Offline);
//! ```

#![warn(missing_docs)]

mod reconnecting;

pub use reconnecting::{Attempt, Dial, Reconnecting, Retry};
