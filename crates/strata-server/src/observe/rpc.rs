//! Per-RPC metrics: a tower layer around every gRPC service counts the
//! requests each RPC starts and ends (by gRPC status code) and times
//! them, with the metric names and labels of go-grpc-prometheus
//! (`grpc_server_started_total`, `grpc_server_handled_total`,
//! `grpc_server_handling_seconds`), so dashboards written for those work.
//!
//! An RPC ends when its response body does: at its trailers (the status
//! of a streaming or successful response), at the end of a trailers-only
//! response (an error, its status in the headers), or when the body is
//! dropped before either, which is the client going away (CANCELLED).
//! The time is from the request's arrival to that end, so a streamed
//! read is timed whole.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use parking_lot::RwLock;
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::MetricType;
use rustc_hash::FxHashMap;
use tonic::codegen::http;

use super::engine_metrics::NoLabels;

/// Distinct RPC paths that get labels of their own; past this many (a
/// client calling made-up methods), the rest count as `unknown`.
const PATHS_MAX: usize = 512;

/// gRPC status codes by number, named as go-grpc-prometheus names them.
const CODE_NAMES: [&str; 17] = [
    "OK",
    "Canceled",
    "Unknown",
    "InvalidArgument",
    "DeadlineExceeded",
    "NotFound",
    "AlreadyExists",
    "PermissionDenied",
    "ResourceExhausted",
    "FailedPrecondition",
    "Aborted",
    "OutOfRange",
    "Unimplemented",
    "Internal",
    "Unavailable",
    "DataLoss",
    "Unauthenticated",
];
const CODE_CANCELLED: usize = 1;
const CODE_UNKNOWN: usize = 2;

/// One RPC path's counters.
#[derive(Debug)]
pub(super) struct PathMetrics {
    pub(super) service: String,
    pub(super) method: String,
    pub(super) started: Counter,
    handled: [Counter; CODE_NAMES.len()],
    /// Microseconds from arrival to status (lock-free buckets).
    micros: strata_engine::histogram::Histogram,
    /// Where a slow request of this path is kept (one list for all).
    recent_slow: Arc<RecentSlow>,
}

impl PathMetrics {
    fn new(service: &str, method: &str, recent_slow: Arc<RecentSlow>) -> PathMetrics {
        PathMetrics {
            recent_slow,
            service: service.to_string(),
            method: method.to_string(),
            started: Counter::default(),
            handled: Default::default(),
            // 100 µs to 13 s, doubling.
            micros: Default::default(),
        }
    }

    pub(super) fn ok_count(&self) -> u64 {
        self.handled[0].get()
    }

    /// The codes other than OK that ended RPCs, with their counts.
    pub(super) fn error_counts(&self) -> Vec<(&'static str, u64)> {
        CODE_NAMES
            .iter()
            .zip(&self.handled)
            .skip(1)
            .map(|(name, c)| (*name, c.get()))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    fn finish(&self, code: usize, p: &Pending) {
        let code = code.min(CODE_NAMES.len() - 1);
        let elapsed = p.started.elapsed();
        if p.counting {
            self.handled[code].inc();
            self.micros
                .record(u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX));
        }
        if p.slow.is_some_and(|s| elapsed >= s) {
            let (table, rows) = p.note.as_ref().map_or((None, None), RequestNote::get);
            tracing::warn!(
                rpc = %format_args!("{}/{}", self.service, self.method),
                code = %CODE_NAMES[code],
                table = %table.as_deref().unwrap_or("-"),
                rows = %rows.map_or_else(|| "-".to_string(), |n| n.to_string()),
                "slow request: {elapsed:.1?}"
            );
            self.recent_slow.push(SlowRequest {
                at_unix_secs: std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_secs()),
                rpc: format!("{}/{}", self.service, self.method),
                code: CODE_NAMES[code].to_string(),
                table,
                rows,
                micros: elapsed.as_micros() as u64,
            });
        }
    }
}

/// Slow requests the status page lists, newest last.
const SLOW_KEPT_MAX: usize = 32;

