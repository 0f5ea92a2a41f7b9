//! Helpers for tests that run the `strata` binary: a free port, and a
//! channel to a `strata serve` that is still starting.
#![allow(dead_code)]

use std::time::{Duration, Instant};

/// A port nothing listens on at the moment of asking.
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr").port()
}

/// Connects to the server on `port`, retrying for up to a minute while it
/// starts.
pub async fn connect(port: u16) -> tonic::transport::Channel {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tonic::transport::Endpoint::from_shared(format!("http://127.0.0.1:{port}"))
            .expect("endpoint")
            .connect()
            .await
        {
            Ok(c) => return c,
            Err(e) if Instant::now() > deadline => panic!("server did not come up: {e}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
}
