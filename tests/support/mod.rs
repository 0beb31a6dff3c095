//! What the throwaway servers of the tests (`tests/pg`, `tests/orthanc`) share: a free loopback port,
//! and a watchdog that cleans up after the test binary, however it ends.

#![allow(dead_code)]

use std::net::TcpListener;
use std::path::Path;
use std::process::{Command, Stdio};

/// A free port on 127.0.0.1.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A process that outlives this test binary by at most a few seconds: it polls this process and, when it
/// has gone (or after 3 hours), runs `stop` (a shell command) and removes `dir`.
pub fn watchdog(stop: &str, dir: &Path) {
    let script = format!(
        "n=0; while kill -0 {pid} 2>/dev/null && [ $n -lt 10800 ]; do sleep 1; n=$((n+1)); done; \
         {stop} >/dev/null 2>&1; rm -rf '{dir}'",
        pid = std::process::id(),
        dir = dir.display()
    );
    // Never waited for: it must outlive this process (it is reparented when the tests end).
    #[allow(clippy::zombie_processes)]
    Command::new("sh")
        .args(["-c", &script])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("watchdog");
}