/// A request that took at least the slow-request threshold.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct SlowRequest {
    /// When it ended, in seconds since the Unix epoch.
    pub at_unix_secs: u64,
    /// `package.Service/Method`.
    pub rpc: String,
    /// Its gRPC status, as go-grpc-prometheus names it.
    pub code: String,
    pub table: Option<String>,
    pub rows: Option<u64>,
    pub micros: u64,
}

/// The last `SLOW_KEPT_MAX` slow requests.
#[derive(Debug, Default)]
pub struct RecentSlow(parking_lot::Mutex<std::collections::VecDeque<SlowRequest>>);

impl RecentSlow {
    fn push(&self, r: SlowRequest) {
        let mut q = self.0.lock();
        if q.len() == SLOW_KEPT_MAX {
            q.pop_front();
        }
        q.push_back(r);
    }

    pub fn list(&self) -> Vec<SlowRequest> {
        self.0.lock().iter().cloned().collect()
    }
}

/// The smallest and largest finite bucket bounds of the RPC times, as
/// powers of two of microseconds: 128 µs and 2^24 µs (16.8 s).
const RPC_BUCKET_FIRST: usize = 7;
const RPC_BUCKET_LAST: usize = 24;

/// Per-bucket counts (not cumulative) with bounds in seconds: the first
/// bucket takes every faster RPC, +Inf every slower one.
fn seconds_buckets(h: &strata_engine::histogram::HistogramSnapshot) -> Vec<(f64, u64)> {
    let mut out = Vec::with_capacity(RPC_BUCKET_LAST - RPC_BUCKET_FIRST + 2);
    out.push((
        (1u64 << RPC_BUCKET_FIRST) as f64 * 1e-6,
        h.counts[..=RPC_BUCKET_FIRST].iter().sum(),
    ));
    for i in RPC_BUCKET_FIRST + 1..=RPC_BUCKET_LAST {
        out.push(((1u64 << i) as f64 * 1e-6, h.counts[i]));
    }
    out.push((f64::INFINITY, h.counts[RPC_BUCKET_LAST + 1..].iter().sum()));
    out
}

/// What a handler tells the layer about its request, for the slow-request
/// log: its table and the rows it read or wrote. In the request's
/// extensions when the log is on.
#[derive(Clone, Debug, Default)]
pub struct RequestNote(Arc<parking_lot::Mutex<(Option<String>, Option<u64>)>>);

impl RequestNote {
    /// The note of `req`, if the slow-request log is on.
    pub fn of<T>(req: &tonic::Request<T>) -> Option<RequestNote> {
        req.extensions().get::<RequestNote>().cloned()
    }

    pub fn table(&self, name: &str) {
        self.0.lock().0 = Some(name.to_string());
    }

    /// Adds `n` rows read or written.
    pub fn rows(&self, n: u64) {
        let mut g = self.0.lock();
        g.1 = Some(g.1.unwrap_or(0) + n);
    }

    fn get(&self) -> (Option<String>, Option<u64>) {
        self.0.lock().clone()
    }
}

/// Every RPC path's counters, shared by the layers of every serving
/// thread and read by a scrape. Looked up on every request: FxHash, not
/// SipHash (the keys are paths clients choose, but there are at most
/// `PATHS_MAX` of them).
#[derive(Debug, Default)]
pub struct RpcMetrics {
    paths: RwLock<FxHashMap<String, Arc<PathMetrics>>>,
    unknown: std::sync::OnceLock<Arc<PathMetrics>>,
    pub(super) recent_slow: Arc<RecentSlow>,
}

impl RpcMetrics {
    /// The counters of `path` (`/package.Service/Method`).
    fn path(&self, path: &str) -> Arc<PathMetrics> {
        if let Some(m) = self.paths.read().get(path) {
            return m.clone();
        }
        let mut paths = self.paths.write();
        if let Some(m) = paths.get(path) {
            return m.clone();
        }
        let split = path.trim_start_matches('/').split_once('/');
        match split {
            Some((service, method)) if paths.len() < PATHS_MAX => {
                let m = Arc::new(PathMetrics::new(service, method, self.recent_slow.clone()));
                paths.insert(path.to_string(), m.clone());
                m
            }
            _ => self
                .unknown
                .get_or_init(|| {
                    Arc::new(PathMetrics::new(
                        "unknown",
                        "unknown",
                        self.recent_slow.clone(),
                    ))
                })
                .clone(),
        }
    }

