//! A throwaway PostgreSQL server for tests: `initdb` in a temporary directory, `postgres` on
//! 127.0.0.1 with a port of its own, stopped and removed when dropped. With
//! `TANDEM_TEST_POSTGRES_URL` set, that server is used instead.
//!
//! PostgreSQL refuses to run as root; as root, the server runs as the `postgres` user.
//!
//! A watchdog process stops the server when the test process ends, however it ends: it waits
//! on a pipe only the test process holds open. So a test binary may keep one server in a
//! `static` (which is never dropped), and a test killed half way leaves no server running.

use std::net::TcpListener;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio_postgres::NoTls;

/// Names the environment variable that points tests at an existing server.
pub const URL_VARIABLE: &str = "TANDEM_TEST_POSTGRES_URL";

const HOW_TO_GET_IT: &str = "the PostgreSQL tests need PostgreSQL's server programs (initdb, \
     pg_ctl): install them (Debian: `apt-get install -y postgresql`, or run `scripts/test`, which \
     does), or set TANDEM_TEST_POSTGRES_URL to a server where this user may create databases";

/// The test server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TestPostgresError {
    /// No PostgreSQL programs on this machine, and no URL given.
    #[error("{HOW_TO_GET_IT}")]
    NotInstalled,
    /// A PostgreSQL program failed.
    #[error("{program} failed: {output}")]
    Failed {
        /// The program.
        program: String,
        /// What it wrote.
        output: String,
    },
    /// Running a program, or preparing its directory, failed.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The server refused a statement.
    #[error("PostgreSQL: {}", crate::error::describe(.0))]
    Query(#[from] tokio_postgres::Error),
    /// The server is not ours to stop (it came from `TANDEM_TEST_POSTGRES_URL`): a test that
    /// stops it starts its own ([`TestPostgres::start_own`]).
    #[error("stopping the server needs one of the tests' own, not TANDEM_TEST_POSTGRES_URL's")]
    NotOurs,
}

/// A PostgreSQL server for one test. Each [`TestPostgres::database`] is a new, empty database
/// on it.
#[derive(Debug)]
pub struct TestPostgres {
    server: Server,
    databases: AtomicUsize,
}

#[derive(Debug)]
enum Server {
    Own(OwnServer),
    Given(String),
}

#[derive(Debug)]
struct OwnServer {
    bin: PathBuf,
    data: tempfile::TempDir,
    port: u16,
    /// The user the server runs as, when the tests run as root.
    run_as: Option<(u32, u32)>,
    /// Stops the server once its stdin closes.
    watchdog: Option<(std::process::Child, std::process::ChildStdin)>,
}

impl TestPostgres {
    /// Starts a server of the test's own, whatever `TANDEM_TEST_POSTGRES_URL` says: for tests
    /// that crash and restart it.
    pub fn start_own() -> Result<TestPostgres, TestPostgresError> {
        Ok(TestPostgres {
            server: Server::Own(OwnServer::start()?),
            databases: AtomicUsize::new(0),
        })
    }

    /// Starts a server (or takes `TANDEM_TEST_POSTGRES_URL`'s).
    pub fn start() -> Result<TestPostgres, TestPostgresError> {
        let server = match std::env::var(URL_VARIABLE) {
            Ok(url) if !url.is_empty() => Server::Given(url),
            _ => Server::Own(OwnServer::start()?),
        };
        Ok(TestPostgres {
            server,
            databases: AtomicUsize::new(0),
        })
    }

    /// The URL of a new, empty database on the server.
    pub async fn database(&self) -> Result<String, TestPostgresError> {
        let n = self.databases.fetch_add(1, Ordering::Relaxed);
        let name = format!("tandem_test_{}_{n}", uuid::Uuid::new_v4().simple());
        let (client, connection) = tokio_postgres::connect(&self.admin_url(), NoTls).await?;
        let connection = tokio::spawn(connection);
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .await?;
        drop(client);
        let _ = connection.await;
        Ok(self.url_of(&name))
    }

