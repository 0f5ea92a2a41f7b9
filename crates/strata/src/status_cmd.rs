//! `strata status`: the status page's facts in the terminal. Reads
//! `/status.json` from a running server's HTTP listener (plain HTTP/1.0,
//! one request; docs/observability.md) and prints it as text.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};
use clap::Args;
use strata_server::observe::{render_text, Status};

/// How long to wait for the server, connecting and answering.
const TIMEOUT: Duration = Duration::from_secs(30);
/// The largest answer read (a status of many tables and tablets).
const RESPONSE_BYTES_MAX: u64 = 256 << 20;

#[derive(Args, Debug)]
pub struct StatusArgs {
    /// The server's HTTP listener (`strata serve --http-listen`).
    #[arg(long, default_value = "127.0.0.1:8087", env = "STRATA_HTTP")]
    http: String,
    /// Print every tablet of every table too.
    #[arg(long)]
    tablets: bool,
    /// Print the JSON the server sent instead of text.
    #[arg(long)]
    json: bool,
}

pub fn run(args: StatusArgs) -> Result<()> {
    let body = get(&args.http, "/status.json")?;
    if args.json {
        println!("{}", body.trim_end());
        return Ok(());
    }
    let status: Status = serde_json::from_str(&body)
        .with_context(|| format!("{} sent a status this strata cannot read", args.http))?;
    print!("{}", render_text(&status, args.tablets));
    Ok(())
}

/// The body of `GET path` from `addr`; an error unless the status is 200.
fn get(addr: &str, path: &str) -> Result<String> {
    let sock = addr
        .to_socket_addrs()
        .with_context(|| format!("resolving {addr}"))?
        .next()
        .ok_or_else(|| anyhow!("{addr} resolves to no address"))?;
    let mut s = TcpStream::connect_timeout(&sock, TIMEOUT).with_context(|| {
        format!("connecting to {addr} (is a server running with --http-listen {addr}?)")
    })?;
    s.set_read_timeout(Some(TIMEOUT))?;
    s.set_write_timeout(Some(TIMEOUT))?;
    // HTTP/1.0: the server closes the connection after the body, which is
    // never chunked.
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\n\r\n"
    )
    .with_context(|| format!("asking {addr} for {path}"))?;
    let mut raw = Vec::new();
    s.take(RESPONSE_BYTES_MAX)
        .read_to_end(&mut raw)
        .with_context(|| format!("reading {path} from {addr}"))?;
    let text = String::from_utf8(raw).with_context(|| format!("{addr} sent a non-UTF-8 answer"))?;
    let (head, body) = text
        .split_once("\r\n\r\n")
        .ok_or_else(|| anyhow!("{addr} sent no HTTP answer"))?;
    let status_line = head.lines().next().unwrap_or_default();
    let code = status_line.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        bail!("{addr}{path}: {status_line}: {}", body.trim());
    }
    Ok(body.to_string())
}
