#!/usr/bin/env python3
"""Integration tests of the controller's secure serving: the eventbuffer.dev API and the
metrics port behind delegated authentication and authorization, with real clients.

The controller runs against the API-server emulator started with
tests/emulator/demo-policy.json, which answers its TokenReviews and SubjectAccessReviews and
serves the extension-apiserver-authentication ConfigMap (client CA, front-proxy CA and
names) that the controller reads at start-up. Clients: kubectl (a generated kubeconfig
with the test's serving CA and a token) where a real client fits, Python http.client/ssl for
raw requests, certificates and hostile connections.

Environment: KEB_CONTROLLER, KEB_EMULATOR, KEB_KUBECTL (see keb_harness.py).
Run one test: python3 secure_api_test.py SecureApi.test_front_proxy_headers
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
import threading
import time
import unittest
import urllib.parse

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keb_harness import (API, CONTROLLER, KUBECTL, NOBODY_TOKEN, NS_READER_TOKEN,  # noqa: E402
                         TABLE_ACCEPT, VIEWER_TOKEN, Controller, Emulator, http_status,
                         make_serving_cert)


def status_body(body):
    doc = json.loads(body)
    return doc["kind"], doc.get("reason"), doc.get("code"), doc.get("message", "")


def item_names(items):
    return [i["metadata"]["name"] for i in items]


class SecureApiBase(unittest.TestCase):
    """One emulator (idle: only what the test creates) and controllers against it."""

    def setUp(self):
        if not os.path.exists(CONTROLLER):
            self.skipTest("controller binary not built: %s" % CONTROLLER)
        self.workdir = tempfile.mkdtemp(prefix="keb-secure-")
        self.serving = make_serving_cert(os.path.join(self.workdir, "serving"))
        self.emu = None
        self.controllers = []
        self._problems_before = self._problem_count()

    def _problem_count(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return len(result.errors) + len(result.failures) if result is not None else 0

    def tearDown(self):
        failed = self._problem_count() > self._problems_before
        for ctl in self.controllers:
            ctl.stop()
        if self.emu:
            self.emu.stop()
        if failed:
            for ctl in self.controllers:
                sys.stderr.write("---- %s ----\n%s\n" % (ctl.log_path, ctl.logs()))
        if not os.environ.get("KEB_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start_emulator(self, *args):
        self.emu = Emulator(self.workdir, *(args or ("--scenario", "idle")))
        return self.emu

    def start_controller(self, *args, name="controller", **kw):
        ctl = Controller(self.workdir, self.emu.kubeconfig, *args, serving=self.serving, name=name, **kw)
        self.controllers.append(ctl)
        ctl.wait_ready()
        return ctl

    def load_data(self):
        """Creates (for controllers already watching: a list would show only each Event's
        latest revision) a fixed data set: 40 occurrences in default, 30 Warnings in team-a, 10 in team-b,
        6 on a Node (Event namespace default), 300 in team-c (a few hundred items for
        paging)."""
        self.emu.events(count=20, namespace="default", repeat=1)
        self.emu.events(count=15, namespace="team-a", type="Warning", reason="BackOff", repeat=1)
        self.emu.events(count=10, namespace="team-b")
        self.emu.events(count=3, kind="Node", name="worker-1", type="Warning", reason="NodeHasDiskPressure",
                        repeat=1)
        self.emu.events(count=150, namespace="team-c", repeat=1)
        return len(self.emu.snapshot())

    def wait_holds(self, ctl, total, timeout=30):
        deadline = time.time() + timeout
        while True:
            n = len(ctl.list_all())
            if n == total:
                return
            if time.time() > deadline:
                self.fail("controller holds %d occurrences, expected %d" % (n, total))
            time.sleep(0.2)

    def add_policy(self, tokens=None, rules=()):
        """Extends the emulator's policy (tokens, rules) and keeps the rest."""
        policy = self.emu.policy()
        policy.setdefault("tokens", {}).update(tokens or {})
        policy["rules"] = list(policy.get("rules", [])) + list(rules)
        self.emu.set_policy(policy)

    def add_reader(self, token, user):
        """A token of a new user who may read events everywhere: a fresh cache key."""
        self.add_policy({token: {"user": user}},
                        [{"name": user + " reads events", "users": [user], "verbs": ["get", "list"],
                          "apiGroups": ["eventbuffer.dev"], "resources": ["events"]}])

    def reviews_since(self, seq):
        return self.emu.auth_stats(since=seq)["reviews"]

    def seq(self):
        return self.emu.auth_stats()["seq"]


