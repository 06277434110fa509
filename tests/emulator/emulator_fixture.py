"""Test helpers: start kube_emulator.py in a temporary directory and talk to it.

Used by the emulator's own tests; any Python test may import it (put tests/emulator on
sys.path). Everything is bounded in time: the emulator exits on its own after
--max-lifetime seconds and when its parent goes away.
"""

import http.client
import json
import os
import select
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
EMULATOR = os.path.join(HERE, "kube_emulator.py")


class Emulator:
    """A running emulator process. Use as a context manager or call close()."""

    def __init__(self, *args, tls=True, startup_timeout=60, lifetime=300):
        self.workdir = tempfile.mkdtemp(prefix="keb-emulator-")
        self.tls = tls
        cmd = [sys.executable, EMULATOR, "--workdir", self.workdir, "--max-lifetime", str(lifetime),
               "--exit-with-parent"] + list(args)
        if not tls:
            cmd.append("--no-tls")
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        deadline = time.time() + startup_timeout
        self.ready_line = ""
        while time.time() < deadline:
            r, _, _ = select.select([self.proc.stdout], [], [], 0.2)
            if r:
                self.ready_line = self.proc.stdout.readline().decode()
                break
            if self.proc.poll() is not None:
                break
        if "ready" not in self.ready_line:
            try:
                self.proc.wait(5)      # stdout ended: the process is on its way out, let it finish
            except subprocess.TimeoutExpired:
                pass
            err = self.proc.stderr.read().decode() if self.proc.poll() is not None else ""
            self.close()
            raise RuntimeError("emulator did not start: %r %s" % (self.ready_line, err))
        with open(os.path.join(self.workdir, "port")) as f:
            self.port = int(f.read())
        self.ssl_ctx = None
        if tls:
            self.ssl_ctx = ssl.create_default_context(cafile=self.path("ca.crt"))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream:
                stream.close()
        shutil.rmtree(self.workdir, ignore_errors=True)

    def path(self, name):
        return os.path.join(self.workdir, name)

    def token(self):
        with open(self.path("token")) as f:
            return f.read().strip()

    # -- control API (plain HTTP on the same port, no auth) ------------------------------
    def control(self, method, path, body=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            data = json.dumps(body).encode() if body is not None else None
            conn.request(method, "/_emulator/" + path.lstrip("/"), body=data,
                         headers={"Content-Type": "application/json"} if data else {})
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status != 200:
                raise RuntimeError("control %s %s -> %d %s" % (method, path, resp.status, payload[:500]))
            return json.loads(payload)
        finally:
            conn.close()

    def post_events(self, **body):
        return self.control("POST", "events", body)

    def fault(self, **spec):
        return self.control("POST", "faults", spec)

    def stats(self):
        return self.control("GET", "stats")

    def snapshot(self, since_rv=0):
        return self.control("GET", "events-snapshot" + ("?since_rv=%d" % since_rv if since_rv else ""))

    # -- Kubernetes API ------------------------------------------------------------------
    def connection(self, timeout=30, ssl_ctx=None, host="127.0.0.1"):
        if self.tls:
            return http.client.HTTPSConnection(host, self.port, timeout=timeout, context=ssl_ctx or self.ssl_ctx)
        return http.client.HTTPConnection(host, self.port, timeout=timeout)

    def get(self, path, token="__file__", headers=None):
        """GET an API path. Returns (status, headers dict (lower-case names), body bytes)."""
        conn = self.connection()
        try:
            h = dict(headers or {})
            if token == "__file__":
                token = self.token()
            if token:
                h["Authorization"] = "Bearer " + token
            conn.request("GET", path, headers=h)
            resp = conn.getresponse()
            body = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
        finally:
            conn.close()

    def post(self, path, body, token="__file__", headers=None, timeout=30):
        """POST a JSON body (bytes are sent as they are) to an API path. Returns (status,
        headers dict (lower-case names), decoded JSON body, or the bytes when not JSON)."""
        conn = self.connection(timeout=timeout)
        try:
            h = {"Content-Type": "application/json"}
            h.update(headers or {})
            if token == "__file__":
                token = self.token()
            if token:
                h["Authorization"] = "Bearer " + token
            data = body if isinstance(body, bytes) else json.dumps(body).encode()
            conn.request("POST", path, body=data, headers=h)
            resp = conn.getresponse()
            raw = resp.read()
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, payload
        finally:
            conn.close()

    def token_review(self, reviewed, **kw):
        """POST a TokenReview of the token `reviewed` (kw: token= the caller's, as for post);
        returns (status, body)."""
        status, _, body = self.post("/apis/authentication.k8s.io/v1/tokenreviews",
                                    {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                     "spec": {"token": reviewed}}, **kw)
        return status, body

    def access_review(self, spec, **kw):
        """POST a SubjectAccessReview with this spec; returns (status, body)."""
        status, _, body = self.post("/apis/authorization.k8s.io/v1/subjectaccessreviews",
                                    {"apiVersion": "authorization.k8s.io/v1", "kind": "SubjectAccessReview",
                                     "spec": spec}, **kw)
        return status, body

    def get_json(self, path, **kw):
        status, headers, body = self.get(path, **kw)
        return status, headers, json.loads(body)

    def watch(self, query, namespace=None, token="__file__"):
        path = ("/api/v1/namespaces/%s/events" % namespace) if namespace else "/api/v1/events"
        return RawWatch(self, path + "?watch=1&" + query, self.token() if token == "__file__" else token)


class RawWatch:
    """A watch request read at the byte level: decodes the chunked framing itself so that
    tests see exactly what went over the wire (complete lines, a partial line, whether the
    stream ended with the terminating chunk or the connection just died)."""

    def __init__(self, emu, path, token):
        sock = socket.create_connection(("127.0.0.1", emu.port), timeout=10)
        if emu.tls:
            sock = emu.ssl_ctx.wrap_socket(sock, server_hostname="127.0.0.1")
        self.sock = sock
        req = "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nAccept: application/json\r\n" % (path, emu.port)
        if token:
            req += "Authorization: Bearer %s\r\n" % token
        sock.sendall((req + "\r\n").encode())
        self.raw = b""
        self.body = b""
        self.chunk_left = 0          # data bytes left in the current chunk
        self.crlf_left = 0           # bytes of the CRLF after the current chunk still to skip
        self.terminated = False      # saw the 0-size terminating chunk
        self.eof = False             # the connection closed
        self.chunks = 0
        while b"\r\n\r\n" not in self.raw:
            if not self._recv(10):
                raise RuntimeError("connection closed before the response headers: %r" % self.raw)
        head, self.raw = self.raw.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        self.status = int(lines[0].split()[1])
        self.headers = {}
        for line in lines[1:]:
            k, _, v = line.partition(":")
            self.headers[k.strip().lower()] = v.strip()
        self.chunked = self.headers.get("transfer-encoding") == "chunked"
        if not self.chunked:
            n = int(self.headers.get("content-length", "0"))
            while len(self.raw) < n and self._recv(10):
                pass
            self.body, self.raw = self.raw[:n], b""
            self.terminated = True
        self._parse()

    def _recv(self, timeout):
        if self.eof:
            return False
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(1 << 16)
        except (socket.timeout, TimeoutError):
            return None
        except (ConnectionResetError, ssl.SSLError, OSError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.raw += data
        return True

    def _parse(self):
        while self.raw and not self.terminated:
            if self.crlf_left:
                take = min(self.crlf_left, len(self.raw))
                assert self.raw[:take] == b"\r\n"[2 - self.crlf_left:2 - self.crlf_left + take], self.raw[:10]
                self.raw = self.raw[take:]
                self.crlf_left -= take
                continue
            if self.chunk_left == 0:
                idx = self.raw.find(b"\r\n")
                if idx < 0:
                    return
                size = int(self.raw[:idx].split(b";")[0], 16)
                self.raw = self.raw[idx + 2:]
                if size == 0:
                    self.terminated = True
                    return
                self.chunk_left = size
                self.chunks += 1
            take = min(self.chunk_left, len(self.raw))
            self.body += self.raw[:take]
            self.raw = self.raw[take:]
            self.chunk_left -= take
            if self.chunk_left == 0:
                self.crlf_left = 2

    def pump(self, timeout=0.2):
        got = self._recv(timeout)
        if got:
            self._parse()
        return got

    def lines(self):
        """Complete lines received so far (bytes, without the newline)."""
        return self.body.split(b"\n")[:-1]

    def events(self):
        return [json.loads(x) for x in self.lines()]

    def partial(self):
        return self.body.rsplit(b"\n", 1)[-1] if b"\n" in self.body else self.body

    def read_until(self, predicate, timeout=10):
        """Reads until predicate(self) is true, the stream ends, or timeout. Returns predicate(self)."""
        deadline = time.time() + timeout
        while not predicate(self) and not self.terminated and not self.eof and time.time() < deadline:
            self.pump(min(0.2, max(0.01, deadline - time.time())))
        return predicate(self)

    def read_to_end(self, timeout=10):
        return self.read_until(lambda w: False, timeout) or (self.terminated or self.eof)

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass
