"""Shared helpers of the integration tests: the API-server emulator and the controller binary
as child processes, an HTTPS client of the controller's eventbuffer.dev API, a parser of the
Prometheus text exposition, kubectl with a generated kubeconfig.

The controller serves three ports, all on loopback here:
  probe    plain HTTP, /livez /healthz /readyz only;
  secure   HTTPS, the aggregated API eventbuffer.dev/v1alpha1 (authenticated and authorized
           through the emulator's TokenReview and SubjectAccessReview);
  metrics  /metrics, plain HTTP or HTTPS with the same authentication (metrics_secure).
Its serving certificate is signed by a CA made per test (make_serving_cert), so clients
verify it as kubectl would.

The emulator runs with tests/emulator/demo-policy.json: VIEWER_TOKEN may read events in
every namespace and get /metrics, NS_READER_TOKEN reads namespace default only,
NOBODY_TOKEN has no rights beyond discovery.

Environment: KEB_CONTROLLER (path of the binary), KEB_EMULATOR (path of kube_emulator.py),
KEB_KUBECTL (kubectl, default `kubectl` on PATH).
"""

import http.client
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONTROLLER = os.environ.get("KEB_CONTROLLER", os.path.join(ROOT, "build", "controller", "eventbuffer-controller"))
EMULATOR = os.environ.get("KEB_EMULATOR", os.path.join(ROOT, "tests", "emulator", "kube_emulator.py"))
POLICY = os.path.join(os.path.dirname(EMULATOR), "demo-policy.json")
KUBECTL = os.environ.get("KEB_KUBECTL") or shutil.which("kubectl")

# The serving CA and certificate for 127.0.0.1 come from the demo's helper, so the tests and
# the demo run the controller with certificates made the same way.
sys.path.insert(0, os.path.join(ROOT, "tests", "emulator"))
from demo_access import make_serving_cert  # noqa: E402  (after the path is set)

VIEWER_TOKEN = "demo-viewer-token"
NS_READER_TOKEN = "demo-ns-reader-token"
NOBODY_TOKEN = "demo-nobody-token"

API = "/apis/eventbuffer.dev/v1alpha1"
TABLE_ACCEPT = "application/json;as=Table;v=v1;g=meta.k8s.io"


_handed_out = set()


def free_port():
    """A loopback port nobody listens on now, never one this process handed out before.
    Another process may still take it before the controller binds it: Controller retries
    with new ports when that happens."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        if port not in _handed_out:
            _handed_out.add(port)
            return port


def lost_a_port(proc, log_text):
    """Whether a controller exited because another process bound one of its ports between
    free_port() and its own bind (tests run in parallel): then it is worth starting again on
    new ports."""
    return proc.poll() is not None and "Address already in use" in log_text


def http_json(url, data=None, timeout=10):
    body = None if data is None else json.dumps(data).encode()
    req = urllib.request.Request(url, data=body, method="POST" if data is not None else "GET",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode("utf-8"))


def http_status(url, timeout=5):
    """(status, body) of a plain HTTP GET; (0, b"") when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, ConnectionError, socket.timeout):
        return 0, b""


# -- Prometheus text exposition ---------------------------------------------------------------
_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)(?:\s+\S+)?$')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


class Metrics:
    """Samples of one scrape: get(name, **labels) is the one sample with exactly those
    labels (among others) or None; total(name, **labels) sums all matching samples."""

    def __init__(self, text):
        self.text = text
        self.samples = []
        for line in text.splitlines():
            if not line or line.startswith("#"):
                continue
            m = _SAMPLE.match(line)
            if not m:
                raise ValueError("not an exposition line: %r" % line)
            labels = dict(_LABEL.findall(m.group(2) or ""))
            self.samples.append((m.group(1), labels, float(m.group(3))))

    def matching(self, name, **labels):
        return [v for n, l, v in self.samples
                if n == name and all(l.get(k) == str(want) for k, want in labels.items())]

    def get(self, name, **labels):
        values = self.matching(name, **labels)
        if len(values) > 1:
            raise AssertionError("%s%r matches %d samples" % (name, labels, len(values)))
        return values[0] if values else None

    def total(self, name, **labels):
        return sum(self.matching(name, **labels))

    def mode(self):
        """The gray-release mode whose eventbuffer_gray_mode gauge is 1."""
        modes = [l["mode"] for n, l, v in self.samples if n == "eventbuffer_gray_mode" and v == 1]
        if len(modes) != 1:
            raise AssertionError("eventbuffer_gray_mode: %d modes at 1" % len(modes))
        return modes[0]


