//! The cluster's nodes, as the database knows them: each node says it is alive (a heartbeat)
//! and learns, in the same round trip, which other nodes are.
//!
//! Liveness is judged by the database's clock alone, so the nodes' clocks need not agree.

use std::time::Duration;

use deadpool_postgres::Pool;

use crate::{PostgresError, PostgresStorage};

/// A node that recently said it was alive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveNode {
    /// Its peer id.
    pub id: String,
    /// Where other nodes reach it (`ws://host:port`).
    pub advertise: String,
}

/// One node's entry in the registry.
///
/// ```no_run
/// # async fn example(storage: tandem_storage_postgres::PostgresStorage) -> Result<(), tandem_storage_postgres::PostgresError> {
/// use std::time::Duration;
/// use tandem_storage_postgres::NodeRegistry;
///
/// let registry = NodeRegistry::new(&storage, "node-a", "ws://10.0.0.1:3030", Duration::from_secs(5));
/// for node in registry.heartbeat().await? {
///     println!("{} at {}", node.id, node.advertise);
/// }
/// registry.leave().await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct NodeRegistry {
    pool: Pool,
    id: String,
    advertise: String,
    alive_within: Duration,
}

/// Entries silent this long are removed by whichever node beats next (a dead node's entry
/// would otherwise stay forever).
const FORGET_AFTER: Duration = Duration::from_secs(3600);

impl NodeRegistry {
    /// The entry of node `id`, reachable at `advertise`, in `storage`'s database; a node is
    /// alive if it beat within `alive_within`.
    pub fn new(
        storage: &PostgresStorage,
        id: impl Into<String>,
        advertise: impl Into<String>,
        alive_within: Duration,
    ) -> NodeRegistry {
        NodeRegistry {
            pool: storage.control_pool().clone(),
            id: id.into(),
            advertise: advertise.into(),
            alive_within,
        }
    }

    /// Says this node is alive; returns the other nodes that are.
    pub async fn heartbeat(&self) -> Result<Vec<LiveNode>, PostgresError> {
        let client = self.pool.get().await?;
        let beat = client
            .prepare_cached(
                "INSERT INTO tandem_nodes (id, advertise, last_seen) VALUES ($1, $2, now())
                 ON CONFLICT (id) DO UPDATE SET advertise = EXCLUDED.advertise, last_seen = now()",
            )
            .await?;
        client.execute(&beat, &[&self.id, &self.advertise]).await?;
        let live = client
            .prepare_cached(
                "SELECT id, advertise FROM tandem_nodes
                 WHERE id <> $1 AND last_seen > now() - make_interval(secs => $2)
                 ORDER BY id",
            )
            .await?;
        let rows = client
            .query(&live, &[&self.id, &self.alive_within.as_secs_f64()])
            .await?;
        let forget = client
            .prepare_cached(
                "DELETE FROM tandem_nodes WHERE last_seen < now() - make_interval(secs => $1)",
            )
            .await?;
        client
            .execute(&forget, &[&FORGET_AFTER.as_secs_f64()])
            .await?;
        Ok(rows
            .into_iter()
            .map(|row| LiveNode {
                id: row.get(0),
                advertise: row.get(1),
            })
            .collect())
    }

    /// Removes this node's entry (a clean shutdown: the others drop it at once).
    pub async fn leave(&self) -> Result<(), PostgresError> {
        let client = self.pool.get().await?;
        client
            .execute("DELETE FROM tandem_nodes WHERE id = $1", &[&self.id])
            .await?;
        Ok(())
    }
}