    /// Every path's counters, sorted by path (a stable exposition).
    pub(super) fn all(&self) -> Vec<Arc<PathMetrics>> {
        let paths = self.paths.read();
        let mut v: Vec<(&String, &Arc<PathMetrics>)> = paths.iter().collect();
        v.sort_by(|a, b| a.0.cmp(b.0));
        let mut out: Vec<Arc<PathMetrics>> = v.into_iter().map(|(_, m)| m.clone()).collect();
        out.extend(self.unknown.get().cloned());
        out
    }
}

/// Encodes [`RpcMetrics`] at each scrape.
#[derive(Debug)]
pub(crate) struct RpcCollector(pub(crate) Arc<RpcMetrics>);

impl Collector for RpcCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let all = self.0.all();
        {
            let mut e = encoder.encode_descriptor(
                "grpc_server_started",
                "RPCs started on the server",
                None,
                MetricType::Counter,
            )?;
            for m in &all {
                let labels = [("grpc_service", &m.service), ("grpc_method", &m.method)];
                m.started.encode(e.encode_family(&labels)?)?;
            }
        }
        {
            let mut e = encoder.encode_descriptor(
                "grpc_server_handled",
                "RPCs completed on the server, by gRPC status code",
                None,
                MetricType::Counter,
            )?;
            for m in &all {
                for (code, name) in CODE_NAMES.iter().enumerate() {
                    // OK always; other codes once they happened.
                    if code != 0 && m.handled[code].get() == 0 {
                        continue;
                    }
                    let labels = [
                        ("grpc_service", m.service.as_str()),
                        ("grpc_method", m.method.as_str()),
                        ("grpc_code", name),
                    ];
                    m.handled[code].encode(e.encode_family(&labels)?)?;
                }
            }
        }
        let mut e = encoder.encode_descriptor(
            "grpc_server_handling_seconds",
            "Time from an RPC's arrival to its last response (its status)",
            None,
            MetricType::Histogram,
        )?;
        for m in &all {
            let labels = [("grpc_service", &m.service), ("grpc_method", &m.method)];
            let h = m.micros.snapshot();
            let buckets = seconds_buckets(&h);
            e.encode_family(&labels)?.encode_histogram::<NoLabels>(
                h.sum as f64 * 1e-6,
                h.count(),
                &buckets,
                None,
            )?;
        }
        Ok(())
    }
}

/// The tower layer (`tonic::transport::Server::builder().layer(..)`);
/// without an observer, it passes everything through.
#[derive(Clone, Debug, Default)]
pub struct RpcMetricsLayer {
    pub(crate) metrics: Option<Arc<RpcMetrics>>,
    /// Whether RPCs are counted (else only the slow-request log).
    pub(crate) counting: bool,
    /// RPCs that take this long or longer are logged.
    pub(crate) slow: Option<std::time::Duration>,
}

impl<S> tower::Layer<S> for RpcMetricsLayer {
    type Service = RpcMetricsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        RpcMetricsService {
            inner,
            metrics: self.metrics.clone(),
            counting: self.counting,
            slow: self.slow,
        }
    }
}

#[derive(Clone, Debug)]
pub struct RpcMetricsService<S> {
    inner: S,
    metrics: Option<Arc<RpcMetrics>>,
    counting: bool,
    slow: Option<std::time::Duration>,
}

