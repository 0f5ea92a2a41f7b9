//! Membership: the servers directory (Chubby's in Bigtable).
//!
//! Each server holds one key, `/<cluster>/servers/<id>`, whose value is its
//! advertised address, attached to a lease it keeps alive. The key exists
//! exactly while etcd holds the lease: a server that stops renewing (it
//! crashed, froze, or lost etcd) disappears from the directory after its
//! TTL, and the master, watching the prefix, sees a delete. The server
//! itself learns of the loss from its [`Lease`] the moment a renewal is
//! refused or its TTL passes without one, and must stop serving then.
//!
//! A key's `create_revision` tells incarnations of one server id apart.

use crate::client::{Etcd, KeyValue};
use crate::error::{Error, Result};
use crate::lease::{Lease, LeaseLoss};
use crate::txn::{Cmp, Compare, Op, Txn};
use crate::watch::{EventKind, WatchOptions, WatchStream};
use std::time::Duration;

/// The key prefix of a cluster's servers: `/<cluster>/servers/`.
pub fn servers_prefix(cluster: &str) -> String {
    format!("/{cluster}/servers/")
}

/// One registered server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerInfo {
    pub id: String,
    /// Where other servers reach it (`host:port`).
    pub addr: String,
    /// Its lease.
    pub lease: i64,
    /// The revision its key was created at: its incarnation.
    pub create_revision: i64,
}

impl ServerInfo {
    fn from_kv(prefix: &str, kv: &KeyValue) -> Option<ServerInfo> {
        let id = kv.key.strip_prefix(prefix.as_bytes())?;
        Some(ServerInfo {
            id: String::from_utf8_lossy(id).into_owned(),
            addr: String::from_utf8_lossy(&kv.value).into_owned(),
            lease: kv.lease,
            create_revision: kv.create_revision,
        })
    }
}

/// This server's registration: its key and the lease that keeps it.
/// Dropping it stops the renewals (the key goes after the TTL); call
/// [`Registration::deregister`] to leave at once.
pub struct Registration {
    info: ServerInfo,
    key: String,
    lease: Lease,
}

impl Registration {
    /// The registered record (with the key's create_revision).
    pub fn info(&self) -> &ServerInfo {
        &self.info
    }

    /// The key, `/<cluster>/servers/<id>`.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The lease the key is attached to (to attach other keys, or to
    /// campaign for master with).
    pub fn lease(&self) -> &Lease {
        &self.lease
    }

    /// Whether the registration still holds.
    pub fn is_alive(&self) -> bool {
        self.lease.is_alive()
    }

    /// Waits until the registration is lost, and says why.
    pub async fn lost(&self) -> LeaseLoss {
        self.lease.lost().await
    }

    /// Leaves the cluster: revokes the lease, which deletes the key.
    pub async fn deregister(self) -> Result<()> {
        self.lease.revoke().await
    }
}

/// Registers `server_id` at `advertise_addr` in `cluster`, with a lease of
/// `ttl` kept alive. Fails with [`Error::AlreadyRegistered`] while another
/// lease holds the id (another process, or this server's previous
/// incarnation until its lease expires).
pub async fn register(
    etcd: &Etcd,
    cluster: &str,
    server_id: &str,
    advertise_addr: &str,
    ttl: Duration,
) -> Result<Registration> {
    let lease = Lease::grant(etcd, ttl).await?;
    match register_with(etcd, cluster, server_id, advertise_addr, &lease).await {
        Ok((info, key)) => Ok(Registration { info, key, lease }),
        Err(e) => {
            let _ = lease.revoke().await;
            Err(e)
        }
    }
}

/// Creates the server's key on `lease` if absent.
async fn register_with(
    etcd: &Etcd,
    cluster: &str,
    server_id: &str,
    addr: &str,
    lease: &Lease,
) -> Result<(ServerInfo, String)> {
    if server_id.is_empty() || server_id.contains('/') {
        return Err(Error::InvalidRequest(format!(
            "server id {server_id:?} must be non-empty and contain no '/'"
        )));
    }
    let key = format!("{}{server_id}", servers_prefix(cluster));
    let txn = Txn::new()
        .when([Compare::create_revision(key.as_bytes(), Cmp::Equal, 0)])
        .and_then([Op::put_with_lease(
            key.as_bytes(),
            addr.as_bytes(),
            Some(lease.id()),
        )])
        .or_else([Op::get(key.as_bytes())]);
    let resp = etcd.txn(txn).await?;
    if !resp.succeeded {
        let holder = resp
            .responses
            .first()
            .and_then(|r| r.kvs().first())
            .map_or(0, |kv| kv.lease);
        return Err(Error::AlreadyRegistered {
            id: server_id.to_string(),
            lease: holder,
        });
    }
    let info = ServerInfo {
        id: server_id.to_string(),
        addr: addr.to_string(),
        lease: lease.id().0,
        create_revision: resp.revision,
    };
    Ok((info, key))
}

/// The registered servers, in id order, and the revision they were read at
/// (watch from `revision + 1` to follow changes without a gap).
pub async fn servers(etcd: &Etcd, cluster: &str) -> Result<(Vec<ServerInfo>, i64)> {
    let prefix = servers_prefix(cluster);
    let listing = etcd.get_prefix(prefix.as_bytes()).await?;
    let servers = listing
        .kvs
        .iter()
        .filter_map(|kv| ServerInfo::from_kv(&prefix, kv))
        .collect();
    Ok((servers, listing.revision))
}

/// A change in the servers directory.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// A server registered (or re-registered: a new incarnation).
    Joined(ServerInfo),
    /// A server's key was deleted: it deregistered or its lease expired.
    Left { id: String, revision: i64 },
}

/// Follows the servers directory from `start_revision` (0: from now).
pub struct ServerWatch {
    prefix: String,
    stream: WatchStream,
}

impl ServerWatch {
    /// The next change; `None` once the watch has ended.
    pub async fn next(&mut self) -> Option<Result<ServerEvent>> {
        loop {
            let event = match self.stream.next().await? {
                Ok(event) => event,
                Err(e) => return Some(Err(e)),
            };
            let Some(info) = ServerInfo::from_kv(&self.prefix, &event.kv) else {
                continue;
            };
            return Some(Ok(match event.kind {
                EventKind::Put => ServerEvent::Joined(info),
                EventKind::Delete => ServerEvent::Left {
                    id: info.id,
                    revision: event.kv.mod_revision,
                },
            }));
        }
    }
}

/// Watches `cluster`'s servers directory from `start_revision` (0: now).
pub fn watch_servers(etcd: &Etcd, cluster: &str, start_revision: i64) -> ServerWatch {
    let prefix = servers_prefix(cluster);
    let opts = WatchOptions {
        start_revision,
        prev_kv: false,
    };
    let stream = etcd.watch_prefix(prefix.as_bytes(), opts);
    ServerWatch { prefix, stream }
}