# -- the emulator -----------------------------------------------------------------------------
class Emulator:
    def __init__(self, workdir, *args, policy=POLICY):
        self.workdir = workdir
        self.log = open(os.path.join(workdir, "emulator.log"), "w")
        extra = ["--auth-policy", policy] if policy else []
        self.proc = subprocess.Popen([sys.executable, EMULATOR, "--workdir", workdir, "--port", "0",
                                      "--exit-with-parent", "--max-lifetime", "600", *extra, *args],
                                     stdout=subprocess.PIPE, stderr=self.log, text=True)
        deadline = time.time() + 20
        line = ""
        while time.time() < deadline:
            line = self.proc.stdout.readline()
            if "ready" in line or not line:
                break
        if "ready" not in line:
            raise RuntimeError("emulator did not start: %r" % line)
        with open(os.path.join(workdir, "port")) as f:
            self.port = int(f.read().strip())
        self.control = "http://127.0.0.1:%d/_emulator" % self.port
        self.kubeconfig = os.path.join(workdir, "kubeconfig")

    def path(self, name):
        return os.path.join(self.workdir, name)

    def post(self, path, data):
        return http_json(self.control + path, data)

    def get(self, path):
        return http_json(self.control + path)

    def events(self, **spec):
        return self.post("/events", spec)

    def fault(self, **spec):
        return self.post("/faults", spec)

    def traffic(self, events_per_second):
        return self.post("/traffic", {"events_per_second": events_per_second})

    def stats(self):
        return self.get("/stats")

    def auth_stats(self, since=0):
        return self.get("/auth-stats?last=500&since=%d" % since)

    def policy(self):
        return self.get("/auth-policy")["policy"]

    def set_policy(self, policy):
        return self.post("/auth-policy", policy)

    def snapshot(self):
        return self.get("/events-snapshot")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()
        self.log.close()


