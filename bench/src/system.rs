//! The servers under test, each a child process on loopback, and what it costs them.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

use crate::proc_stats;
use crate::BenchError;

/// Which server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum System {
    /// tandem-server with file storage (this binary, `serve-tandem`).
    Tandem,
    /// The same tandem-server with its data directory on tmpfs (`/dev/shm`): the difference to
    /// [`System::Tandem`] is what the disk's filesystem (ext4 and its journal) costs.
    TandemTmpfs,
    /// The same tandem-server requiring a JSON Web Token on every socket (`--auth-jwt-secret`;
    /// clients connect with `?token=`): the difference to [`System::Tandem`] is what checking
    /// tokens and holding grants costs.
    TandemAuth,
    /// The same tandem-server keeping documents in PostgreSQL (`--postgres`; a throwaway
    /// server on loopback, one database per data directory).
    TandemPostgres,
    /// A samod 0.16 server with file storage (this binary, `serve-samod`).
    Samod,
    /// automerge-repo 2.5.6's WebSocket server with NodeFS storage, in Node.
    Js,
}

impl System {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            System::Tandem => "tandem",
            System::TandemTmpfs => "tandem-tmpfs",
            System::TandemAuth => "tandem-auth",
            System::TandemPostgres => "tandem-postgres",
            System::Samod => "samod",
            System::Js => "js",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<System> {
        match name {
            "tandem" => Some(System::Tandem),
            "tandem-tmpfs" => Some(System::TandemTmpfs),
            "tandem-auth" => Some(System::TandemAuth),
            "tandem-postgres" => Some(System::TandemPostgres),
            "samod" => Some(System::Samod),
            "js" => Some(System::Js),
            _ => None,
        }
    }
}

/// Which client drives a scenario.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ClientKind {
    /// tandem's own client repos, in this process.
    Tandem,
    /// automerge-repo 2.5.6 in Node (`tests/js/bench-client.mjs`); S1 and S2 only.
    Js,
}

impl ClientKind {
    /// Its name in tables and JSON.
    pub fn name(self) -> &'static str {
        match self {
            ClientKind::Tandem => "tandem",
            ClientKind::Js => "js",
        }
    }

    /// Parses a name.
    pub fn from_name(name: &str) -> Option<ClientKind> {
        match name {
            "tandem" => Some(ClientKind::Tandem),
            "js" => Some(ClientKind::Js),
            _ => None,
        }
    }
}

/// Where to find what the servers need.
#[derive(Debug, Default)]
pub struct Launcher {
    /// The Node project with the pinned automerge-repo packages (`tests/js`).
    pub js_dir: PathBuf,
    /// The PostgreSQL server of [`System::TandemPostgres`], started when first needed.
    postgres: std::sync::OnceLock<tandem_storage_postgres::TestPostgres>,
    /// The database of each data directory (S5 restarts on S1's).
    databases: std::sync::Mutex<std::collections::BTreeMap<PathBuf, String>>,
}

/// The secret cluster nodes share.
const CLUSTER_SECRET: &str = "tandem-bench-cluster";

/// A running server process.
#[derive(Debug)]
pub struct RunningServer {
    /// Which server.
    pub system: System,
    /// Its WebSocket URL.
    pub url: String,
    /// How long from spawning the process to its "listening" line.
    pub started_in: Duration,
    child: Child,
    pid: u32,
}

impl Launcher {
    /// A launcher for the Node project at `js_dir`.
    pub fn new(js_dir: PathBuf) -> Launcher {
        Launcher {
            js_dir,
            ..Launcher::default()
        }
    }

    /// The PostgreSQL database standing for `data_dir` (made on first use).
    pub async fn database(&self, data_dir: &Path) -> Result<String, BenchError> {
        let known = self
            .databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(data_dir)
            .cloned();
        if let Some(url) = known {
            return Ok(url);
        }
        let postgres = match self.postgres.get() {
            Some(postgres) => postgres,
            None => {
                let started = tandem_storage_postgres::TestPostgres::start()
                    .map_err(|e| BenchError::Spawn(e.to_string()))?;
                self.postgres.get_or_init(|| started)
            }
        };
        let url = postgres
            .database()
            .await
            .map_err(|e| BenchError::Spawn(e.to_string()))?;
        self.databases
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(data_dir.to_owned(), url.clone());
        Ok(url)
    }

    /// Starts a tandem-server node of a cluster on `database`.
    pub async fn start_cluster_node(&self, database: &str) -> Result<RunningServer, BenchError> {
        let me = std::env::current_exe().map_err(|e| BenchError::Spawn(e.to_string()))?;
        let mut command = Command::new(me);
        command
            .arg("serve-tandem")
            .args(["--host", "127.0.0.1", "--port", "0", "--postgres", database])
            .args(["--cluster-advertise", "ws://127.0.0.1:0"])
            .args(["--cluster-secret", CLUSTER_SECRET]);
        spawn(System::TandemPostgres, command).await
    }

