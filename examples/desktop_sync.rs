//! An offline-first desktop client: its documents live in a folder of its own, it edits them
//! whether or not the server is reachable, and it syncs whenever the server is there.
//!
//! The example plays the whole story in one process, with a sync server of its own:
//! 1. the client creates a shopping list, which reaches the server;
//! 2. the server goes down; the client keeps adding items, then the app is closed and opened
//!    again (still offline) and finds its list, with the offline edits, in its folder;
//! 3. the server comes back on the same address; the client reconnects by itself and the server
//!    ends up with every item.
//!
//! ```sh
//! cargo run --example desktop_sync
//! ```

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use automerge::{transaction::Transactable, ChangeHash, ObjType, ReadDoc, ROOT};
use futures::StreamExt;
use tandem::net_ws::{ClientConfig, ServerConfig, WebSocketClient, WebSocketServer};
use tandem::storage_fs::FsStorage;
use tandem::{AutomergeUrl, ConnectionState, DocHandle, Repo};

type Error = Box<dyn std::error::Error>;

/// How long any step may take before the example gives up.
const PATIENCE: Duration = Duration::from_secs(30);

/// The sync server: file storage, and a change acknowledged only once it is on disk.
async fn start_server(address: SocketAddr, folder: &Path) -> Result<(Repo, SocketAddr), Error> {
    let listener = WebSocketServer::bind(address, ServerConfig::default()).await?;
    let address = listener.local_addr()?;
    let repo = Repo::builder()
        .storage(FsStorage::open(folder)?)
        .durable_acknowledgement(true)
        .network(listener)
        .start()
        .await?;
    Ok((repo, address))
}

/// The desktop app's repo: its own folder, and a client that keeps trying to reach the server
/// (quickly, for the example; the defaults back off up to 30 s).
async fn open_app(
    folder: &Path,
    server: SocketAddr,
) -> Result<(Repo, tokio::sync::watch::Receiver<ConnectionState>), Error> {
    let client = WebSocketClient::new(
        format!("ws://{server}"),
        ClientConfig {
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(500),
            ..ClientConfig::default()
        },
    )?;
    let states = client.states();
    let repo = Repo::builder()
        .storage(FsStorage::open(folder)?)
        .network(client)
        .start()
        .await?;
    Ok((repo, states))
}

fn add_item(list: &DocHandle, item: &str) -> Result<(), Error> {
    list.change(|tx| -> Result<(), automerge::AutomergeError> {
        let (_, items) = tx
            .get(ROOT, "items")?
            .ok_or(automerge::AutomergeError::Fail)?;
        let end = tx.length(&items);
        tx.insert(&items, end, item)?;
        Ok(())
    })??;
    Ok(())
}

fn items(list: &DocHandle) -> Result<Vec<String>, Error> {
    Ok(
        list.with_doc(|doc| -> Result<Vec<String>, automerge::AutomergeError> {
            let Some((_, items)) = doc.get(ROOT, "items")? else {
                return Ok(Vec::new());
            };
            (0..doc.length(&items))
                .map(|i| {
                    let item = doc.get(&items, i)?;
                    Ok(item
                        .and_then(|(v, _)| v.as_str().map(str::to_owned))
                        .unwrap_or_default())
                })
                .collect()
        })??,
    )
}

/// Waits until `handle` holds every change in `heads`.
async fn until_it_has(handle: &DocHandle, heads: &[ChangeHash]) -> Result<(), Error> {
    let mut changes = handle.changes();
    let has_all = |handle: &DocHandle| -> Result<bool, Error> {
        Ok(handle.with_doc(|doc| heads.iter().all(|h| doc.get_change_by_hash(h).is_some()))?)
    };
    let waiting = async {
        while !has_all(handle)? {
            changes.next().await.ok_or("the document was closed")?;
        }
        Ok::<(), Error>(())
    };
    tokio::time::timeout(PATIENCE, waiting).await?
}

async fn until_state(
    states: &mut tokio::sync::watch::Receiver<ConnectionState>,
    wanted: ConnectionState,
) -> Result<(), Error> {
    tokio::time::timeout(PATIENCE, states.wait_for(|s| *s == wanted)).await??;
    Ok(())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let folders = tempfile::tempdir()?;
    let (server_folder, app_folder) = (folders.path().join("server"), folders.path().join("app"));
    println!(
        "server folder {}\napp folder    {}",
        server_folder.display(),
        app_folder.display()
    );

    // 1. Online: the list is created in the app and reaches the server.
    let (server, address) = start_server("127.0.0.1:0".parse()?, &server_folder).await?;
    println!("server on ws://{address}");
    let (app, mut states) = open_app(&app_folder, address).await?;
    until_state(&mut states, ConnectionState::Online).await?;
    let (list, _) = app
        .create_with(|tx| tx.put_object(ROOT, "items", ObjType::List).map(|_| ()))
        .await?;
    add_item(&list, "bread")?;
    let url: AutomergeUrl = list.url();
    let at_server = server.find(url.clone()).await?;
    until_it_has(&at_server, &list.heads()?).await?;
    println!("online:  the server has {:?}", items(&at_server)?);

    // 2. Offline: the server stops; the app keeps editing, closes, and opens again.
    server.shutdown().await;
    until_state(&mut states, ConnectionState::Offline).await?;
    add_item(&list, "milk")?;
    add_item(&list, "apples")?;
    println!("offline: the app has {:?}", items(&list)?);
    app.shutdown().await; // saves everything to the app's folder
    let (app, mut states) = open_app(&app_folder, address).await?;
    let list = app.find(url.clone()).await?; // from the folder: no server needed
    println!("reopened offline, the app has {:?}", items(&list)?);
    add_item(&list, "coffee")?;

    // 3. The server returns on the same address; the app reconnects and catches it up.
    let (server, _) = start_server(address, &server_folder).await?;
    until_state(&mut states, ConnectionState::Online).await?;
    let at_server = server.find(url).await?;
    until_it_has(&at_server, &list.heads()?).await?;
    let (at_app, at_server_now) = (items(&list)?, items(&at_server)?);
    println!("back online: the server has {at_server_now:?}");
    if at_app != at_server_now || at_app.len() != 4 {
        return Err(format!("out of sync: app {at_app:?}, server {at_server_now:?}").into());
    }

    app.shutdown().await;
    server.shutdown().await;
    println!("in sync");
    Ok(())
}