class SecureApi(SecureApiBase):
    # -- authentication and authorization, raw requests ------------------------------------
    def test_unauthenticated_and_bad_token(self):
        self.start_emulator()
        ctl = self.start_controller()
        seq = self.seq()
        for token in (None, "not-a-token-of-the-policy"):
            for path in (API + "/events", API + "/namespaces/default/events", "/apis"):
                code, headers, body = ctl.api(path, token=token)
                self.assertEqual(code, 401, (token, path))
                self.assertEqual(headers["content-type"], "application/json")
                kind, reason, status_code, _ = status_body(body)
                self.assertEqual((kind, reason, status_code), ("Status", "Unauthorized", 401))
        # The bad token was asked about (once: the answer is cached); no credential: nothing
        # to review. Nothing was authorized.
        reviews = self.reviews_since(seq)
        self.assertEqual([r["spec"]["token"] for r in reviews if r["resource"] == "tokenreviews"],
                         ["not-a-token-of-the-policy"])
        self.assertEqual([r for r in reviews if r["resource"] == "subjectaccessreviews"], [])
        m = ctl.metrics()
        # Every refusal counts as unauthenticated; the three with the bad token also as token
        # failures.
        self.assertEqual(m.get("eventbuffer_authentication_total", method="none", result="unauthenticated"), 6)
        self.assertEqual(m.get("eventbuffer_authentication_total", method="token", result="failure"), 3)
        self.assertEqual(m.get("eventbuffer_authentication_total", method="token", result="success"), 0)
        self.assertEqual(m.get("eventbuffer_authorization_total", decision="allowed"), 0)

    def test_writes_are_authorized_before_they_are_refused(self):
        # As from the API server: a write is authenticated, then authorized as the verb its
        # method maps to, and only then refused as not served (the API is read-only).
        self.start_emulator()
        self.emu.events(count=2)
        ctl = self.start_controller()
        name = ctl.list_all(namespace="default")[0]["metadata"]["name"]
        one = API + "/namespaces/default/events/" + name
        collection = API + "/namespaces/default/events"
        event = json.dumps({"apiVersion": "eventbuffer.dev/v1alpha1", "kind": "Event",
                            "metadata": {"name": "x", "namespace": "default"}}).encode()
        self.add_policy({"writer-token": {"user": "writer"}},
                        [{"name": "writer writes events", "users": ["writer"],
                          "verbs": ["create", "update", "patch", "delete", "deletecollection"],
                          "apiGroups": ["eventbuffer.dev"], "resources": ["events"]}])
        writes = (("POST", collection, event, "create"), ("PUT", one, event, "update"),
                  ("PATCH", one, b"{}", "patch"), ("DELETE", one, None, "delete"),
                  ("DELETE", collection, b"{}", "deletecollection"))
        seq = self.seq()
        for method, path, body, verb in writes:
            code, _, out = ctl.api(path, token=None, method=method, body=body)
            self.assertEqual((code, status_body(out)[1]), (401, "Unauthorized"), (method, path))
            code, _, out = ctl.api(path, token=VIEWER_TOKEN, method=method, body=body)
            self.assertEqual((code, status_body(out)[1]), (403, "Forbidden"), (method, path))
            self.assertIn('User "demo-viewer" cannot %s resource "events"' % verb, status_body(out)[3])
            code, headers, out = ctl.api(path, token="writer-token", method=method, body=body)
            self.assertEqual((code, status_body(out)[1]), (405, "MethodNotAllowed"), (method, path))
            self.assertEqual(headers.get("allow"), "GET, HEAD")
        # Each write was put to the cluster's authorization with its own verb.
        asked = [r["spec"]["resourceAttributes"]["verb"] for r in self.reviews_since(seq)
                 if r["resource"] == "subjectaccessreviews"]
        self.assertEqual(sorted(set(asked)), sorted(w[3] for w in writes))
        # Nothing was written: the buffer holds what it held.
        self.assertEqual(len(ctl.list_all(namespace="default")), 2)
        self.assertEqual(ctl.api(one)[0], 200)
        # kubectl as the viewer: Forbidden, as from the API server.
        self.ctl = ctl
        code, _, err = self.kubectl(VIEWER_TOKEN, "delete", "events.eventbuffer.dev", "-n", "default", name)
        self.assertNotEqual(code, 0)
        self.assertIn("Error from server (Forbidden)", err)

    def test_probe_paths_on_the_secure_port(self):
        # As on the API server's secure port: /livez, /healthz and /readyz answer without
        # credentials (--authorization-always-allow-paths), the rest still needs them.
        self.start_emulator()
        ctl = self.start_controller()
        for path in ("/livez", "/healthz", "/readyz"):
            code, _, body = ctl.api(path, token=None)
            self.assertEqual((code, body), (200, b"ok"), path)
        self.assertEqual(ctl.api("/apis", token=None)[0], 401)
        self.assertEqual(ctl.api("/readyz/x", token=None)[0], 401)
        # Let in without credentials, but to read only.
        code, headers, body = ctl.api("/healthz", token=None, method="POST", body=b"x")
        self.assertEqual((code, status_body(body)[1], headers.get("allow")), (405, "MethodNotAllowed", "GET, HEAD"))

    def test_forbidden(self):
        self.start_emulator()
        self.emu.events(count=2)
        ctl = self.start_controller()
        code, _, body = ctl.api(API + "/namespaces/default/events", token=NOBODY_TOKEN)
        self.assertEqual(code, 403)
        kind, reason, status_code, message = status_body(body)
        self.assertEqual((kind, reason, status_code), ("Status", "Forbidden", 403))
        self.assertIn('User "nobody" cannot list resource "events" in API group "eventbuffer.dev"', message)
        # The same user may do discovery (the defaults grant system:authenticated /apis).
        self.assertEqual(ctl.api("/apis", token=NOBODY_TOKEN)[0], 200)
        self.assertGreaterEqual(ctl.metrics().get("eventbuffer_authorization_total", decision="denied"), 1)

    def test_namespace_scoped_reader(self):
        self.start_emulator()
        ctl = self.start_controller()
        self.wait_holds(ctl, self.load_data())
        in_default = ctl.list_all(namespace="default")
        self.assertTrue(in_default)
        ns_path = API + "/namespaces/default/events"
        code, _, body = ctl.api(ns_path, token=NS_READER_TOKEN)
        self.assertEqual(code, 200)
        self.assertEqual(item_names(json.loads(body)["items"]), item_names(in_default))
        name = in_default[0]["metadata"]["name"]
        self.assertEqual(ctl.api(ns_path + "/" + name, token=NS_READER_TOKEN)[0], 200)
        other = ctl.list_all(namespace="team-a")[0]["metadata"]["name"]
        for path in (API + "/namespaces/team-a/events", API + "/namespaces/team-a/events/" + other,
                     API + "/events"):
            code, _, body = ctl.api(path, token=NS_READER_TOKEN)
            self.assertEqual(code, 403, path)
            self.assertEqual(status_body(body)[1], "Forbidden")
            self.assertIn('User "ns-reader"', status_body(body)[3])

    def test_front_proxy_headers(self):
        self.start_emulator()
        self.emu.events(count=3, namespace="team-a")
        ctl = self.start_controller()
        self.wait_holds(ctl, 3)
        proxy = (self.emu.path("front-proxy-client.crt"), self.emu.path("front-proxy-client.key"))
        alice = (self.emu.path("client-alice.crt"), self.emu.path("client-alice.key"))
        # A certificate signed by the front-proxy CA but with a CN not in
        # requestheader-allowed-names (["front-proxy-client"]).
        rogue = (os.path.join(self.workdir, "rogue.crt"), os.path.join(self.workdir, "rogue.key"))
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256",
                        "-nodes", "-days", "1", "-subj", "/CN=rogue-proxy",
                        "-CA", self.emu.path("front-proxy-ca.crt"), "-CAkey", self.emu.path("front-proxy-ca.key"),
                        "-addext", "extendedKeyUsage=clientAuth", "-addext", "basicConstraints=critical,CA:FALSE",
                        "-keyout", rogue[1], "-out", rogue[0]], check=True, capture_output=True)
        headers = {"X-Remote-User": "demo-viewer", "X-Remote-Group": "demo-viewers"}
        path = API + "/events"

        seq = self.seq()
        code, _, body = ctl.api(path, token=None, cert=proxy, headers=headers)
        self.assertEqual(code, 200, body[:300])
        self.assertEqual(len(json.loads(body)["items"]), 3)
        reviews = self.reviews_since(seq)
        self.assertEqual([r["resource"] for r in reviews], ["subjectaccessreviews"])  # no TokenReview
        self.assertEqual(reviews[0]["spec"]["user"], "demo-viewer")
        self.assertIn("demo-viewers", reviews[0]["spec"]["groups"])

        # The same headers from alice's certificate: alice (x509), not demo-viewer.
        code, _, body = ctl.api(path, token=None, cert=alice, headers=headers)
        self.assertEqual(code, 403)
        message = status_body(body)[3]
        self.assertIn('User "alice"', message)
        self.assertNotIn("demo-viewer", message)
        # From the rogue proxy: its certificate is no front proxy (CN not allowed) and no
        # client certificate (not signed by the client CA): nobody.
        code, _, body = ctl.api(path, token=None, cert=rogue, headers=headers)
        self.assertEqual((code, status_body(body)[1]), (401, "Unauthorized"))
        # Without a certificate: the headers alone authenticate nobody.
        code, _, body = ctl.api(path, token=None, headers=headers)
        self.assertEqual((code, status_body(body)[1]), (401, "Unauthorized"))
        # With a token: the token's user, not the headers'.
        code, _, body = ctl.api(path, token=NOBODY_TOKEN, headers=headers)
        self.assertEqual(code, 403)
        self.assertIn('User "nobody"', status_body(body)[3])
        m = ctl.metrics()
        self.assertEqual(m.get("eventbuffer_authentication_total", method="frontproxy", result="success"), 1)
        self.assertEqual(m.get("eventbuffer_authentication_total", method="x509", result="success"), 1)

    def test_x509_client_certificate(self):
        self.start_emulator()
        self.emu.events(count=2, namespace="team-a")
        self.emu.events(count=2, namespace="team-b")
        ctl = self.start_controller()
        self.wait_holds(ctl, 4)
        alice = (self.emu.path("client-alice.crt"), self.emu.path("client-alice.key"))
        code, _, body = ctl.api(API + "/namespaces/team-a/events", token=None, cert=alice)
        self.assertEqual(code, 403)
        self.assertIn('User "alice"', status_body(body)[3])
        # A rule for alice's group (the certificate's O) in team-a only.
        self.add_policy(rules=[{"name": "team-a reads its events", "groups": ["team-a"], "verbs": ["get", "list"],
                                "apiGroups": ["eventbuffer.dev"], "resources": ["events"],
                                "namespaces": ["team-a"]}])
        seq = self.seq()
        # team-a was denied a moment ago and that denial is cached (10 s): ask for a single
        # item there (other attributes) and the list in team-b.
        name = ctl.list_all(namespace="team-a")[0]["metadata"]["name"]
        code, _, body = ctl.api(API + "/namespaces/team-a/events/" + name, token=None, cert=alice)
        self.assertEqual(code, 200, body[:300])
        self.assertEqual(json.loads(body)["metadata"]["name"], name)
        code, _, _ = ctl.api(API + "/namespaces/team-b/events", token=None, cert=alice)
        self.assertEqual(code, 403)
        sars = [r["spec"] for r in self.reviews_since(seq) if r["resource"] == "subjectaccessreviews"
                and r["spec"]["user"] == "alice"]
        self.assertEqual(len(sars), 2)
        self.assertIn("team-a", sars[0]["groups"])
        # Every authenticated user is in system:authenticated, so discovery (granted to that
        # group) works with a certificate alone.
        self.assertIn("system:authenticated", sars[0]["groups"])
        self.assertEqual(ctl.api("/apis", token=None, cert=alice)[0], 200)
        self.assertEqual(sars[0]["resourceAttributes"]["verb"], "get")
        self.assertEqual(sars[0]["resourceAttributes"]["name"], name)
        self.assertEqual(sars[1]["resourceAttributes"]["namespace"], "team-b")

    # -- fail closed -------------------------------------------------------------------------
    def test_fail_closed_on_review_errors(self):
        self.start_emulator()
        self.emu.events(count=2)
        ctl = self.start_controller()
        self.wait_holds(ctl, 2)
        allowed_before = ctl.metrics().get("eventbuffer_authorization_total", decision="allowed")
        path = API + "/events"
        # TokenReview answers 500: not authenticated (401). Errors are not cached: the next
        # request asks again and gets in.
        self.add_reader("err-token-1", "err-user-1")
        self.emu.fault(kind="review_error", match="tokenreviews", times=1)
        code, _, body = ctl.api(path, token="err-token-1")
        self.assertEqual((code, status_body(body)[1]), (401, "Unauthorized"))
        self.assertEqual(ctl.api(path, token="err-token-1")[0], 200)
        # SubjectAccessReview answers 500: not authorized (403).
        self.add_reader("err-token-2", "err-user-2")
        self.emu.fault(kind="review_error", match="subjectaccessreviews", times=1)
        code, _, body = ctl.api(path, token="err-token-2")
        self.assertEqual((code, status_body(body)[1]), (403, "Forbidden"))
        self.assertEqual(ctl.api(path, token="err-token-2")[0], 200)
        # The API server refuses the controller's own credentials for reviews (401): the
        # controller re-reads its token file and tries once more, refused again: 401.
        self.add_reader("err-token-3", "err-user-3")
        self.emu.fault(kind="review_unauthorized", match="tokenreviews", times=2)
        code, _, body = ctl.api(path, token="err-token-3")
        self.assertEqual((code, status_body(body)[1]), (401, "Unauthorized"))
        self.assertEqual(ctl.api(path, token="err-token-3")[0], 200)
        fired = self.emu.stats()["faults_fired"]
        self.assertEqual(fired.get("review_error", 0), 2)
        self.assertEqual(fired.get("review_unauthorized", 0), 2)
        m = ctl.metrics()
        self.assertEqual(m.get("eventbuffer_auth_review_errors_total", review="tokenreview"), 2)
        self.assertEqual(m.get("eventbuffer_auth_review_errors_total", review="subjectaccessreview"), 1)
        self.assertEqual(m.get("eventbuffer_authorization_total", decision="allowed"), allowed_before + 3)

    def test_fail_closed_on_hanging_reviews(self):
        # The controller gives each review 10 s. A TokenReview and (for another request) a
        # SubjectAccessReview that the API server holds for 30 s end the requests with 401
        # and 403 after about 10 s, both at once, while the probe port keeps answering.
        self.start_emulator()
        self.emu.events(count=2)
        ctl = self.start_controller()
        self.wait_holds(ctl, 2)
        self.add_reader("hang-token-1", "hang-user-1")
        self.add_reader("hang-token-2", "hang-user-2")
        results = {}

        def request(token):
            started = time.monotonic()
            code, _, body = ctl.api(API + "/events", token=token, timeout=25)
            results[token] = (code, status_body(body)[1] if code != 200 else None, time.monotonic() - started)

        self.emu.fault(kind="review_hang", match="tokenreviews", times=1, seconds=30)
        first = threading.Thread(target=request, args=("hang-token-1",))
        first.start()
        deadline = time.time() + 5
        while self.emu.auth_stats()["holding"] < 1:
            self.assertLess(time.time(), deadline, "the TokenReview did not arrive")
            time.sleep(0.05)
        # The second request's TokenReview goes through; its SubjectAccessReview hangs.
        self.emu.fault(kind="review_hang", match="subjectaccessreviews", times=1, seconds=30)
        second = threading.Thread(target=request, args=("hang-token-2",))
        second.start()
        probe_times = []
        while first.is_alive() or second.is_alive():
            started = time.monotonic()
            self.assertEqual(ctl.probe("/readyz", timeout=5)[0], 200)
            probe_times.append(time.monotonic() - started)
            time.sleep(0.5)
        first.join()
        second.join()
        self.assertEqual(results["hang-token-1"][:2], (401, "Unauthorized"))
        self.assertEqual(results["hang-token-2"][:2], (403, "Forbidden"))
        for token, (_, _, elapsed) in results.items():
            self.assertGreater(elapsed, 8, token)   # held until the controller's timeout
            self.assertLess(elapsed, 20, token)     # not until the emulator let go (30 s)
        self.assertLess(max(probe_times), 1.0)
        self.emu.fault(kind="clear")
        m = ctl.metrics()
        self.assertEqual(m.get("eventbuffer_auth_review_errors_total", review="tokenreview"), 1)
        self.assertEqual(m.get("eventbuffer_auth_review_errors_total", review="subjectaccessreview"), 1)

    # -- caches ------------------------------------------------------------------------------
    def test_review_caches(self):
        self.start_emulator()
        self.emu.events(count=3)
        ctl = self.start_controller(cache_ttl="5s")
        self.wait_holds(ctl, 3)
        hits_before = ctl.metrics()

        # N requests in a row with one token within the TTL: one TokenReview, one SAR.
        self.add_reader("cache-token-1", "cache-user-1")
        seq = self.seq()
        n = 20
        started = time.monotonic()
        for _ in range(n):
            self.assertEqual(ctl.api(API + "/namespaces/default/events", token="cache-token-1")[0], 200)
        self.assertLess(time.monotonic() - started, 5, "the requests took longer than the TTL")
        reviews = self.reviews_since(seq)
        self.assertEqual([r["resource"] for r in reviews], ["tokenreviews", "subjectaccessreviews"])
        self.assertEqual(reviews[0]["spec"]["token"], "cache-token-1")
        self.assertEqual(reviews[1]["spec"]["user"], "cache-user-1")
        hits = ctl.metrics()
        for cache in ("token", "sar"):
            grown = (hits.get("eventbuffer_auth_cache_total", cache=cache, result="hit") -
                     hits_before.get("eventbuffer_auth_cache_total", cache=cache, result="hit"))
            self.assertGreaterEqual(grown, n - 1, cache)

        # A burst of concurrent requests with a new token: one review each, shared.
        self.add_reader("cache-token-2", "cache-user-2")
        seq = self.seq()
        self.emu.fault(kind="review_hang", match="tokenreviews", times=1, seconds=1)
        codes = []
        threads = [threading.Thread(target=lambda: codes.append(
            ctl.api(API + "/events", token="cache-token-2")[0])) for _ in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        self.assertEqual(codes, [200] * 8)
        reviews = self.reviews_since(seq)
        self.assertEqual([r["resource"] for r in reviews], ["tokenreviews", "subjectaccessreviews"])
        self.assertGreaterEqual(ctl.metrics().get("eventbuffer_auth_cache_total", cache="token", result="coalesced"), 1)

        # After the TTL the token is reviewed again.
        time.sleep(5.5)
        seq = self.seq()
        self.assertEqual(ctl.api(API + "/namespaces/default/events", token="cache-token-1")[0], 200)
        self.assertEqual([r["resource"] for r in self.reviews_since(seq)], ["tokenreviews", "subjectaccessreviews"])

    # -- kubectl -----------------------------------------------------------------------------
    def kubectl(self, token, *args):
        if not KUBECTL:
            self.skipTest("kubectl is not installed")
        p = subprocess.run([KUBECTL, "--kubeconfig", self.ctl.kubeconfig_for(token),
                            "--cache-dir", os.path.join(self.workdir, "kubectl-cache-" + token), *args],
                           capture_output=True, text=True, timeout=60)
        return p.returncode, p.stdout, p.stderr

    def kubectl_ok(self, *args, token=VIEWER_TOKEN):
        code, out, err = self.kubectl(token, *args)
        self.assertEqual(code, 0, "kubectl %s: %s" % (" ".join(args), err))
        return out

    def start_with_data(self):
        self.start_emulator()
        self.ctl = self.start_controller()
        total = self.load_data()
        self.wait_holds(self.ctl, total)
        return total

    @staticmethod
    def table(out):
        lines = out.rstrip("\n").split("\n")
        return lines[0].split(), lines[1:]

    def test_kubectl_discovery_and_tables(self):
        total = self.start_with_data()
        out = self.kubectl_ok("api-resources", "--api-group=eventbuffer.dev")
        header, rows = self.table(out)
        self.assertEqual(header, ["NAME", "SHORTNAMES", "APIVERSION", "NAMESPACED", "KIND"])
        self.assertEqual([r.split() for r in rows], [["events", "eventbuffer.dev/v1alpha1", "true", "Event"]])

        items = {ns: self.ctl.list_all(namespace=ns) for ns in ("default", "team-a", "team-b", "team-c")}
        out = self.kubectl_ok("get", "events.eventbuffer.dev", "-n", "team-a")
        header, rows = self.table(out)
        self.assertEqual(header, ["LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])
        self.assertEqual(len(rows), len(items["team-a"]))
        for row, item in zip(rows, items["team-a"]):
            cells = row.split(None, 4)
            self.assertEqual(cells[1:4], ["Warning", "BackOff", "pod/" + item["involvedObject"]["name"]])
            self.assertEqual(cells[4], item["message"])

        out = self.kubectl_ok("get", "events.eventbuffer.dev", "-A")
        header, rows = self.table(out)
        self.assertEqual(header, ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"])
        self.assertEqual(len(rows), total)
        self.assertEqual(sorted(r.split()[0] for r in rows),
                         sorted(i["metadata"]["namespace"] for i in self.ctl.list_all()))

        everything = self.ctl.list_all()
        warnings = [i for i in everything if i.get("type") == "Warning"]
        out = self.kubectl_ok("get", "events.eventbuffer.dev", "-A", "--field-selector", "type=Warning")
        rows = self.table(out)[1]
        self.assertEqual(len(rows), len(warnings))
        self.assertEqual(len(rows), 30 + 6)
        self.assertEqual({r.split()[2] for r in rows}, {"Warning"})
        nodes = [i for i in everything if i["involvedObject"].get("kind") == "Node"]
        out = self.kubectl_ok("get", "events.eventbuffer.dev", "-A", "--field-selector", "involvedObject.kind=Node")
        rows = self.table(out)[1]
        self.assertEqual(len(rows), len(nodes))
        self.assertEqual(len(rows), 6)
        self.assertEqual({r.split()[4] for r in rows}, {"node/worker-1"})

        # One occurrence as YAML: the object the API serves.
        item = items["team-b"][0]
        name = item["metadata"]["name"]
        out = self.kubectl_ok("get", "events.eventbuffer.dev", name, "-n", "team-b", "-o", "yaml")
        self.assertIn("apiVersion: eventbuffer.dev/v1alpha1\n", out)
        self.assertIn("kind: Event\n", out)
        self.assertIn("  name: %s\n" % name, out)
        self.assertIn("  namespace: team-b\n", out)
        self.assertIn("  resourceVersion: \"%s\"\n" % item["metadata"]["resourceVersion"], out)
        self.assertIn("message: %s\n" % item["message"], out)
        self.assertEqual(json.loads(self.kubectl_ok("get", "events.eventbuffer.dev", name, "-n", "team-b",
                                                    "-o", "json")), item)
        code, _, err = self.kubectl(VIEWER_TOKEN, "get", "events.eventbuffer.dev", name, "-n", "team-a")
        self.assertNotEqual(code, 0)
        self.assertIn("Error from server (NotFound)", err)

    def test_kubectl_chunked_list(self):
        total = self.start_with_data()
        self.assertGreater(total, 300)
        unpaged = self.kubectl_ok("get", "events.eventbuffer.dev", "-A", "--chunk-size=0", "-o", "name").split()
        code, out, err = self.kubectl(VIEWER_TOKEN, "get", "events.eventbuffer.dev", "-A", "--chunk-size=7",
                                      "-o", "name", "-v=6")
        self.assertEqual(code, 0, err)
        paged = out.split()
        self.assertEqual(len(unpaged), total)
        self.assertEqual(paged, unpaged)
        self.assertEqual(len(set(paged)), total)
        self.assertEqual(unpaged, ["event.eventbuffer.dev/" + n for n in item_names(self.ctl.list_all())])
        # It did page: ceil(total / 7) requests, all but the first with a continue token.
        gets = [line for line in err.splitlines() if "GET https://" in line and "/events?" in line]
        self.assertEqual(len(gets), -(-total // 7))
        self.assertEqual(sum("continue=" in line for line in gets), len(gets) - 1)
        # The same over the raw API as a Table, 50 at a time.
        names, cont = [], None
        while True:
            q = {"limit": 50}
            if cont:
                q["continue"] = cont
            code, _, body = self.ctl.api(API + "/events?" + urllib.parse.urlencode(q), accept=TABLE_ACCEPT)
            self.assertEqual(code, 200)
            doc = json.loads(body)
            self.assertEqual(doc["kind"], "Table")
            names += [row["object"]["metadata"]["name"] for row in doc["rows"]]
            cont = doc["metadata"].get("continue")
            if not cont:
                break
        self.assertEqual(["event.eventbuffer.dev/" + n for n in names], unpaged)

    def test_kubectl_refusals(self):
        self.start_with_data()
        code, _, err = self.kubectl("not-a-token-of-the-policy", "get", "events.eventbuffer.dev", "-A")
        self.assertNotEqual(code, 0)
        self.assertIn("You must be logged in to the server", err)
        code, _, err = self.kubectl(NOBODY_TOKEN, "get", "events.eventbuffer.dev", "-n", "default")
        self.assertNotEqual(code, 0)
        self.assertIn("Error from server (Forbidden)", err)
        self.assertIn('User "nobody" cannot list resource "events" in API group "eventbuffer.dev"', err)
        # The namespace reader: default yes, team-a and all namespaces no.
        out = self.kubectl_ok("get", "events.eventbuffer.dev", "-n", "default", "-o", "name", token=NS_READER_TOKEN)
        self.assertEqual(out.split(), ["event.eventbuffer.dev/" + n
                                       for n in item_names(self.ctl.list_all(namespace="default"))])
        for args in (("-n", "team-a"), ("-A",)):
            code, _, err = self.kubectl(NS_READER_TOKEN, "get", "events.eventbuffer.dev", *args)
            self.assertNotEqual(code, 0, args)
            self.assertIn("Error from server (Forbidden)", err)
            self.assertIn('User "ns-reader"', err)

    # -- continue tokens across replicas -----------------------------------------------------
    def test_continue_token_across_controllers(self):
        # Both controllers must see the same history: no traffic while they start (a list
        # shows only each Event's latest revision), then traffic that both watch.
        self.start_emulator("--scenario", "demo", "--events-per-second", "20")
        self.emu.traffic(0)
        a = self.start_controller(name="controller-a")
        b = self.start_controller(name="controller-b")
        self.emu.traffic(20)
        self.emu.events(count=100, namespace="team-c", repeat=1)
        time.sleep(2)
        self.emu.traffic(0)
        deadline = time.time() + 30
        previous = None
        while True:
            full_a, full_b = a.list_all(), b.list_all()
            names = item_names(full_a)
            if names == item_names(full_b) and names == previous:
                break
            previous = names if names == item_names(full_b) else None
            self.assertLess(time.time(), deadline, "the controllers do not hold the same items")
            time.sleep(0.5)
        total = len(full_a)
        self.assertGreater(total, 240)

        def page(ctl, limit, cont=None, namespace=None):
            q = {"limit": limit}
            if cont:
                q["continue"] = cont
            path = API + ("/namespaces/%s/events" % namespace if namespace else "/events")
            return ctl.api_json(path + "?" + urllib.parse.urlencode(q))

        names, cont, pages = [], None, 0
        while True:
            doc = page((a, b)[pages % 2], 37, cont)   # a, then b, then a, ...
            pages += 1
            names += item_names(doc["items"])
            cont = doc["metadata"].get("continue")
            if not cont:
                break
        self.assertEqual(pages, -(-total // 37))
        self.assertEqual(len(names), len(set(names)))
        self.assertEqual(names, item_names(full_a))
        # A token continues only its own query, and a damaged one is refused.
        first = page(a, 10)["metadata"]["continue"]
        code, _, body = b.api(API + "/namespaces/team-c/events?" + urllib.parse.urlencode(
            {"limit": 10, "continue": first}))
        self.assertEqual((code, status_body(body)[1]), (400, "BadRequest"))
        damaged = first[:-3] + ("AAA" if not first.endswith("AAA") else "BBB")
        code, _, body = b.api(API + "/events?" + urllib.parse.urlencode({"limit": 10, "continue": damaged}))
        self.assertEqual((code, status_body(body)[1]), (400, "BadRequest"))

    # -- the metrics port --------------------------------------------------------------------
    def test_metrics_port_secure_by_default(self):
        self.start_emulator()
        ctl = Controller(self.workdir, self.emu.kubeconfig, serving=self.serving, metrics_secure=True)
        self.controllers.append(ctl)
        ctl.wait_ready()
        code, _, body = ctl.api("/metrics", token=None, port=ctl.metrics_port)
        self.assertEqual((code, status_body(body)[1]), (401, "Unauthorized"))
        code, headers, body = ctl.api("/metrics", token=VIEWER_TOKEN, port=ctl.metrics_port)
        self.assertEqual(code, 200)
        self.assertTrue(headers["content-type"].startswith("text/plain; version=0.0.4"))
        text = body.decode()
        self.assertIn("# TYPE eventbuffer_gray_mode gauge\n", text)
        self.assertIn("# TYPE eventbuffer_auth_cache_total counter\n", text)
        code, _, body = ctl.api("/metrics", token=NOBODY_TOKEN, port=ctl.metrics_port)
        self.assertEqual(code, 403)
        self.assertIn('User "nobody" cannot get path "/metrics"', status_body(body)[3])
        # demo-viewer's right is the path /metrics, not events: it may not list through the
        # metrics port, and the metrics port serves nothing else.
        self.assertEqual(ctl.api(API + "/events", token=VIEWER_TOKEN, port=ctl.metrics_port)[0], 404)
        # Other methods: authenticated and authorized (as the method's verb on the path) first.
        self.assertEqual(ctl.api("/metrics", token=None, method="POST", body=b"x",
                                 port=ctl.metrics_port)[0], 401)
        code, _, body = ctl.api("/metrics", token=VIEWER_TOKEN, method="POST", body=b"x", port=ctl.metrics_port)
        self.assertEqual(code, 403)
        self.assertIn('User "demo-viewer" cannot post path "/metrics"', status_body(body)[3])
        # Plain HTTP to the TLS port is no way around it.
        self.assertNotEqual(http_status("http://127.0.0.1:%d/metrics" % ctl.metrics_port)[0], 200)


class HostileClients(SecureApiBase):
    """Hostile clients against a running controller, while the emulator's demo traffic
    flows: slow headers, a huge header, an announced huge body, clients that do not read
    their (large) list responses. Throughout, the probe port answers /readyz within 1 s,
    the process's RSS stays bounded and the watch keeps ingesting.

    The RSS bound, +50 MB over the idle controller holding the same data, follows from the
    server's limits: each slow connection costs a socket, TLS state and at most a 16 KiB
    header buffer (200 x < 64 KiB ~ 13 MB); the 1 MB header is refused at 16 KiB; the 100 MB
    body is never read; a streamed list holds at most one page of 500 items (~2.5 MB of
    JSON at 4 KiB messages) plus 256 KiB of socket buffer per running handler (4 workers
    ~ 11 MB). Buffering the six non-read lists whole (6 x ~14 MB), or reading the body,
    would exceed it."""

    SLOW = 200
    NON_READERS = 6

    def tls_connect(self, ctl, rcvbuf=None):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect(("127.0.0.1", ctl.secure_port))
        return ctl.ssl_ctx.wrap_socket(sock, server_hostname="127.0.0.1")

    @staticmethod
    def read_response_head(sock, timeout=10):
        sock.settimeout(timeout)
        data = b""
        while b"\r\n" not in data:
            chunk = sock.recv(4096)
            if not chunk:
                break
            data += chunk
        return data

    def test_hostile_clients_do_not_starve_probes(self):
        self.start_emulator("--scenario", "demo", "--events-per-second", "20")
        # ~3000 occurrences of ~4.4 KiB of JSON each: a full list is ~14 MB.
        self.emu.events(count=3000, namespace="bulk", message_bytes=4096)
        # A header timeout longer than the test: every slow-header connection stays open
        # to the end, however long setting up 200 TLS connections takes on a loaded
        # machine (the timeout itself is tested in server_test.cpp).
        ctl = self.start_controller("--header-timeout-seconds", "120", metrics_secure=False)
        deadline = time.time() + 60
        while len(ctl.list_all(namespace="bulk")) < 3000:
            self.assertLess(time.time(), deadline, "the bulk events did not arrive")
            time.sleep(0.5)
        ctl.list_all()   # the allocator has seen one whole list
        rss_before = ctl.rss_kb()
        watch_before = ctl.metrics().total("eventbuffer_watch_events_total")

        probe_times, probe_codes, rss_max = [], [], [rss_before]
        stop = threading.Event()

        def probe_loop():
            while not stop.is_set():
                started = time.monotonic()
                probe_codes.append(ctl.probe("/readyz", timeout=5)[0])
                probe_times.append(time.monotonic() - started)
                rss_max[0] = max(rss_max[0], ctl.rss_kb())
                stop.wait(0.2)

        prober = threading.Thread(target=probe_loop)
        prober.start()
        sockets = []
        try:
            # 200 connections that complete TLS and then send their header a line a second.
            for i in range(self.SLOW):
                s = self.tls_connect(ctl)
                s.sendall(b"GET /apis HTTP/1.1\r\nHost: 127.0.0.1\r\n")
                sockets.append(s)
            # A 1 MB header, sent 8 KiB at a time: 431 once 16 KiB arrived, before the rest.
            big = self.tls_connect(ctl)
            big.sendall(b"GET /apis HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: ")
            sent, answer = 0, b""
            filler = b"a" * 8192
            while sent < 1024 * 1024:
                readable, _, _ = select.select([big], [], [], 0.02)
                if readable or big.pending():
                    break
                try:
                    big.sendall(filler)
                except (ConnectionError, ssl.SSLError, socket.timeout):
                    break
                sent += len(filler)
            answer = self.read_response_head(big)
            big.close()
            self.assertTrue(answer.startswith(b"HTTP/1.1 431"), answer[:100])
            self.assertLess(sent, 1024 * 1024)
            # A 100 MB body announced: 413 without a byte of it sent.
            body = self.tls_connect(ctl)
            body.sendall(b"GET /apis/eventbuffer.dev/v1alpha1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         b"Authorization: Bearer " + VIEWER_TOKEN.encode() + b"\r\n"
                         b"Content-Type: application/json\r\nContent-Length: 104857600\r\n\r\n")
            answer = self.read_response_head(body)
            body.close()
            self.assertTrue(answer.startswith(b"HTTP/1.1 413"), answer[:100])
            # Clients that ask for the whole list and never read it (a small receive
            # buffer, so that the kernel does not take in much of it either).
            for _ in range(self.NON_READERS):
                s = self.tls_connect(ctl, rcvbuf=64 * 1024)
                s.sendall(b"GET /apis/eventbuffer.dev/v1alpha1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                          b"Authorization: Bearer " + VIEWER_TOKEN.encode() + b"\r\n\r\n")
                sockets.append(s)
            # Keep the slow headers trickling while the demo traffic flows.
            until = time.monotonic() + 6
            while time.monotonic() < until:
                for s in sockets[:self.SLOW]:
                    try:
                        s.sendall(b"X-Slow: 1\r\n")
                    except (ConnectionError, ssl.SSLError, OSError):
                        pass
                time.sleep(1)
            # With more non-readers than the port has workers, an API request is still
            # answered at once: a streamed list holds no worker while its client is slow.
            started = time.monotonic()
            code, _, _ = ctl.api(API + "/namespaces/default/events?limit=1", timeout=20)
            api_seconds = time.monotonic() - started
            during = ctl.metrics()
            watch_after = during.total("eventbuffer_watch_events_total")
            # A gauge read at one instant may catch a stream producing its next part or a
            # response's last write finishing: the least of a few reads over a second says
            # whether any handler stays in flight.
            inflight = during.get("eventbuffer_http_requests_inflight", port="secure")
            for _ in range(5):
                if inflight == 0:
                    break
                time.sleep(0.2)
                inflight = min(inflight, ctl.metrics().get("eventbuffer_http_requests_inflight",
                                                           port="secure"))
            connections = during.get("eventbuffer_http_connections_open", port="secure")
            rss_during = ctl.rss_kb()
        finally:
            stop.set()
            prober.join()
            for s in sockets:
                s.close()

        sys.stderr.write("hostile clients: %d probes, slowest %.3f s; RSS %.1f MB before, +%.1f MB at most; "
                         "431 after %d header bytes; watch events %d -> %d; %s requests in flight\n" % (
                             len(probe_times), max(probe_times), rss_before / 1024,
                             (max(rss_max[0], rss_during) - rss_before) / 1024, sent, watch_before, watch_after, inflight))
        self.assertGreater(len(probe_times), 20)
        # The non-readers' lists are streams waiting for their clients: no handler is in
        # flight for them, and another request got its answer meanwhile.
        self.assertEqual(inflight, 0)
        self.assertEqual(code, 200)
        self.assertLess(api_seconds, 10, "an API request waited %.1f s behind the non-readers" % api_seconds)
        self.assertGreaterEqual(connections, self.SLOW + self.NON_READERS)
        self.assertEqual(set(probe_codes), {200})
        self.assertLess(max(probe_times), 1.0, "slowest /readyz: %.3f s" % max(probe_times))
        self.assertGreater(watch_after, watch_before, "the watch stopped ingesting")
        grown_mb = (max(rss_max[0], rss_during) - rss_before) / 1024
        self.assertLess(grown_mb, 50, "RSS grew by %.1f MB" % grown_mb)
        m = ctl.metrics()
        self.assertGreaterEqual(m.get("eventbuffer_http_rejected_total", port="secure", reason="header_too_large"), 1)
        self.assertGreaterEqual(m.get("eventbuffer_http_rejected_total", port="secure", reason="body"), 1)
        # The secure port still serves once the hostile clients are gone (their streams
        # ended when their sockets closed).
        deadline = time.time() + 15
        while True:
            code = ctl.api(API + "/namespaces/default/events?limit=1", timeout=15)[0]
            if code == 200:
                break
            self.assertLess(time.time(), deadline, "secure port answers %d" % code)
            time.sleep(0.5)


if __name__ == "__main__":
    unittest.main(verbosity=2)
