# Development-only gRPC logging proxy: sits between a Bigtable client and a server and
# logs each call (method, metadata, request and response bytes) to a file.
# Usage: python3 grpc_log_proxy.py LISTEN_ADDR UPSTREAM_ADDR LOGFILE   (needs the grpcio package)
# Generic gRPC proxy: logs method + metadata, forwards raw bytes to upstream.
import sys, grpc
from concurrent import futures
listen, upstream, logf = sys.argv[1], sys.argv[2], sys.argv[3]
ch = grpc.insecure_channel(upstream)
ident = lambda b: b
SERVER_STREAMING = {"ReadRows", "SampleRowKeys", "MutateRows", "ExecuteQuery", "ReadChangeStream", "GenerateInitialChangeStreamPartitions"}
def log(s):
    with open(logf, "a") as f: f.write(s + "\n")
class H(grpc.GenericRpcHandler):
    def service(self, hcd):
        m = hcd.method
        md = [(k, v) for k, v in hcd.invocation_metadata if k not in ("user-agent",)]
        name = m.rsplit("/", 1)[-1]
        if name in SERVER_STREAMING:
            def h(req, ctx):
                log(f"{m} {md} reqlen={len(req)} req={req[:200]!r}")
                for r in ch.unary_stream(m, ident, ident)(req, metadata=[x for x in md if not x[0].startswith(':')]):
                    log(f"   <- {r[:300]!r}")
                    yield r
            return grpc.unary_stream_rpc_method_handler(h, ident, ident)
        def u(req, ctx):
            log(f"{m} {md} req={req[:200]!r}")
            try:
                return ch.unary_unary(m, ident, ident)(req, metadata=[x for x in md if not x[0].startswith(':')])
            except grpc.RpcError as e:
                log(f"   !! {e.code()} {e.details()}")
                ctx.abort(e.code(), e.details())
        return grpc.unary_unary_rpc_method_handler(u, ident, ident)
s = grpc.server(futures.ThreadPoolExecutor(8)); s.add_generic_rpc_handlers((H(),)); s.add_insecure_port(listen); s.start(); s.wait_for_termination()