/// The status code in a `grpc-status` header or trailer.
fn status_code(headers: &http::HeaderMap) -> Option<usize> {
    let v = headers
        .get("grpc-status")?
        .to_str()
        .ok()?
        .parse::<usize>()
        .ok()?;
    Some(if v < CODE_NAMES.len() {
        v
    } else {
        CODE_UNKNOWN
    })
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for RpcMetricsService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = http::Response<MeteredBody<ResBody>>;
    type Error = S::Error;
    type Future = MeteredFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut req: http::Request<ReqBody>) -> Self::Future {
        let started = Instant::now();
        let path = self
            .metrics
            .as_ref()
            .filter(|_| self.counting || self.slow.is_some())
            .map(|m| m.path(req.uri().path()));
        if let (Some(p), true) = (&path, self.counting) {
            p.started.inc();
        }
        let note = (path.is_some() && self.slow.is_some()).then(|| {
            let n = RequestNote::default();
            req.extensions_mut().insert(n.clone());
            n
        });
        let pending = path.map(|path| Pending {
            path,
            started,
            header_code: None,
            counting: self.counting,
            slow: self.slow,
            note,
        });
        MeteredFuture {
            inner: self.inner.call(req),
            pending,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response with its body metered (no allocation
    /// per request, unlike a boxed `async` block).
    pub struct MeteredFuture<F> {
        #[pin]
        inner: F,
        // None when nothing is counted.
        pending: Option<Pending>,
    }
}

impl<F, B, E> Future for MeteredFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = Result<http::Response<MeteredBody<B>>, E>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let out = ready!(this.inner.poll(cx));
        let pending = this.pending.take();
        Poll::Ready(match out {
            Ok(res) => {
                let header_code = status_code(res.headers());
                Ok(res.map(|inner| MeteredBody {
                    inner,
                    pending: pending.map(|p| Pending { header_code, ..p }),
                }))
            }
            Err(e) => {
                if let Some(p) = pending {
                    p.path.finish(CODE_UNKNOWN, &p);
                }
                Err(e)
            }
        })
    }
}

/// An RPC not yet counted as handled.
struct Pending {
    path: Arc<PathMetrics>,
    started: Instant,
    /// The status of a trailers-only response.
    header_code: Option<usize>,
    counting: bool,
    slow: Option<std::time::Duration>,
    note: Option<RequestNote>,
}

/// A response body that counts its RPC as handled when it ends.
pub struct MeteredBody<B> {
    inner: B,
    pending: Option<Pending>,
}

impl<B> MeteredBody<B> {
    fn finish(&mut self, code: Option<usize>) {
        if let Some(p) = self.pending.take() {
            let code = code.or(p.header_code).unwrap_or(CODE_UNKNOWN);
            p.path.finish(code, &p);
        }
    }
}

impl<B> Drop for MeteredBody<B> {
    fn drop(&mut self) {
        // Dropped before its end: the client reset the stream.
        let code = self
            .pending
            .as_ref()
            .map(|p| p.header_code.unwrap_or(CODE_CANCELLED));
        self.finish(code);
    }
}

impl<B> Body for MeteredBody<B>
where
    B: Body<Data = Bytes> + Unpin,
{
    type Data = Bytes;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let frame = ready!(Pin::new(&mut self.inner).poll_frame(cx));
        match &frame {
            Some(Ok(f)) => {
                if let Some(trailers) = f.trailers_ref() {
                    let code = status_code(trailers);
                    self.finish(code);
                }
            }
            Some(Err(_)) => self.finish(Some(CODE_UNKNOWN)),
            None => self.finish(None),
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rpc_times_fold_into_128us_to_16s_buckets() {
        let h = strata_engine::histogram::Histogram::default();
        for micros in [3, 50, 200, 1_000_000, 20_000_000] {
            h.record(micros);
        }
        let b = seconds_buckets(&h.snapshot());
        assert_eq!(b.len(), RPC_BUCKET_LAST - RPC_BUCKET_FIRST + 2);
        assert_eq!(b[0], (128e-6, 2));
        assert_eq!(b[1], (256e-6, 1));
        assert_eq!(b.iter().map(|x| x.1).sum::<u64>(), 5);
        assert_eq!(*b.last().unwrap(), (f64::INFINITY, 1));
    }

    #[test]
    fn paths_past_the_limit_count_as_unknown() {
        let m = RpcMetrics::default();
        for i in 0..PATHS_MAX + 10 {
            m.path(&format!("/svc/M{i}")).started.inc();
        }
        m.path("no-slash").started.inc();
        let all = m.all();
        assert_eq!(all.len(), PATHS_MAX + 1);
        let unknown = all.last().unwrap();
        assert_eq!(unknown.method, "unknown");
        assert_eq!(unknown.started.get(), 11);
        // A known path keeps its own counters.
        assert_eq!(m.path("/svc/M0").started.get(), 1);
    }
}
