//! `tandem-server migrate`: copies every key of one store into another (a NodeFS directory,
//! a JS sync server's or tandem's, into PostgreSQL, or back), then checks that every document
//! has the same heads in both. Keys are copied as they are, chunk by chunk, so nothing is
//! re-encoded; a run that stops part way can be run again.

use std::path::PathBuf;

use tandem_core::persistence::load_document;
use tandem_core::{DocumentId, StorageAdapter, StorageError, StorageKey};
use tandem_storage_fs::FsStorage;
use tandem_storage_postgres::{PostgresError, PostgresStorage};
use tracing::info;

/// Where to copy from and to: one source and one destination.
#[derive(Debug, Clone, clap::Args)]
pub struct MigrateOptions {
    /// Copy from this directory (automerge-repo's NodeFS layout).
    #[arg(long, value_name = "DIR", required_unless_present = "from_postgres")]
    pub from_dir: Option<PathBuf>,
    /// Copy from this PostgreSQL database (as `--postgres` takes it).
    #[arg(long, value_name = "URL", conflicts_with = "from_dir")]
    pub from_postgres: Option<String>,
    /// Copy into this directory (created if missing).
    #[arg(long, value_name = "DIR", required_unless_present = "to_postgres")]
    pub to_dir: Option<PathBuf>,
    /// Copy into this PostgreSQL database (its tables are created if missing).
    #[arg(long, value_name = "URL", conflicts_with = "to_dir")]
    pub to_postgres: Option<String>,
}

/// What a migration copied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Migrated {
    /// Keys copied.
    pub keys: usize,
    /// Bytes of values copied.
    pub bytes: u64,
    /// Documents whose heads were checked in both stores.
    pub documents: usize,
}

/// Why a migration stopped.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// A PostgreSQL store could not be opened.
    #[error(transparent)]
    Postgres(#[from] PostgresError),
    /// A read or a write failed.
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
    /// A directory could not be listed.
    #[error("cannot list {path}: {source}")]
    List {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A document reads differently after the copy.
    #[error("document {0} has other heads in the destination than in the source")]
    HeadsDiffer(DocumentId),
    /// Neither or both of a pair of options was given.
    #[error("give one source (--from-dir or --from-postgres) and one destination (--to-dir or --to-postgres)")]
    Usage,
}

enum Store {
    Dir(FsStorage),
    Postgres(PostgresStorage),
}

impl Store {
    /// The source, left as it is: a database with no store is refused, not given tables.
    async fn source(options: &MigrateOptions) -> Result<Store, MigrateError> {
        match (&options.from_dir, &options.from_postgres) {
            (Some(dir), None) => Ok(Store::Dir(FsStorage::open(dir)?)),
            (None, Some(url)) => Ok(Store::Postgres(
                PostgresStorage::connect_existing(url).await?,
            )),
            _ => Err(MigrateError::Usage),
        }
    }

    /// The destination, created or upgraded as a server starting on it would.
    async fn destination(options: &MigrateOptions) -> Result<Store, MigrateError> {
        match (&options.to_dir, &options.to_postgres) {
            (Some(dir), None) => Ok(Store::Dir(FsStorage::open(dir)?)),
            (None, Some(url)) => Ok(Store::Postgres(PostgresStorage::connect(url).await?)),
            _ => Err(MigrateError::Usage),
        }
    }

    fn adapter(&self) -> &dyn StorageAdapter {
        match self {
            Store::Dir(store) => store,
            Store::Postgres(store) => store,
        }
    }

    /// The first part of every key (document ids, `storage-adapter-id`), so that one
    /// document at a time is held in memory.
    async fn first_parts(&self) -> Result<Vec<String>, MigrateError> {
        match self {
            Store::Postgres(store) => Ok(store.first_parts().await?),
            Store::Dir(store) => {
                let base = store.base();
                let list = |path: &std::path::Path| -> Result<Vec<String>, MigrateError> {
                    let entries = std::fs::read_dir(path).map_err(|source| MigrateError::List {
                        path: path.to_owned(),
                        source,
                    })?;
                    Ok(entries
                        .flatten()
                        .filter(|entry| entry.file_type().is_ok_and(|t| t.is_dir()))
                        .filter_map(|entry| entry.file_name().into_string().ok())
                        // Staging files and other tools' dot-directories are not keys.
                        .filter(|name| !name.starts_with('.'))
                        .collect())
                };
                let mut names = Vec::new();
                // NodeFS puts a key's first part at `first[..2]/first[2..]`.
                for head in list(base)? {
                    for entry in std::fs::read_dir(base.join(&head))
                        .map_err(|source| MigrateError::List {
                            path: base.join(&head),
                            source,
                        })?
                        .flatten()
                    {
                        if let Ok(tail) = entry.file_name().into_string() {
                            names.push(format!("{head}{tail}"));
                        }
                    }
                }
                names.sort();
                Ok(names)
            }
        }
    }
}

/// Copies everything from the source to the destination `options` name, and checks every
/// document's heads.
pub async fn migrate(options: &MigrateOptions) -> Result<Migrated, MigrateError> {
    // A directory to copy from must be there: opening a missing one would make it, and copy
    // nothing.
    if let Some(dir) = options.from_dir.as_ref().filter(|dir| !dir.is_dir()) {
        return Err(MigrateError::List {
            path: dir.clone(),
            source: std::io::Error::new(std::io::ErrorKind::NotFound, "no such directory"),
        });
    }
    let from = Store::source(options).await?;
    let to = Store::destination(options).await?;
    let mut migrated = Migrated::default();
    let firsts = from.first_parts().await?;
    let total = firsts.len();
    for (done, first) in firsts.into_iter().enumerate() {
        let entries = from
            .adapter()
            .load_range(&StorageKey::new([first.as_str()]))
            .await?;
        for (key, value) in entries {
            migrated.bytes += value.len() as u64;
            migrated.keys += 1;
            to.adapter().save(&key, value).await?;
        }
        if let Ok(document_id) = first.parse::<DocumentId>() {
            if heads(&from, &document_id).await? != heads(&to, &document_id).await? {
                return Err(MigrateError::HeadsDiffer(document_id));
            }
            migrated.documents += 1;
        }
        if (done + 1) % 1000 == 0 {
            info!(done = done + 1, total, keys = migrated.keys, "copying");
        }
    }
    Ok(migrated)
}

/// The heads of `document_id` as `store` holds it (`None`: no change stored).
async fn heads(
    store: &Store,
    document_id: &DocumentId,
) -> Result<Option<Vec<automerge::ChangeHash>>, MigrateError> {
    let chunks = store.adapter().load_document(document_id).await?.chunks;
    let loaded = load_document(document_id, chunks);
    Ok(loaded.document.map(|doc| doc.get_heads()))
}