    /// Starts `system` on a free loopback port with its storage in `data_dir`.
    pub async fn start(
        &self,
        system: System,
        data_dir: &Path,
    ) -> Result<RunningServer, BenchError> {
        let me = std::env::current_exe().map_err(|e| BenchError::Spawn(e.to_string()))?;
        let command = match system {
            System::TandemPostgres => {
                let database = self.database(data_dir).await?;
                let mut c = Command::new(me);
                c.arg("serve-tandem")
                    .args(["--host", "127.0.0.1", "--port", "0"])
                    .args(["--postgres", &database]);
                c
            }
            System::Tandem | System::TandemTmpfs | System::TandemAuth => {
                let mut c = Command::new(me);
                c.arg("serve-tandem")
                    .args(["--host", "127.0.0.1", "--port", "0"])
                    .arg("--data-dir")
                    .arg(data_dir);
                if system == System::TandemAuth {
                    c.args(["--auth-jwt-secret", AUTH_SECRET]);
                }
                c
            }
            System::Samod => {
                if !cfg!(feature = "samod") {
                    return Err(BenchError::Spawn(
                        "samod is not built in: run with `--features samod`".into(),
                    ));
                }
                let mut c = Command::new(me);
                c.arg("serve-samod").arg("--data-dir").arg(data_dir);
                c
            }
            System::Js => {
                let script = self.js_dir.join("ws-peer.mjs");
                if !self.js_dir.join("node_modules").exists() {
                    return Err(BenchError::Spawn(format!(
                        "no node_modules in {}: run `npm ci` there",
                        self.js_dir.display()
                    )));
                }
                let mut c = Command::new("node");
                c.arg(script).arg("server").arg(data_dir).arg("0");
                c
            }
        };
        spawn(system, command).await
    }
}

/// Spawns a server and waits for its "listening" line.
async fn spawn(system: System, mut command: Command) -> Result<RunningServer, BenchError> {
    {
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let spawned = Instant::now();
        let mut child = command
            .spawn()
            .map_err(|e| BenchError::Spawn(format!("{}: {e}", system.name())))?;
        let pid = child
            .id()
            .ok_or_else(|| BenchError::Spawn("the server exited at once".into()))?;
        let stdout = child
            .stdout
            .take()
            .ok_or_else(|| BenchError::Spawn("no stdout".into()))?;
        let mut lines = BufReader::new(stdout).lines();
        let url = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await? {
                if let Some(url) = listening_url(&line) {
                    return Ok(Some(url));
                }
            }
            Ok::<_, std::io::Error>(None)
        })
        .await
        .map_err(|_| BenchError::Spawn(format!("{} never said where it listens", system.name())))?
        .map_err(|e| BenchError::Spawn(e.to_string()))?
        .ok_or_else(|| BenchError::Spawn(format!("{} exited before listening", system.name())))?;
        let started_in = spawned.elapsed();
        let url = match system {
            System::TandemAuth => format!("{url}/?token={}", bench_token()?),
            _ => url,
        };
        // Keep draining stdout so the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        Ok(RunningServer {
            system,
            url,
            started_in,
            child,
            pid,
        })
    }
}

/// The secret [`System::TandemAuth`] checks tokens with.
const AUTH_SECRET: &str = "tandem-bench";

/// A token granting every document, for a day, signed with [`AUTH_SECRET`].
fn bench_token() -> Result<String, BenchError> {
    let exp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_err(|e| BenchError::Spawn(e.to_string()))?
        .as_secs()
        + 86_400;
    jsonwebtoken::encode(
        &jsonwebtoken::Header::default(),
        &serde_json::json!({ "exp": exp, "docs": ["*"] }),
        &jsonwebtoken::EncodingKey::from_secret(AUTH_SECRET.as_bytes()),
    )
    .map_err(|e| BenchError::Spawn(e.to_string()))
}

/// The URL in a server's "listening" line: `listening on ws://…` (tandem, samod) or the JSON
/// `{"listening":"ws://…",…}` (the JS script).
fn listening_url(line: &str) -> Option<String> {
    if let Some(url) = line.strip_prefix("listening on ") {
        return Some(url.trim().to_owned());
    }
    let json: serde_json::Value = serde_json::from_str(line).ok()?;
    Some(json.get("listening")?.as_str()?.to_owned())
}

impl RunningServer {
    /// CPU time the server has used so far.
    pub fn cpu_time(&self) -> Option<Duration> {
        proc_stats::cpu_time(self.pid)
    }

    /// (current, peak) resident memory in KiB.
    pub fn rss_kib(&self) -> Option<(u64, u64)> {
        proc_stats::rss_kib(self.pid)
    }

    /// SIGTERM, then wait for the exit (each server flushes its storage on SIGTERM).
    pub async fn stop(mut self) -> Result<(), BenchError> {
        // SAFETY: kill(2) on our own child's pid, which we have not waited for yet.
        unsafe {
            libc::kill(self.pid as libc::pid_t, libc::SIGTERM);
        }
        match tokio::time::timeout(Duration::from_secs(120), self.child.wait()).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(BenchError::Spawn(e.to_string())),
            Err(_) => {
                let _ = self.child.kill().await;
                Err(BenchError::Spawn(format!(
                    "{} did not stop within 120 s of SIGTERM",
                    self.system.name()
                )))
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_listening_lines_are_understood() {
        assert_eq!(
            listening_url("listening on ws://127.0.0.1:4000").as_deref(),
            Some("ws://127.0.0.1:4000")
        );
        assert_eq!(
            listening_url(r#"{"listening":"ws://127.0.0.1:5000","peerId":"x"}"#).as_deref(),
            Some("ws://127.0.0.1:5000")
        );
        assert_eq!(listening_url("starting"), None);
    }
}
