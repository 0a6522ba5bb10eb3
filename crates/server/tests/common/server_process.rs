//! The `tandem-server` binary as a process a test starts, stops and kills.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const PATIENCE: Duration = Duration::from_secs(30);

/// A server process, killed if a failing test leaves it running.
pub struct ServerProcess(Option<Child>);

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Some(mut child) = self.0.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl ServerProcess {
    /// Takes charge of a server started by hand (to read its stderr, say).
    pub fn of(child: Child) -> ServerProcess {
        ServerProcess(Some(child))
    }

    /// Its process id, while it runs.
    pub fn id(&self) -> u32 {
        self.0.as_ref().expect("running").id()
    }
}

/// Starts the binary on a free port with `args`; returns the process and its WebSocket URL.
pub fn start_server(args: &[&OsStr]) -> (ServerProcess, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem-server"))
        .args(["--port", "0"])
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("cannot start tandem-server");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        if let Some(Ok(line)) = lines.next() {
            let _ = tx.send(line);
        }
        for _ in lines {} // keep the pipe drained
    });
    let line = rx
        .recv_timeout(PATIENCE)
        .expect("the server never said where it listens");
    let url = line
        .strip_prefix("listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"))
        .to_owned();
    (ServerProcess(Some(child)), url)
}

/// Stops the server with SIGTERM; its exit status.
pub fn terminate(server: ServerProcess) -> std::process::ExitStatus {
    stop_with(server, "TERM")
}

/// Sends `signal` (a name `kill` takes: TERM, HUP) and waits for the process to end.
pub fn stop_with(mut server: ServerProcess, signal: &str) -> std::process::ExitStatus {
    let mut child = server.0.take().expect("running");
    let pid = child.id().to_string();
    let status = Command::new("kill")
        .args([format!("-{signal}").as_str(), &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait());
    });
    match rx.recv_timeout(PATIENCE) {
        Ok(waited) => waited.expect("wait"),
        Err(_) => {
            // Not left running (holding the test's output open) after the test fails.
            let _ = Command::new("kill").args(["-KILL", &pid]).status();
            panic!("the server did not stop after SIG{signal}")
        }
    }
}

/// Kills the server with SIGKILL (`kill -9`).
pub fn kill_hard(server: &mut ServerProcess) {
    if let Some(mut child) = server.0.take() {
        child.kill().expect("SIGKILL");
        let _ = child.wait();
    }
}
