//! `strata serve --http-listen`: where the HTTP listener (metrics,
//! health probes, the status page) listens, on a thread of its own that
//! starts before the database opens, so that `/readyz` answers "not yet"
//! during recovery.

use std::str::FromStr;
use std::sync::Arc;

use anyhow::{Context, Result};
use strata_server::observe::{serve_http, Observer};

use crate::listen::ListenAddr;

/// The default address: the Bigtable emulator's port plus one.
pub const DEFAULT: &str = "127.0.0.1:8087";

/// A `--http-listen` value.
#[derive(Clone, Debug)]
pub enum HttpListen {
    Off,
    Addr(ListenAddr),
}

impl FromStr for HttpListen {
    type Err = String;

    fn from_str(s: &str) -> Result<HttpListen, String> {
        if s == "off" {
            return Ok(HttpListen::Off);
        }
        s.parse::<ListenAddr>()
            .map(HttpListen::Addr)
            .map_err(|e| format!("{e}, or off"))
    }
}

/// Binds the listener: `None` for `off`. The default address, taken by
/// another process (a second server on this machine), only turns the
/// listener off with a warning; an address given on the command line
/// must be free.
pub fn bind(arg: Option<&HttpListen>) -> Result<Option<std::net::TcpListener>> {
    match arg {
        Some(HttpListen::Off) => Ok(None),
        Some(HttpListen::Addr(a)) => a.bind_for("--http-listen").map(Some),
        None => {
            let addr: ListenAddr = DEFAULT.parse().map_err(anyhow::Error::msg)?;
            match addr.bind_for("--http-listen") {
                Ok(l) => Ok(Some(l)),
                Err(e) => {
                    tracing::warn!("no HTTP listener (metrics, health, status page): {e:#}");
                    Ok(None)
                }
            }
        }
    }
}

/// The running HTTP listener.
pub struct HttpServer {
    stop: tokio::sync::oneshot::Sender<()>,
}

/// Starts serving `listener` on a thread of its own.
pub fn start(listener: std::net::TcpListener, observer: Arc<Observer>) -> Result<HttpServer> {
    let addr = listener
        .local_addr()
        .context("reading the HTTP listener's address")?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the HTTP listener's runtime")?;
    std::thread::Builder::new()
        .name("strata-http".to_string())
        .spawn(move || {
            let done = rt.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener)?;
                serve_http(listener, observer, async {
                    let _ = stopped.await;
                })
                .await
                .map_err(std::io::Error::other)
            });
            if let Err(e) = done {
                tracing::error!("the HTTP listener stopped: {e}");
            }
        })
        .context("starting the HTTP listener's thread")?;
    tracing::info!(
        "metrics on http://{}/metrics, status page on http://{}/",
        crate::listen::client_addr(addr),
        crate::listen::client_addr(addr)
    );
    Ok(HttpServer { stop })
}

impl HttpServer {
    /// Stops accepting; requests in progress finish on the listener's
    /// thread unless the process exits first.
    pub fn stop(self) {
        let _ = self.stop.send(());
    }
}