# -- the controller ---------------------------------------------------------------------------
class Controller:
    """The controller binary with its probe, secure and metrics ports on loopback.

    serving: (ca, cert, key) from make_serving_cert (the secure port, and the metrics port
    when metrics_secure). token: what api()/list_all() send by default. cache_ttl: the three
    --authentication-token-webhook-cache-ttl / --authorization-webhook-cache-*-ttl flags
    (None: the defaults, 10s)."""

    def __init__(self, workdir, kubeconfig, *args, serving, name="controller", metrics_secure=False,
                 token=VIEWER_TOKEN, cache_ttl=None):
        self.workdir = workdir
        self.ca, self.cert, self.key = serving
        self.token = token
        self.metrics_secure = metrics_secure
        self.log_path = os.path.join(workdir, name + ".log")
        self.log = None
        ttl = []
        if cache_ttl is not None:
            ttl = ["--authentication-token-webhook-cache-ttl", cache_ttl,
                   "--authorization-webhook-cache-authorized-ttl", cache_ttl,
                   "--authorization-webhook-cache-unauthorized-ttl", cache_ttl]
        self._command = lambda: [
            CONTROLLER, "--kubeconfig", kubeconfig,
            "--health-probe-bind-address", "127.0.0.1:%d" % self.probe_port,
            "--secure-port", str(self.secure_port), "--bind-address", "127.0.0.1",
            "--tls-cert-file", self.cert, "--tls-private-key-file", self.key,
            "--metrics-bind-address", "127.0.0.1:%d" % self.metrics_port,
            "--metrics-secure=%s" % ("true" if metrics_secure else "false"),
            "--log-level", "debug", *ttl,
            # No pause after SIGTERM unless a test asks for one (its own flag comes later
            # and wins): most tests stop the controller many times.
            "--shutdown-delay", "0s", *args]
        self._launch()
        self.ssl_ctx = ssl.create_default_context(cafile=self.ca)
        self._conn = None

    # -- process ----------------------------------------------------------------------------
    def _launch(self):
        self.probe_port, self.secure_port, self.metrics_port = free_port(), free_port(), free_port()
        self.base = "http://127.0.0.1:%d" % self.probe_port
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(self._command(), stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=20):
        deadline = time.time() + timeout
        relaunches = 0
        while time.time() < deadline:
            if relaunches < 3 and lost_a_port(self.proc, self.logs()):
                relaunches += 1
                self._launch()
                continue
            if self.proc.poll() is not None:
                raise AssertionError("controller exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if self.probe("/readyz")[0] == 200:
                return
            time.sleep(0.1)
        raise AssertionError("controller not ready after %ss:\n%s" % (timeout, self.logs()))

    def probe(self, path, timeout=5):
        return http_status(self.base + path, timeout)

    def rss_kb(self):
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for pid %d" % self.proc.pid)

    def peak_rss_kb(self):
        """The process's resident-set high-water mark (VmHWM): what it ever held at once."""
        with open("/proc/%d/status" % self.proc.pid) as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
        raise AssertionError("no VmHWM for pid %d" % self.proc.pid)

    def logs(self):
        with open(self.log_path) as f:
            return f.read()[-6000:]

    def stop(self, sig=signal.SIGTERM, timeout=10):
        self.close_connection()
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()
        return self.proc.returncode

    # -- the secure port --------------------------------------------------------------------
    def client_context(self, cert=None):
        """A TLS context trusting the serving CA; cert = (crt, key) presents a client certificate."""
        ctx = ssl.create_default_context(cafile=self.ca)
        if cert:
            ctx.load_cert_chain(*cert)
        return ctx

    def api(self, path, token="default", accept=None, headers=None, cert=None, timeout=30, port=None,
            method="GET", body=None):
        """One request on a new connection: (status, headers dict (lower-case), body bytes).
        token "default" is self.token; None sends no Authorization header."""
        token = self.token if token == "default" else token
        h = dict(headers or {})
        if token is not None:
            h["Authorization"] = "Bearer " + token
        if accept:
            h["Accept"] = accept
        conn = http.client.HTTPSConnection("127.0.0.1", port or self.secure_port, timeout=timeout,
                                           context=self.client_context(cert))
        try:
            conn.request(method, path, body=body, headers=h)
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, data
        finally:
            conn.close()

    def api_json(self, path, **kw):
        status, _, body = self.api(path, **kw)
        if status != 200:
            raise AssertionError("GET %s: %d %s" % (path, status, body[:500]))
        return json.loads(body)

    def _get_kept_alive(self, path):
        """GET over one kept-alive connection with self.token (reconnects once when the
        server closed it)."""
        for attempt in range(2):
            if self._conn is None:
                self._conn = http.client.HTTPSConnection("127.0.0.1", self.secure_port, timeout=30,
                                                         context=self.ssl_ctx)
            try:
                self._conn.request("GET", path, headers={"Authorization": "Bearer " + self.token})
                resp = self._conn.getresponse()
                body = resp.read()
            except (http.client.HTTPException, ConnectionError, ssl.SSLError, socket.timeout, OSError):
                self.close_connection()
                if attempt:
                    raise
                continue
            if resp.status != 200:
                raise AssertionError("GET %s: %d %s" % (path, resp.status, body[:500]))
            return json.loads(body)

    def close_connection(self):
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def list_all(self, namespace=None, **params):
        """Items of one unpaged list (all namespaces unless namespace)."""
        path = API + ("/namespaces/%s/events" % namespace if namespace else "/events")
        if params:
            path += "?" + urllib.parse.urlencode(params)
        doc = self._get_kept_alive(path)
        if doc.get("kind") != "EventList" or doc.get("apiVersion") != "eventbuffer.dev/v1alpha1":
            raise AssertionError("not an EventList: %r" % {k: doc.get(k) for k in ("kind", "apiVersion")})
        return doc["items"]

    # -- the metrics port -------------------------------------------------------------------
    def metrics_text(self, token="default"):
        if not self.metrics_secure:
            status, body = http_status("http://127.0.0.1:%d/metrics" % self.metrics_port, timeout=10)
        else:
            status, _, body = self.api("/metrics", token=token, port=self.metrics_port)
        if status != 200:
            raise AssertionError("/metrics: %d %s" % (status, body[:300]))
        return body.decode("utf-8")

    def metrics(self, token="default"):
        return Metrics(self.metrics_text(token))

    # -- kubectl ----------------------------------------------------------------------------
    def kubeconfig_for(self, token, name=None):
        """A kubeconfig for kubectl: this controller's secure port, its serving CA, token."""
        path = os.path.join(self.workdir, name or "kubeconfig-%s" % re.sub(r"[^a-z0-9-]", "", token))
        with open(path, "w") as f:
            f.write("apiVersion: v1\nkind: Config\n"
                    "clusters:\n- name: keb\n  cluster:\n    server: https://127.0.0.1:%d\n"
                    "    certificate-authority: %s\n"
                    "users:\n- name: u\n  user:\n    token: %s\n"
                    "contexts:\n- name: keb\n  context:\n    cluster: keb\n    user: u\n"
                    "current-context: keb\n" % (self.secure_port, self.ca, token))
        return path


def occurrence_key(item):
    """The emulator's key of an Event's involved object: namespace/Kind/name ("" namespace
    for cluster-scoped objects)."""
    io = item.get("involvedObject", {})
    return "%s/%s/%s" % (io.get("namespace", ""), io.get("kind", ""), io.get("name", ""))


def group_by_object(items):
    by_key = {}
    for item in items:
        by_key.setdefault(occurrence_key(item), []).append(item)
    return by_key


def kubectl(kubeconfig, *args, timeout=60):
    """Runs kubectl with its own cache dir next to the kubeconfig: (returncode, stdout, stderr)."""
    cache = os.path.join(os.path.dirname(kubeconfig), "kubectl-cache")
    p = subprocess.run([KUBECTL, "--kubeconfig", kubeconfig, "--cache-dir", cache, *args],
                       capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout, p.stderr