    /// How many tables the database at `url` holds in its `public` schema: for a test's check
    /// that something left a database as it was.
    pub async fn tables_in(url: &str) -> Result<i64, TestPostgresError> {
        let (client, connection) = tokio_postgres::connect(url, NoTls).await?;
        let connection = tokio::spawn(connection);
        let tables = client
            .query_one(
                "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'",
                &[],
            )
            .await?
            .get(0);
        drop(client);
        let _ = connection.await;
        Ok(tables)
    }

    /// Stops the server as a crash would (`immediate`: no checkpoint; the next start replays
    /// the log), keeping its data and port.
    pub fn crash(&self) -> Result<(), TestPostgresError> {
        self.own()?.stop("immediate")
    }

    /// Starts the server again after [`TestPostgres::crash`].
    pub fn restart(&self) -> Result<(), TestPostgresError> {
        self.own()?.run()
    }

    fn own(&self) -> Result<&OwnServer, TestPostgresError> {
        match &self.server {
            Server::Own(own) => Ok(own),
            Server::Given(_) => Err(TestPostgresError::NotOurs),
        }
    }

    fn admin_url(&self) -> String {
        match &self.server {
            Server::Own(_) => self.url_of("postgres"),
            Server::Given(url) => url.clone(),
        }
    }

    /// The URL of `database` on this server (whether or not it exists).
    pub fn url_of(&self, database: &str) -> String {
        match &self.server {
            Server::Own(own) => format!("postgres://tandem@127.0.0.1:{}/{database}", own.port),
            Server::Given(url) => with_database(url, database),
        }
    }
}

/// `url` (`postgres://…/name?…`) naming `database` instead.
fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let authority = base.find("://").map_or(0, |i| i + 3);
    let server = match base[authority..].find('/') {
        Some(slash) => &base[..authority + slash],
        None => base,
    };
    match query {
        "" => format!("{server}/{database}"),
        query => format!("{server}/{database}?{query}"),
    }
}

impl Drop for TestPostgres {
    fn drop(&mut self) {
        if let Server::Own(own) = &mut self.server {
            // Closing its pipe makes the watchdog stop the server; wait for that before the
            // data directory goes.
            if let Some((mut watchdog, pipe)) = own.watchdog.take() {
                drop(pipe);
                let _ = watchdog.wait();
            }
        }
    }
}

