//! Every UNIMPLEMENTED answer names its RPC. The generated stubs answer
//! "Not yet implemented" and an unknown service or method answers with no
//! message at all; this layer rewrites those to
//! `<service>/<method> is not implemented by Strata`. An UNIMPLEMENTED
//! that Strata words itself (a feature of an RPC it does serve, "… is not
//! implemented by Strata") gets the RPC in front: `<service>/<method>: …`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use tonic::codegen::http;

/// The message of the generated default stubs.
const STUB_MESSAGE: &str = "Not yet implemented";

/// The tower layer (`tonic::transport::Server::builder().layer(..)`).
#[derive(Clone, Copy, Debug, Default)]
pub struct NameUnimplemented;

impl<S> tower::Layer<S> for NameUnimplemented {
    type Service = NameUnimplementedService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        NameUnimplementedService { inner }
    }
}

#[derive(Clone, Debug)]
pub struct NameUnimplementedService<S> {
    inner: S,
}

/// The message for an unserved RPC at `path` (`/pkg.Service/Method`).
pub fn message(path: &str) -> String {
    format!(
        "{} is not implemented by Strata",
        path.trim_start_matches('/')
    )
}

/// Rewrites an UNIMPLEMENTED with no message or the stubs' message.
fn name_it<B>(res: &mut http::Response<B>, path: &str) {
    let headers = res.headers_mut();
    if headers.get("grpc-status").map(|v| v.as_bytes()) != Some(b"12") {
        return;
    }
    let generic = match headers.get("grpc-message") {
        None => true,
        Some(m) => {
            m.is_empty()
                || m.as_bytes() == STUB_MESSAGE.replace(' ', "%20").as_bytes()
                || m.as_bytes() == STUB_MESSAGE.as_bytes()
        }
    };
    let rpc = path.trim_start_matches('/');
    if !generic {
        let named = headers
            .get("grpc-message")
            .and_then(|m| {
                let mut v = format!("{rpc}: ").into_bytes();
                v.extend_from_slice(m.as_bytes());
                http::HeaderValue::from_bytes(&v).ok()
            })
            .filter(|_| rpc.bytes().all(|b| (0x21..0x7f).contains(&b) && b != b'%'));
        if let Some(v) = named {
            headers.insert("grpc-message", v);
        }
        return;
    }
    // A path is printable ASCII with no '%', which gRPC's percent-encoding
    // leaves as it is; anything else falls back to a fixed text.
    let text = message(path);
    let value = if text.bytes().all(|b| (0x20..0x7f).contains(&b) && b != b'%') {
        http::HeaderValue::from_str(&text).ok()
    } else {
        None
    };
    headers.insert(
        "grpc-message",
        value.unwrap_or(http::HeaderValue::from_static(
            "this RPC is not implemented by Strata",
        )),
    );
}

impl<S, ReqBody, ResBody> tower::Service<http::Request<ReqBody>> for NameUnimplementedService<S>
where
    S: tower::Service<http::Request<ReqBody>, Response = http::Response<ResBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = NameUnimplementedFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, req: http::Request<ReqBody>) -> Self::Future {
        // The path shares the request's bytes: no copy per request.
        let path = req.uri().path_and_query().cloned();
        NameUnimplementedFuture {
            inner: self.inner.call(req),
            path,
        }
    }
}

pin_project_lite::pin_project! {
    /// The inner service's response, its UNIMPLEMENTED named (no
    /// allocation per request, unlike a boxed `async` block).
    pub struct NameUnimplementedFuture<F> {
        #[pin]
        inner: F,
        path: Option<http::uri::PathAndQuery>,
    }
}

impl<F, B, E> Future for NameUnimplementedFuture<F>
where
    F: Future<Output = Result<http::Response<B>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut res = std::task::ready!(this.inner.poll(cx))?;
        name_it(&mut res, this.path.as_ref().map_or("/", |p| p.path()));
        Poll::Ready(Ok(res))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(status: &str, msg: Option<&str>) -> http::Response<()> {
        let mut r = http::Response::new(());
        r.headers_mut()
            .insert("grpc-status", http::HeaderValue::from_str(status).unwrap());
        if let Some(m) = msg {
            r.headers_mut()
                .insert("grpc-message", http::HeaderValue::from_str(m).unwrap());
        }
        r
    }

    fn msg(r: &http::Response<()>) -> Option<&str> {
        r.headers().get("grpc-message").map(|v| v.to_str().unwrap())
    }

    #[test]
    fn names_generic_unimplemented_only() {
        let path = "/google.bigtable.admin.v2.BigtableTableAdmin/CreateBackup";
        for m in [None, Some(""), Some("Not%20yet%20implemented")] {
            let mut r = res("12", m);
            name_it(&mut r, path);
            assert_eq!(
                msg(&r),
                Some("google.bigtable.admin.v2.BigtableTableAdmin/CreateBackup is not implemented by Strata")
            );
        }
        let mut own = res("12", Some("views%20are%20not%20implemented"));
        name_it(&mut own, path);
        assert_eq!(
            msg(&own),
            Some("google.bigtable.admin.v2.BigtableTableAdmin/CreateBackup: views%20are%20not%20implemented")
        );
        let mut other = res("5", None);
        name_it(&mut other, path);
        assert_eq!(msg(&other), None);
    }
}
