//! How the interop suite runs tandem-server: alone on file storage, or as one node of a
//! three-node cluster on PostgreSQL (`crate::CLUSTER`), which the suite's clients all use.

use std::collections::BTreeMap;
use std::ops::Deref;
use std::path::PathBuf;
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use tandem_core::{StorageAdapter, StorageKey};
use tandem_server::{Options, Server, ServerError};
use tandem_storage_postgres::PostgresStorage;
use tandem_storage_postgres::TestPostgres;

/// One PostgreSQL server for the whole test binary (its watchdog stops it when the binary
/// ends), and one database per test's data directory (a restart finds its documents).
static POSTGRES: OnceLock<TestPostgres> = OnceLock::new();
static DATABASES: Mutex<BTreeMap<PathBuf, String>> = Mutex::new(BTreeMap::new());

const CLUSTER_SECRET: &str = "interop-cluster";

/// The server the suite's clients connect to, and in cluster mode the two other nodes.
pub struct Served {
    main: Server,
    others: Vec<Server>,
}

impl Deref for Served {
    type Target = Server;

    fn deref(&self) -> &Server {
        &self.main
    }
}

impl Served {
    /// Shuts down the server and the other nodes.
    pub async fn shutdown(self) {
        self.main.shutdown().await;
        for other in self.others {
            other.shutdown().await;
        }
    }
}

/// [`try_serve`], which must succeed.
pub async fn serve(options: &Options) -> Served {
    try_serve(options).await.expect("tandem-server starts")
}

/// Starts tandem-server with `options`: as they say, or (in cluster mode, unless in memory)
/// on PostgreSQL as one of three linked nodes.
pub async fn try_serve(options: &Options) -> Result<Served, ServerError> {
    if !crate::CLUSTER || options.memory {
        return Ok(Served {
            main: Server::start(options).await?,
            others: Vec::new(),
        });
    }
    let database = database_of(options).await;
    let node = |base: &Options| Options {
        postgres: Some(database.clone()),
        cluster_advertise: Some("ws://127.0.0.1:0".into()),
        cluster_secret: Some(CLUSTER_SECRET.into()),
        ..base.clone()
    };
    let mut defaults = options.clone();
    defaults.port = 0;
    let mut others = Vec::new();
    for _ in 0..2 {
        others.push(Server::start(&node(&defaults)).await?);
    }
    let main = Server::start(&node(options)).await?;
    for other in &others {
        main.repo()
            .wait_for_peer(other.repo().peer_id(), Duration::from_secs(30))
            .await
            .expect("the nodes never linked");
    }
    Ok(Served { main, others })
}

async fn database_of(options: &Options) -> String {
    let known = DATABASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .get(&options.data_dir)
        .cloned();
    if let Some(url) = known {
        return url;
    }
    let postgres =
        POSTGRES.get_or_init(|| TestPostgres::start().unwrap_or_else(|error| panic!("{error}")));
    let url = postgres.database().await.expect("a database");
    DATABASES
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(options.data_dir.clone(), url.clone());
    url
}

/// What is stored under document `id` (`snapshot`, `incremental`, `tombstone`…), in the
/// directory or the database the server with `options` keeps documents in. An empty directory
/// left behind counts as nothing.
pub async fn kinds_stored(options: &Options, id: &str) -> Vec<String> {
    if crate::CLUSTER && !options.memory {
        let store = PostgresStorage::connect(&database_of(options).await)
            .await
            .expect("the database");
        let mut kinds: Vec<String> = store
            .load_range(&StorageKey::new([id]))
            .await
            .expect("a load")
            .into_iter()
            .filter_map(|(key, _)| key.parts().get(1).cloned())
            .collect();
        kinds.dedup();
        return kinds;
    }
    // The NodeFS layout: `<dir>/<id[..2]>/<id[2..]>/<kind>/…`.
    let stored = options.data_dir.join(&id[..2]).join(&id[2..]);
    std::fs::read_dir(&stored)
        .expect("the document's directory")
        .map(|entry| {
            entry
                .expect("an entry")
                .file_name()
                .to_string_lossy()
                .into_owned()
        })
        .filter(|name| {
            let path = stored.join(name);
            !path.is_dir() || std::fs::read_dir(path).is_ok_and(|mut d| d.next().is_some())
        })
        .collect()
}