impl OwnServer {
    fn start() -> Result<OwnServer, TestPostgresError> {
        let bin = find_bin().ok_or(TestPostgresError::NotInstalled)?;
        let run_as = if is_root()? {
            Some((id_of("-u")?, id_of("-g")?))
        } else {
            None
        };
        let data = tempfile::Builder::new().prefix("tandem-pg-").tempdir()?;
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(data.path(), Some(uid), Some(gid))?;
        }
        let mut server = OwnServer {
            bin,
            data,
            port: 0,
            run_as,
            watchdog: None,
        };
        server.program(
            "initdb",
            &[
                "--auth=trust",
                "--username=tandem",
                "--no-sync",
                "--encoding=UTF8",
                "--locale=C",
                "-D",
            ],
            Some(&server.cluster()),
        )?;
        // A port nobody holds now; another process could take it before PostgreSQL binds, so a
        // failed start tries another.
        let mut last = None;
        for _ in 0..3 {
            server.port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
            match server.run() {
                Ok(()) => {
                    server.watchdog = Some(server.watchdog()?);
                    return Ok(server);
                }
                Err(error) => last = Some(error),
            }
        }
        Err(last.unwrap_or(TestPostgresError::NotInstalled))
    }

    fn cluster(&self) -> PathBuf {
        self.data.path().join("cluster")
    }

    fn run(&self) -> Result<(), TestPostgresError> {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {} -c max_connections=200",
            self.port,
            self.data.path().display()
        );
        let log = self.data.path().join("server.log");
        self.program(
            "pg_ctl",
            &[
                "start",
                "--wait",
                "--timeout=60",
                "-o",
                &options,
                "-l",
                &log.display().to_string(),
                "-D",
            ],
            Some(&self.cluster()),
        )
        .map_err(|error| match std::fs::read_to_string(&log) {
            Ok(text) => TestPostgresError::Failed {
                program: "postgres".into(),
                output: format!("{error}\n{text}"),
            },
            Err(_) => error,
        })
    }

    /// A process that stops the server (`pg_ctl stop -m fast`) once its stdin closes.
    fn watchdog(
        &self,
    ) -> Result<(std::process::Child, std::process::ChildStdin), TestPostgresError> {
        let mut command = Command::new("sh");
        command
            .args([
                "-c",
                r#"read _ignored; exec "$0" stop --wait -m fast -D "$1" >/dev/null 2>&1"#,
            ])
            .arg(self.bin.join("pg_ctl"))
            .arg(self.cluster())
            .stdin(std::process::Stdio::piped())
            .current_dir(self.data.path());
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid);
        }
        let mut child = command.spawn()?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| TestPostgresError::Failed {
                program: "sh".into(),
                output: "no stdin".into(),
            })?;
        Ok((child, pipe))
    }

    fn stop(&self, mode: &str) -> Result<(), TestPostgresError> {
        self.program(
            "pg_ctl",
            &["stop", "--wait", "-m", mode, "-D"],
            Some(&self.cluster()),
        )
    }

    /// Runs one of PostgreSQL's programs, as the server's user, `args` then `dir`.
    fn program(
        &self,
        name: &str,
        args: &[&str],
        dir: Option<&Path>,
    ) -> Result<(), TestPostgresError> {
        let mut command = Command::new(self.bin.join(name));
        command.args(args);
        if let Some(dir) = dir {
            command.arg(dir);
        }
        if let Some((uid, gid)) = self.run_as {
            command.uid(uid).gid(gid).env("HOME", self.data.path());
        }
        command.current_dir(self.data.path());
        let Output {
            status,
            stdout,
            stderr,
        } = command.output()?;
        if status.success() {
            return Ok(());
        }
        Err(TestPostgresError::Failed {
            program: name.to_owned(),
            output: format!(
                "{status}\n{}{}",
                String::from_utf8_lossy(&stdout),
                String::from_utf8_lossy(&stderr)
            ),
        })
    }
}

/// PostgreSQL's programs: `pg_config --bindir`, Debian's versioned directories, or `PATH`.
fn find_bin() -> Option<PathBuf> {
    let has_both = |dir: &Path| dir.join("initdb").is_file() && dir.join("pg_ctl").is_file();
    if let Ok(output) = Command::new("pg_config").arg("--bindir").output() {
        let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
        if output.status.success() && has_both(&dir) {
            return Some(dir);
        }
    }
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|entry| entry.path().join("bin"))
        .filter(|dir| has_both(dir))
        .collect();
    // The newest version.
    debian.sort_by_key(|dir| {
        dir.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
    });
    if let Some(dir) = debian.pop() {
        return Some(dir);
    }
    std::env::var_os("PATH").and_then(|path| std::env::split_paths(&path).find(|dir| has_both(dir)))
}

fn is_root() -> Result<bool, TestPostgresError> {
    let output = Command::new("id").arg("-u").output()?;
    Ok(String::from_utf8_lossy(&output.stdout).trim() == "0")
}

/// The `postgres` user's uid (`-u`) or gid (`-g`).
fn id_of(which: &str) -> Result<u32, TestPostgresError> {
    let output = Command::new("id").args([which, "postgres"]).output()?;
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .map_err(|_| TestPostgresError::Failed {
            program: "id".into(),
            output: format!(
                "running as root, the server needs an unprivileged `postgres` user: {}",
                String::from_utf8_lossy(&output.stderr)
            ),
        })
}
