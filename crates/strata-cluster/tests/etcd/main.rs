//! strata-cluster against a real etcd: every test starts its own server
//! (`strata_cluster::testkit`), and fails if there is no etcd binary.

mod balance;
mod election;
mod kv;
mod lease;
mod master;
mod membership;
mod merges;
mod schema;
mod splits;
mod tablets;
mod watch;

use std::future::Future;
use std::time::Duration;
use strata_cluster::master::Collector;
use tokio::time::Instant;

/// Polls `check` every 50 ms until it yields a value; panics after
/// `within`, naming `what`. Bounds are generous: they catch "never", not
/// "slow".
pub async fn eventually<T, F, Fut>(within: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Awaits `fut`, panicking after `within`.
pub async fn within<T>(within: Duration, what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(within, fut).await {
        Ok(v) => v,
        Err(_) => panic!("{what}: not within {within:?}"),
    }
}

/// Records the tablets it deletes.
#[derive(Default)]
pub struct Recorder(pub std::sync::Mutex<Vec<u64>>);

impl Collector for Recorder {
    fn delete_tablet(
        &self,
        id: u64,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), String>> + Send + '_>> {
        self.0.lock().unwrap().push(id);
        Box::pin(async { Ok(()) })
    }
}

impl Recorder {
    /// Waits until every tablet of `ids` has been deleted.
    pub async fn collected(&self, ids: &[u64]) {
        eventually(Duration::from_secs(15), "the copies collected", || async {
            let got = self.0.lock().unwrap().clone();
            ids.iter().all(|id| got.contains(id)).then_some(())
        })
        .await
    }
}
