"""Tests of the kube-apiserver emulator: the wire format and every scripted fault."""

import base64
import json
import os
import ssl
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emulator_fixture import Emulator, RawWatch  # noqa: E402


def list_all(emu, path, limit):
    """Pages through a list; returns (pages, items)."""
    pages, items, cont = [], [], ""
    while True:
        sep = "&" if "?" in path else "?"
        q = "%s%slimit=%d" % (path, sep, limit) + ("&continue=" + cont if cont else "")
        status, _, page = emu.get_json(q)
        if status != 200:
            raise AssertionError("list %s -> %d %s" % (q, status, page))
        pages.append(page)
        items += page["items"]
        cont = page["metadata"].get("continue", "")
        if not cont:
            return pages, items


class WireFormatTest(unittest.TestCase):
    """TLS, idle scenario, small watch window, fast bookmarks."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", "idle", "--window", "50", "--bookmark-interval", "0.3")

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()

    def current_rv(self, namespace="nobody-uses-this"):
        status, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % namespace)
        self.assertEqual(status, 200)
        return int(page["metadata"]["resourceVersion"])

    def test_discovery_and_version(self):
        status, _, version = self.emu.get_json("/version", token=None)
        self.assertEqual(status, 200)
        self.assertEqual(version["major"], "1")
        status, _, api = self.emu.get_json("/api")
        self.assertEqual((status, api["kind"], api["versions"]), (200, "APIVersions", ["v1"]))
        status, _, res = self.emu.get_json("/api/v1")
        self.assertEqual(res["kind"], "APIResourceList")
        events = [r for r in res["resources"] if r["name"] == "events"]
        self.assertEqual(len(events), 1)
        self.assertTrue(events[0]["namespaced"])
        self.assertIn("watch", events[0]["verbs"])
        status, _, body = self.emu.get_json("/api/v1/pods")
        self.assertEqual((status, body["kind"], body["reason"]), (404, "Status", "NotFound"))

    def test_list_paging_is_consistent(self):
        ns = "paging"
        created = self.emu.post_events(count=25, namespace=ns)["events"]
        self.assertEqual(len(created), 25)
        status, _, first = self.emu.get_json("/api/v1/namespaces/%s/events?limit=10" % ns)
        self.assertEqual(status, 200)
        self.assertEqual((first["kind"], first["apiVersion"]), ("EventList", "v1"))
        self.assertEqual(len(first["items"]), 10)
        self.assertEqual(first["metadata"]["remainingItemCount"], 15)
        cont = first["metadata"]["continue"]
        token = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
        self.assertEqual(str(token["rv"]), first["metadata"]["resourceVersion"])
        # Changes after the first page must not show up in its continuation.
        self.emu.post_events(count=3, namespace=ns)
        items = list(first["items"])
        while cont:
            status, _, page = self.emu.get_json("/api/v1/namespaces/%s/events?limit=10&continue=%s" % (ns, cont))
            self.assertEqual(status, 200)
            self.assertEqual(page["metadata"]["resourceVersion"], first["metadata"]["resourceVersion"])
            items += page["items"]
            cont = page["metadata"].get("continue", "")
            if not cont:
                self.assertNotIn("remainingItemCount", page["metadata"])
        self.assertEqual(sorted(i["metadata"]["uid"] for i in items), sorted(e["uid"] for e in created))
        for item in items:
            self.assertNotIn("kind", item)
            self.assertNotIn("apiVersion", item)
        keys = [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items]
        self.assertEqual(keys, sorted(keys))
        _, all_items = list_all(self.emu, "/api/v1/namespaces/%s/events" % ns, 7)
        self.assertEqual(len(all_items), 28)

    def test_field_selector_paging(self):
        ns = "selector"
        self.emu.post_events(count=6, namespace=ns, reason="Wanted", type="Warning")
        self.emu.post_events(count=6, namespace=ns, reason="Other")
        _, selected = list_all(self.emu, "/api/v1/namespaces/%s/events?fieldSelector=reason%%3DWanted" % ns, 4)
        self.assertEqual(sorted({i["reason"] for i in selected}), ["Wanted"])
        self.assertEqual(len(selected), 6)
        _, everything = list_all(self.emu, "/api/v1/namespaces/%s/events" % ns, 4)   # same resourceVersion
        self.assertEqual(len(everything), 12)
        _, others = list_all(self.emu, "/api/v1/events?fieldSelector=metadata.namespace%%3D%s,type!%%3DWarning" % ns, 5)
        self.assertEqual(sorted({i["reason"] for i in others}), ["Other"])

    def test_list_item_is_a_realistic_event(self):
        ns = "fields"
        self.emu.post_events(count=1, namespace=ns, name="web-1", reason="BackOff", type="Warning",
                             message="Back-off restarting failed container", fieldPath="spec.containers{web}")
        self.emu.post_events(count=1, kind="Node", name="worker-9", reason="NodeHasDiskPressure")
        status, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % ns)
        item = page["items"][0]
        md = item["metadata"]
        self.assertTrue(md["name"].startswith("web-1."))
        self.assertEqual(md["namespace"], ns)
        for field in ("uid", "resourceVersion", "creationTimestamp"):
            self.assertTrue(md[field])
        inv = item["involvedObject"]
        self.assertEqual((inv["kind"], inv["namespace"], inv["name"], inv["apiVersion"], inv["fieldPath"]),
                         ("Pod", ns, "web-1", "v1", "spec.containers{web}"))
        self.assertEqual((item["reason"], item["type"], item["count"]), ("BackOff", "Warning", 1))
        self.assertEqual(item["source"]["component"], "kubelet")
        self.assertIsNone(item["eventTime"])
        self.assertRegex(item["firstTimestamp"], r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")
        # A cluster-scoped object: no involvedObject.namespace, the Event lives in "default".
        status, _, page = self.emu.get_json("/api/v1/namespaces/default/events?fieldSelector=involvedObject.name%3Dworker-9")
        self.assertEqual(len(page["items"]), 1)
        self.assertNotIn("namespace", page["items"][0]["involvedObject"])
        self.assertEqual(page["items"][0]["involvedObject"]["kind"], "Node")

    def test_expired_continue_token_gets_410(self):
        ns = "expire-continue"
        self.emu.post_events(count=6, namespace=ns)
        status, _, first = self.emu.get_json("/api/v1/namespaces/%s/events?limit=2" % ns)
        cont = first["metadata"]["continue"]
        self.emu.fault(kind="expire_continue", times=1)
        status, _, body = self.emu.get_json("/api/v1/namespaces/%s/events?limit=2&continue=%s" % (ns, cont))
        self.assertEqual(status, 410)
        self.assertEqual((body["kind"], body["apiVersion"], body["status"], body["reason"], body["code"]),
                         ("Status", "v1", "Failure", "Expired", 410))
        self.assertIn("too old to display a consistent list result", body["message"])
        # Only once: the same token works again, and a new list works.
        status, _, _ = self.emu.get_json("/api/v1/namespaces/%s/events?limit=2&continue=%s" % (ns, cont))
        self.assertEqual(status, 200)
        _, items = list_all(self.emu, "/api/v1/namespaces/%s/events" % ns, 2)
        self.assertEqual(len(items), 6)
        # A token whose resourceVersion was compacted away is expired too.
        self.emu.post_events(count=1, namespace=ns)
        self.emu.fault(kind="compact")
        status, _, body = self.emu.get_json("/api/v1/namespaces/%s/events?limit=2&continue=%s" % (ns, cont))
        self.assertEqual((status, body["reason"]), (410, "Expired"))
        status, _, body = self.emu.get_json("/api/v1/events?limit=2&continue=bm90LWEtdG9rZW4")
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))

    def test_watch_added_modified_deleted(self):
        ns = "watch-lines"
        rv = self.current_rv(ns)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=2" % rv, namespace=ns)
        try:
            self.assertEqual(w.status, 200)
            self.assertEqual(w.headers["transfer-encoding"], "chunked")
            self.assertEqual(w.headers["content-type"], "application/json")
            out = self.emu.post_events(count=1, namespace=ns, name="api-0", repeat=2)["events"]
            uid = out[0]["uid"]
            self.emu.post_events(delete={"uids": [uid]})
            self.assertTrue(w.read_until(lambda x: len(x.lines()) >= 4))
            events = w.events()
            self.assertEqual([e["type"] for e in events], ["ADDED", "MODIFIED", "MODIFIED", "DELETED"])
            for e in events:
                self.assertEqual((e["object"]["kind"], e["object"]["apiVersion"]), ("Event", "v1"))
                self.assertEqual(e["object"]["metadata"]["uid"], uid)
            self.assertEqual([e["object"].get("count") for e in events[:3]], [1, 2, 3])
            # DELETED: the last state, stamped with the deletion's own resourceVersion.
            self.assertEqual(events[3]["object"]["count"], 3)
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
            self.assertEqual(rvs, sorted(set(rvs)))
            self.assertGreater(rvs[0], rv)
            self.assertGreaterEqual(w.chunks, 4)
            # timeoutSeconds ends the stream cleanly with the terminating chunk.
            self.assertTrue(w.read_to_end(timeout=10))
            self.assertTrue(w.terminated)
            self.assertEqual(w.partial(), b"")
        finally:
            w.close()

    def test_watch_without_resource_version_starts_with_current_state(self):
        ns = "initial-state"
        created = self.emu.post_events(count=3, namespace=ns)["events"]
        w = self.emu.watch("timeoutSeconds=1", namespace=ns)
        try:
            w.read_to_end()
            events = w.events()
            self.assertEqual([e["type"] for e in events], ["ADDED"] * 3)
            self.assertEqual(sorted(e["object"]["metadata"]["uid"] for e in events),
                             sorted(c["uid"] for c in created))
        finally:
            w.close()

    def test_deprecated_watch_path(self):
        ns = "old-watch-path"
        rv = self.current_rv(ns)
        w = RawWatch(self.emu, "/api/v1/watch/namespaces/%s/events?resourceVersion=%d&timeoutSeconds=1" % (ns, rv),
                     self.emu.token())
        try:
            self.emu.post_events(count=1, namespace=ns)
            w.read_to_end()
            self.assertEqual([e["type"] for e in w.events()], ["ADDED"])
        finally:
            w.close()

    def test_bookmarks_only_when_allowed(self):
        ns = "bookmarks"
        rv = self.current_rv(ns)
        with_bm = self.emu.watch("resourceVersion=%d&allowWatchBookmarks=true&timeoutSeconds=2" % rv, namespace=ns)
        without = self.emu.watch("resourceVersion=%d&timeoutSeconds=2" % rv, namespace=ns)
        try:
            self.emu.post_events(count=1, namespace="elsewhere")
            with_bm.read_to_end()
            without.read_to_end()
            bookmarks = [e for e in with_bm.events() if e["type"] == "BOOKMARK"]
            self.assertGreaterEqual(len(bookmarks), 2)
            for b in bookmarks:
                self.assertEqual((b["object"]["kind"], b["object"]["apiVersion"]), ("Event", "v1"))
                self.assertGreaterEqual(int(b["object"]["metadata"]["resourceVersion"]), rv)
            # The bookmark moves past changes in other namespaces.
            self.assertGreater(int(bookmarks[-1]["object"]["metadata"]["resourceVersion"]), rv)
            self.assertEqual(without.events(), [])
        finally:
            with_bm.close()
            without.close()

    def test_namespace_watch_filters_other_namespaces(self):
        rv = self.current_rv()
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % rv, namespace="ns-a")
        try:
            self.emu.post_events(count=2, namespace="ns-b")
            self.emu.post_events(count=1, namespace="ns-a")
            w.read_to_end()
            self.assertEqual([e["object"]["metadata"]["namespace"] for e in w.events()], ["ns-a"])
        finally:
            w.close()

    def test_too_old_resource_version_gets_error_410(self):
        rv = self.current_rv()
        self.emu.post_events(count=60, namespace="churn")   # the window holds 50 changes
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=5" % rv)
        try:
            w.read_to_end()
            self.assertEqual(w.status, 200)
            events = w.events()
            self.assertEqual(len(events), 1)
            self.assertEqual(events[0]["type"], "ERROR")
            st = events[0]["object"]
            self.assertEqual((st["kind"], st["status"], st["reason"], st["code"]), ("Status", "Failure", "Expired", 410))
            self.assertRegex(st["message"], r"^too old resource version: %d \(\d+\)$" % rv)
            self.assertTrue(w.terminated)
        finally:
            w.close()
        # The newest resourceVersion is still watchable.
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % self.current_rv())
        try:
            w.read_to_end()
            self.assertEqual(w.events(), [])
        finally:
            w.close()

    def test_unauthorized_and_token_rotation(self):
        status, _, body = self.emu.get_json("/api/v1/events", token=None)
        self.assertEqual((status, body["kind"], body["reason"], body["code"]), (401, "Status", "Unauthorized", 401))
        status, _, _ = self.emu.get_json("/api/v1/events", token="wrong")
        self.assertEqual(status, 401)
        old = self.emu.token()
        self.assertEqual(self.emu.get("/api/v1/events", token=old)[0], 200)
        self.emu.control("POST", "rotate-token", {})
        new = self.emu.token()
        self.assertNotEqual(old, new)
        status, _, body = self.emu.get_json("/api/v1/events", token=old)
        self.assertEqual((status, body["reason"]), (401, "Unauthorized"))
        self.assertEqual(self.emu.get("/api/v1/events", token=new)[0], 200)
        with open(self.emu.path("kubeconfig-inline")) as f:
            self.assertIn("token: " + new, f.read())
        # Rewriting the token file directly is picked up as well.
        with open(self.emu.path("token"), "w") as f:
            f.write("hand-written-token\n")
        self.assertEqual(self.emu.get("/api/v1/events", token="hand-written-token")[0], 200)
        self.assertEqual(self.emu.get("/api/v1/events", token=new)[0], 401)
        # Watches check the token too.
        w = self.emu.watch("timeoutSeconds=1", token=new)
        try:
            w.read_to_end()
            self.assertEqual(w.status, 401)
        finally:
            w.close()

    def test_tls_certificate_and_plain_http(self):
        for host in ("127.0.0.1", "localhost"):
            conn = self.emu.connection(host=host)
            conn.request("GET", "/version")
            self.assertEqual(conn.getresponse().status, 200)
            conn.close()
        untrusted = ssl.create_default_context()   # system roots only: must not trust our CA
        conn = self.emu.connection(ssl_ctx=untrusted)
        with self.assertRaises(ssl.SSLCertVerificationError):
            conn.request("GET", "/version")
        conn.close()
        import http.client
        plain = http.client.HTTPConnection("127.0.0.1", self.emu.port, timeout=10)
        plain.request("GET", "/api/v1/events", headers={"Authorization": "Bearer " + self.emu.token()})
        resp = plain.getresponse()
        self.assertEqual(resp.status, 400)
        self.assertIn(b"HTTP request to an HTTPS server", resp.read())
        plain.close()
        self.assertIn("requests", self.emu.stats())   # the control API works over plain HTTP
        with open(self.emu.path("kubeconfig")) as f:
            kc = f.read()
        self.assertIn("server: https://127.0.0.1:%d" % self.emu.port, kc)
        self.assertIn("certificate-authority: " + self.emu.path("ca.crt"), kc)
        self.assertIn("tokenFile: " + self.emu.path("token"), kc)

    def test_unicode_and_large_messages(self):
        ns = "unicode"
        rv = self.current_rv(ns)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=5" % rv, namespace=ns)
        try:
            small = self.emu.post_events(count=5, namespace=ns, unicode=True)["events"]
            big = self.emu.post_events(count=1, namespace=ns, unicode=True, message_bytes=100 * 1024)["events"]
            big_ascii = self.emu.post_events(count=1, namespace=ns, message_bytes=100 * 1024)["events"]
            self.assertTrue(w.read_until(lambda x: len(x.lines()) >= 7))
            wire = w.body
        finally:
            w.close()
        snap = {o["uid"]: o for o in self.emu.snapshot(since_rv=rv)}
        watched = {e["object"]["metadata"]["uid"]: e["object"]["message"] for e in w.events()}
        _, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % ns)
        listed = {i["metadata"]["uid"]: i["message"] for i in page["items"]}
        for e in small + big + big_ascii:
            self.assertEqual(watched[e["uid"]], snap[e["uid"]]["message"])
            self.assertEqual(listed[e["uid"]], snap[e["uid"]]["message"])
        self.assertEqual(len(watched[big[0]["uid"]].encode("utf-8")), 100 * 1024)
        self.assertEqual(len(watched[big_ascii[0]["uid"]].encode("utf-8")), 100 * 1024)
        joined = "".join(watched.values())
        for ch in ("\U0001F680", "\u4e2d", "\n", "\"", "\\", "<", "&", "\u2028"):
            self.assertIn(ch, joined)
        # Go's encoding: UTF-8 kept raw, HTML characters and U+2028 escaped.
        self.assertIn("\u00e9".encode("utf-8"), wire)
        self.assertIn(b"\\u003c", wire)
        self.assertIn(b"\\u0026", wire)
        self.assertIn(b"\\u2028", wire)
        self.assertNotIn(b"<", wire)


class FaultTest(unittest.TestCase):
    """Plain HTTP (--no-tls), so this also covers that mode."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", "idle", "--bookmark-interval", "60", tls=False)

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()

    def setUp(self):
        self.emu.fault(kind="clear")

    def rv(self):
        return int(self.emu.stats()["resource_version"])

    def test_drop_mid_line(self):
        for mode in ("chunk", "raw"):
            with self.subTest(mode=mode):
                w = self.emu.watch("resourceVersion=%d&timeoutSeconds=10" % self.rv())
                try:
                    self.emu.fault(kind="drop_mid_line", after_events=2, times=1, mode=mode)
                    self.emu.post_events(count=4, namespace="drop")
                    w.read_to_end()
                    self.assertTrue(w.eof)
                    self.assertFalse(w.terminated)          # no terminating chunk: a dead connection
                    self.assertEqual(len(w.lines()), 2)
                    self.assertTrue(w.partial().startswith(b'{"type":"ADDED"'))
                    with self.assertRaises(ValueError):
                        json.loads(w.partial())
                finally:
                    w.close()
        self.assertEqual(self.emu.stats()["faults_fired"]["drop_mid_line"], 2)

    def test_drop_mid_line_repeats(self):
        w1 = self.emu.watch("resourceVersion=%d&timeoutSeconds=10" % self.rv())
        self.emu.fault(kind="drop_mid_line", after_events=0, times=2)
        self.emu.post_events(count=1, namespace="drop2")
        w1.read_to_end()
        self.assertEqual((len(w1.lines()), w1.eof), (0, True))
        w2 = self.emu.watch("resourceVersion=%d&timeoutSeconds=10" % (self.rv() - 1))
        w2.read_to_end()
        self.assertEqual((len(w2.lines()), w2.eof, w2.terminated), (0, True, False))
        w3 = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % (self.rv() - 1))
        w3.read_to_end()
        self.assertEqual(len(w3.lines()), 1)
        self.assertTrue(w3.terminated)
        for w in (w1, w2, w3):
            w.close()

    def test_expire_watch_on_open_watch(self):
        rv = self.rv()
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=20" % rv)
        try:
            self.emu.post_events(count=2, namespace="expire")
            self.assertTrue(w.read_until(lambda x: len(x.lines()) >= 2))
            self.emu.fault(kind="expire_watch")
            w.read_to_end(timeout=10)
            events = w.events()
            self.assertEqual([e["type"] for e in events], ["ADDED", "ADDED", "ERROR"])
            self.assertEqual((events[2]["object"]["code"], events[2]["object"]["reason"]), (410, "Expired"))
            self.assertTrue(w.terminated)
        finally:
            w.close()

    def test_expire_watch_after_events_and_next_watch(self):
        self.emu.fault(kind="expire_watch", after_events=3)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=20" % self.rv())
        try:
            self.emu.post_events(count=5, namespace="expire2")
            w.read_to_end(timeout=10)
            self.assertEqual([e["type"] for e in w.events()], ["ADDED"] * 3 + ["ERROR"])
        finally:
            w.close()
        # Armed while nobody watches: the next watch gets it at once.
        etcd_wording = "The resourceVersion for the provided watch is too old."
        self.emu.fault(kind="expire_watch", message=etcd_wording)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=20" % self.rv())
        try:
            w.read_to_end(timeout=10)
            self.assertEqual([e["type"] for e in w.events()], ["ERROR"])
            self.assertEqual(w.events()[0]["object"]["message"], etcd_wording)
        finally:
            w.close()

    def test_poison_watch_line_is_replayed_by_every_watch(self):
        ns = "poison"
        created = self.emu.post_events(count=1, namespace=ns)["events"][0]
        before = int(created["resourceVersion"])
        fired = self.emu.stats()["faults_fired"].get("poison_watch_line", 0)
        self.emu.fault(kind="poison_watch_line")
        bad = self.emu.post_events(modify={"uids": [created["uid"]], "times": 1})["events"][0]
        good = self.emu.post_events(modify={"uids": [created["uid"]], "times": 1})["events"][0]
        # Every watch from before the poisoned revision gets it, with "count" as a string.
        for _ in range(2):
            w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % before, namespace=ns)
            try:
                w.read_to_end(timeout=10)
                events = w.events()
                self.assertEqual([e["object"]["metadata"]["resourceVersion"] for e in events],
                                 [bad["resourceVersion"], good["resourceVersion"]])
                self.assertEqual(events[0]["object"]["count"], "2")
                self.assertEqual(events[1]["object"]["count"], 3)
            finally:
                w.close()
        # A list serves the latest state, which decodes; the snapshot marks the bad revision.
        _, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % ns)
        self.assertEqual([i["count"] for i in page["items"]], [3])
        snap = {o["resourceVersion"]: o for o in self.emu.snapshot()}
        self.assertTrue(snap[bad["resourceVersion"]].get("poisoned"))
        self.assertNotIn("poisoned", snap[good["resourceVersion"]])
        self.assertEqual(self.emu.stats()["faults_fired"]["poison_watch_line"], fired + 1)

    def test_huge_watch_line_comes_before_the_next_line(self):
        ns = "huge"
        before = self.rv()
        fired = self.emu.stats()["faults_fired"].get("huge_watch_line", 0)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=2" % before, namespace=ns)
        try:
            self.emu.fault(kind="huge_watch_line", bytes=3_000_000)
            created = self.emu.post_events(count=2, namespace=ns)["events"]
            w.read_to_end(timeout=20)
            lines = w.lines()
            self.assertEqual(len(lines), 3)
            self.assertEqual(len(lines[0]), 3_000_000)      # exactly `bytes`, newline not counted
            huge = json.loads(lines[0])
            self.assertEqual(huge["type"], "ADDED")
            self.assertTrue(huge["object"]["metadata"]["name"].startswith("huge-watch-line."))
            self.assertEqual(set(huge["object"]["message"]), {"x"})
            # One below the next line's resourceVersion: a version the client already has.
            self.assertEqual(int(huge["object"]["metadata"]["resourceVersion"]),
                             int(created[0]["resourceVersion"]) - 1)
            self.assertEqual([json.loads(x)["object"]["metadata"]["uid"] for x in lines[1:]],
                             [e["uid"] for e in created])
        finally:
            w.close()
        # Only watches carry it: it is not in the history, the snapshot or a list.
        self.assertNotIn("huge-watch-line", json.dumps(self.emu.snapshot()))
        self.assertEqual(self.emu.stats()["faults_fired"]["huge_watch_line"], fired + 1)
        with self.assertRaises(RuntimeError):
            self.emu.fault(kind="huge_watch_line", bytes=10)

    def test_poison_watch_line_in_list_is_served_by_lists_until_the_next_revision(self):
        ns = "poison-list"
        created = self.emu.post_events(count=1, namespace=ns)["events"][0]
        self.emu.fault(kind="poison_watch_line", in_list=True)
        bad = self.emu.post_events(modify={"uids": [created["uid"]], "times": 1})["events"][0]
        # While the poisoned revision is the Event's latest, a list and a GET serve it as is.
        _, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % ns)
        self.assertEqual([(i["metadata"]["resourceVersion"], i["count"]) for i in page["items"]],
                         [(bad["resourceVersion"], "2")])
        _, _, one = self.emu.get_json("/api/v1/namespaces/%s/events/%s" % (ns, created["name"]))
        self.assertEqual(one["count"], "2")
        # The next revision is clean, in lists too.
        good = self.emu.post_events(modify={"uids": [created["uid"]], "times": 1})["events"][0]
        _, _, page = self.emu.get_json("/api/v1/namespaces/%s/events" % ns)
        self.assertEqual([(i["metadata"]["resourceVersion"], i["count"]) for i in page["items"]],
                         [(good["resourceVersion"], 3)])
        snap = {o["resourceVersion"]: o for o in self.emu.snapshot()}
        self.assertTrue(snap[bad["resourceVersion"]].get("poisoned"))
        self.assertNotIn("poisoned", snap[good["resourceVersion"]])

    def test_stale_watch(self):
        before = self.emu.stats()["requests"]["watch"]
        self.emu.fault(kind="stale_watch", times=2)
        self.emu.post_events(count=1, namespace="stale")
        rv = self.rv() - 1
        for _ in range(2):
            w = self.emu.watch("resourceVersion=%d&timeoutSeconds=20" % rv)
            w.read_to_end(timeout=15)
            self.assertEqual(w.status, 200)
            self.assertTrue(w.terminated)      # ended by the server, long before timeoutSeconds
            self.assertEqual(w.lines(), [])
            w.close()
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % rv)
        w.read_to_end()
        self.assertEqual(len(w.lines()), 1)
        w.close()
        stats = self.emu.stats()
        self.assertEqual(stats["requests"]["watch"] - before, 3)
        self.assertEqual([x["outcome"] for x in stats["watches"][-3:]], ["stale", "stale", "timeout"])

    def test_status_429_with_retry_after(self):
        self.emu.fault(kind="status_429", times=2, retry_after=3, match="list")
        for _ in range(2):
            status, headers, body = self.emu.get_json("/api/v1/events")
            self.assertEqual(status, 429)
            self.assertEqual(headers["retry-after"], "3")
            self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "TooManyRequests", 429))
            self.assertEqual(body["details"]["retryAfterSeconds"], 3)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % self.rv())   # match=list spares watches
        self.assertEqual(w.status, 200)
        w.close()
        self.assertEqual(self.emu.get("/api/v1/events")[0], 200)

    def test_status_500(self):
        self.emu.fault(kind="status_500", times=1, match="watch")
        self.assertEqual(self.emu.get("/api/v1/events")[0], 200)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % self.rv())
        self.assertEqual(w.status, 500)
        body = json.loads(w.body)
        self.assertEqual((body["kind"], body["reason"], body["code"]), ("Status", "InternalError", 500))
        w.close()
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % self.rv())
        self.assertEqual(w.status, 200)
        w.close()
        self.emu.fault(kind="status_500", times=1)       # default match: list, watch and get
        self.assertEqual(self.emu.get("/api/v1/events")[0], 500)
        self.assertEqual(self.emu.stats()["faults_fired"]["status_500"], 2)

    def test_compact_makes_old_versions_expire(self):
        rv = self.rv()
        self.emu.post_events(count=3, namespace="compact")
        self.emu.fault(kind="compact")
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=5" % rv)
        w.read_to_end()
        events = w.events()
        self.assertEqual([e["type"] for e in events], ["ERROR"])
        self.assertEqual(events[0]["object"]["code"], 410)
        w.close()
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=1" % self.rv())
        w.read_to_end()
        self.assertEqual(w.events(), [])
        w.close()

    def test_stall_watch(self):
        self.emu.fault(kind="stall_watch", seconds=1)
        w = self.emu.watch("resourceVersion=%d&timeoutSeconds=20" % self.rv())
        self.emu.post_events(count=1, namespace="stall")
        w.read_to_end(timeout=10)
        self.assertEqual((w.status, w.lines(), w.terminated), (200, [], True))
        w.close()

    def test_unknown_fault_is_rejected(self):
        with self.assertRaises(RuntimeError):
            self.emu.fault(kind="no_such_fault")

    def test_stats_and_snapshot(self):
        before = self.emu.stats()
        out = self.emu.post_events(count=2, namespace="snap", repeat=1)["events"]
        self.assertEqual([e["watchType"] for e in out], ["ADDED", "MODIFIED", "ADDED", "MODIFIED"])
        self.emu.get("/api/v1/events")
        after = self.emu.stats()
        self.assertEqual(after["events_total"] - before["events_total"], 4)
        self.assertEqual(after["requests"]["list"] - before["requests"]["list"], 1)
        self.assertEqual(int(after["resource_version"]) - int(before["resource_version"]), 4)
        self.assertGreaterEqual(after["status_codes"]["200"], 1)
        snap = self.emu.snapshot()
        self.assertEqual(len(snap), after["events_total"])
        ids = [(o["uid"], o["resourceVersion"]) for o in snap]
        self.assertEqual(len(ids), len(set(ids)))
        mine = [o for o in snap if o["namespace"] == "snap"]
        self.assertEqual(len(mine), 4)
        self.assertTrue(all(o["key"].startswith("snap/Pod/") for o in mine))
        self.assertEqual(sorted(o["count"] for o in mine), [1, 1, 2, 2])


class ConcurrencyTest(unittest.TestCase):

    def test_many_watchers_see_every_change_in_order(self):
        import threading
        with Emulator("--scenario", "idle", tls=False) as emu:
            rv0 = int(emu.stats()["resource_version"])
            watches = [emu.watch("resourceVersion=%d&timeoutSeconds=30" % rv0) for _ in range(8)]
            writers, per_writer = 4, 60

            def write(i):
                for j in range(per_writer // 3):
                    emu.post_events(count=1, namespace="conc-%d" % i, repeat=2)

            threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(60)
            total = writers * per_writer
            expected = list(range(rv0 + 1, rv0 + total + 1))
            for w in watches:
                try:
                    self.assertTrue(w.read_until(lambda x: len(x.lines()) >= total, timeout=30))
                    rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in w.events()]
                    self.assertEqual(rvs, expected)     # no gap, no duplicate, global order
                finally:
                    w.close()
            snap = emu.snapshot(since_rv=rv0)
            self.assertEqual([int(o["resourceVersion"]) for o in snap], expected)


class FaultScriptTest(unittest.TestCase):

    def test_fault_script_runs_timed_steps(self):
        import tempfile
        steps = [
            {"at": 0, "events": {"count": 2, "namespace": "scripted"}},
            {"at": 0.2, "every": 0.2, "times": 3, "events": {"count": 1, "namespace": "scripted"}},
            {"at": 0.3, "fault": [{"kind": "stale_watch", "times": 2}, {"kind": "status_429", "match": "list"}]},
            {"at": 0.4, "rotate_token": True},
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(steps, f)
        try:
            with Emulator("--scenario", "idle", "--fault-script", f.name, tls=False) as emu:
                first_token = emu.token()
                deadline = time.time() + 20
                while emu.stats()["events_total"] < 5 and time.time() < deadline:
                    time.sleep(0.1)
                time.sleep(0.3)
                stats = emu.stats()
                self.assertEqual(stats["events_total"], 5)
                self.assertEqual(stats["faults_pending"]["stale_watch"], 2)
                self.assertEqual(stats["faults_pending"]["status"], 1)
                self.assertNotEqual(emu.token(), first_token)
        finally:
            os.unlink(f.name)

    def test_chaos_arms_faults_over_time(self):
        with Emulator("--scenario", "idle", "--chaos-interval", "0.2", "--seed", "5", tls=False) as emu:
            first_token = emu.token()
            deadline = time.time() + 20
            while time.time() < deadline:
                stats = emu.stats()
                armed = sum(stats["faults_pending"].values()) + sum(stats["faults_fired"].values())
                if armed >= 2 or (armed >= 1 and emu.token() != first_token):
                    break
                time.sleep(0.1)
            self.assertTrue(armed >= 2 or emu.token() != first_token, stats)


class ScenarioTest(unittest.TestCase):

    def test_demo_traffic_is_realistic(self):
        with Emulator("--scenario", "demo", "--initial-events", "300", "--events-per-second", "0",
                      "--seed", "7", "--ttl", "0", tls=False) as emu:
            snap = emu.snapshot()
            self.assertEqual(len(snap), 300)
            reasons = {o["reason"] for o in snap}
            for r in ("BackOff", "Pulling", "Pulled", "Failed", "FailedScheduling", "Scheduled", "Created",
                      "Started", "NodeHasDiskPressure", "Unhealthy", "FailedMount", "SuccessfulRescale",
                      "LeaderElection", "OOMKilling"):
                self.assertIn(r, reasons)
            kinds = {o["kind"] for o in snap}
            self.assertTrue({"Pod", "Node", "ReplicaSet", "HorizontalPodAutoscaler", "Lease"} <= kinds, kinds)
            repeats = [o for o in snap if o["watchType"] == "MODIFIED" and o["reason"] == "BackOff"]
            self.assertTrue(repeats)
            self.assertTrue(all(o["count"] >= 2 for o in repeats))
            _, all_items = list_all(emu, "/api/v1/events", 500)
            nodes = [i for i in all_items if i["involvedObject"]["kind"] == "Node"]
            self.assertTrue(nodes)
            for n in nodes:
                self.assertNotIn("namespace", n["involvedObject"])
                self.assertEqual(n["metadata"]["namespace"], "default")
            new_style = [i for i in all_items if i["reason"] == "Scheduled"]
            self.assertTrue(new_style)
            self.assertIsNone(new_style[0]["firstTimestamp"])
            self.assertRegex(new_style[0]["eventTime"], r"\.\d{6}Z$")
            sizes = [len(json.dumps(i, separators=(",", ":"))) for i in all_items]
            self.assertTrue(500 < sum(sizes) / len(sizes) < 1500)

    def test_demo_ongoing_traffic_and_ttl(self):
        with Emulator("--scenario", "demo", "--initial-events", "10", "--events-per-second", "50", "--ttl", "1",
                      tls=False) as emu:
            rv = int(emu.stats()["resource_version"])
            w = emu.watch("resourceVersion=%d&timeoutSeconds=3" % rv)
            w.read_to_end(timeout=10)
            w.close()
            types = {e["type"] for e in w.events()}
            self.assertIn("ADDED", types)
            self.assertIn("DELETED", types)        # TTL of 1 s
            self.assertGreater(emu.stats()["deleted_total"], 0)
            emu.control("POST", "traffic", {"events_per_second": 0})
            time.sleep(0.3)
            rv = emu.stats()["events_total"]
            time.sleep(0.5)
            self.assertEqual(emu.stats()["events_total"], rv)

    def test_fast_stream(self):
        n = 3000
        with Emulator("--scenario", "fast-stream", "--stream-events", str(n), tls=True) as emu:
            stats = emu.stats()
            first = int(stats["stream"]["first_resource_version"])
            status, _, page = emu.get_json("/api/v1/events")
            self.assertEqual(page["items"], [])
            self.assertEqual(int(page["metadata"]["resourceVersion"]), first - 1)   # the stream's start
            w = emu.watch("resourceVersion=%d&allowWatchBookmarks=true&timeoutSeconds=2" % (first - 1))
            w.read_to_end(timeout=30)
            w.close()
            events = w.events()
            self.assertEqual(len(events), n + 1)
            self.assertEqual([int(e["object"]["metadata"]["resourceVersion"]) for e in events[:n]],
                             list(range(first, first + n)))
            self.assertEqual(events[n]["type"], "BOOKMARK")
            self.assertEqual(int(events[n]["object"]["metadata"]["resourceVersion"]), first + n - 1)
            sizes = [len(x) + 1 for x in w.lines()[:n]]
            self.assertTrue(850 <= sum(sizes) / n <= 1000, sum(sizes) / n)
            types = [e["type"] for e in events[:n]]
            self.assertGreater(types.count("MODIFIED"), n // 10)
            uids = {}
            for e in events[:n]:
                o = e["object"]
                uid = o["metadata"]["uid"]
                if e["type"] == "MODIFIED":
                    self.assertEqual(o["count"], uids[uid] + 1)
                uids[uid] = o["count"]
            # Watching from the middle of the stream resumes there, with byte-identical lines.
            w2 = emu.watch("resourceVersion=%d&timeoutSeconds=1" % (first + n - 11))
            w2.read_to_end(timeout=10)
            w2.close()
            self.assertEqual(w2.lines(), w.lines()[n - 10:n])
            # Events created after the stream follow it.
            emu.post_events(count=2, namespace="after-stream")
            w3 = emu.watch("resourceVersion=%d&timeoutSeconds=1" % (first + n - 2))
            w3.read_to_end(timeout=10)
            w3.close()
            rvs = [int(e["object"]["metadata"]["resourceVersion"]) for e in w3.events()]
            self.assertEqual(rvs, [first + n - 1, first + n, first + n + 1])

    def test_fast_stream_with_revisions(self):
        n, revisions = 3000, 4   # n a multiple of revisions + 1: every Event complete
        with Emulator("--scenario", "fast-stream", "--stream-events", str(n), "--stream-revisions",
                      str(revisions), tls=False) as emu:
            first = int(emu.stats()["stream"]["first_resource_version"])
            w = emu.watch("resourceVersion=%d&timeoutSeconds=2" % (first - 1))
            w.read_to_end(timeout=30)
            w.close()
            events = [e for e in w.events() if e["type"] != "BOOKMARK"]
            self.assertEqual(len(events), n)
            by_uid = {}
            for pos, e in enumerate(events):
                by_uid.setdefault(e["object"]["metadata"]["uid"], []).append((pos, e))
            self.assertEqual(len(by_uid), n // (revisions + 1))
            changing = ("count", "lastTimestamp")
            spans = []
            for uid, revs in by_uid.items():
                self.assertEqual(len(revs), revisions + 1, uid)
                self.assertEqual([e["type"] for _, e in revs], ["ADDED"] + ["MODIFIED"] * revisions)
                self.assertEqual([e["object"]["count"] for _, e in revs], list(range(1, revisions + 2)))
                rvs = [int(e["object"]["metadata"]["resourceVersion"]) for _, e in revs]
                self.assertEqual(rvs, sorted(set(rvs)), uid)
                stamps = [e["object"]["lastTimestamp"] for _, e in revs]
                self.assertEqual(stamps, sorted(stamps), uid)
                base = revs[0][1]["object"]
                for _, e in revs[1:]:
                    o = e["object"]
                    self.assertEqual(o["metadata"], base["metadata"] | {"resourceVersion": o["metadata"]["resourceVersion"]})
                    self.assertEqual({k: v for k, v in o.items() if k not in changing and k != "metadata"},
                                     {k: v for k, v in base.items() if k not in changing and k != "metadata"})
                spans.append(revs[-1][0] - revs[0][0])
            # Revisions are interleaved with other Events' lines, not back to back.
            self.assertGreater(sum(spans) / len(spans), 10 * revisions)


# ---------------------------------------------------------------------------------------
# Delegated authentication and authorization (TokenReview, SubjectAccessReview, the
# extension-apiserver-authentication ConfigMap, review faults, the generated certificates).
# ---------------------------------------------------------------------------------------

TEST_POLICY = {
    "tokens": {
        "alice-token": {"user": "alice", "uid": "uid-alice", "groups": ["team-a"],
                        "extra": {"scopes": ["read", "write"], "tenant": "blue"}},
        "bob-token": {"user": "bob"},
    },
    "rules": [
        {"name": "ns reader", "users": ["alice"], "verbs": ["get", "list"], "apiGroups": ["eventbuffer.dev"],
         "resources": ["events"], "namespaces": ["team-a", "shared"]},
        {"name": "global viewer", "groups": ["viewers"], "verbs": ["get", "list", "watch"],
         "apiGroups": ["eventbuffer.dev"], "resources": ["events"]},
        {"name": "star namespace", "users": ["carol"], "verbs": ["list"], "apiGroups": ["eventbuffer.dev"],
         "resources": ["events"], "namespaces": ["*"]},
        {"name": "admin", "users": ["root"], "verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
        {"name": "scaler", "users": ["scaler"], "verbs": ["update"], "apiGroups": ["apps"],
         "resources": ["*/scale"]},
        {"name": "log reader", "users": ["dave"], "verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"],
         "resourceNames": ["web-1"]},
        {"name": "metrics", "users": ["bob"], "verbs": ["get"], "nonResourceURLs": ["/metrics"]},
        {"name": "debug", "groups": ["debuggers"], "verbs": ["get", "post"], "nonResourceURLs": ["/debug/*"]},
        {"name": "all urls", "users": ["root"], "verbs": ["*"], "nonResourceURLs": ["*"]},
    ],
}


def res(user, verb, resource, namespace="", group="eventbuffer.dev", groups=None, **extra):
    attrs = {"namespace": namespace, "verb": verb, "group": group, "version": "v1", "resource": resource}
    attrs.update(extra)
    spec = {"user": user, "groups": groups if groups is not None else ["system:authenticated"],
            "resourceAttributes": attrs}
    return spec


def nonres(user, verb, path, groups=None):
    return {"user": user, "groups": groups if groups is not None else ["system:authenticated"],
            "nonResourceAttributes": {"path": path, "verb": verb}}


def openssl(*args):
    import subprocess
    return subprocess.run(["openssl"] + list(args), capture_output=True, text=True)


class AuthReviewTest(unittest.TestCase):
    """TLS; the policy is set through the control API before every test."""

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", "idle")

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()

    def setUp(self):
        self.emu.fault(kind="clear")
        self.emu.control("POST", "auth-policy", TEST_POLICY)

    def allowed(self, spec):
        status, body = self.emu.access_review(spec)
        self.assertEqual(status, 201, body)
        self.assertEqual((body["kind"], body["apiVersion"]), ("SubjectAccessReview", "authorization.k8s.io/v1"))
        self.assertEqual(body["spec"], spec)
        return body["status"]["allowed"]

    # -- TokenReview ----------------------------------------------------------------------
    def test_token_review_of_a_policy_token(self):
        status, body = self.emu.token_review("alice-token")
        self.assertEqual(status, 201)
        self.assertEqual((body["kind"], body["apiVersion"]), ("TokenReview", "authentication.k8s.io/v1"))
        self.assertEqual(body["spec"], {"token": "alice-token"})
        st = body["status"]
        self.assertIs(st["authenticated"], True)
        self.assertEqual(st["user"], {"username": "alice", "uid": "uid-alice",
                                      "groups": ["team-a", "system:authenticated"],
                                      "extra": {"scopes": ["read", "write"], "tenant": ["blue"]}})
        self.assertEqual(st["audiences"], ["https://kubernetes.default.svc.cluster.local"])
        # No uid, no extra: omitted, as the API server's omitempty fields are.
        status, body = self.emu.token_review("bob-token")
        self.assertEqual(body["status"]["user"], {"username": "bob", "groups": ["system:authenticated"]})
        # Audiences asked for are the audiences answered.
        status, _, body = self.emu.post("/apis/authentication.k8s.io/v1/tokenreviews",
                                        {"spec": {"token": "bob-token", "audiences": ["my-api"]}})
        self.assertEqual((status, body["status"]["audiences"]), (201, ["my-api"]))

    def test_token_review_of_an_unknown_token(self):
        status, body = self.emu.token_review("no-such-token")
        self.assertEqual(status, 201)
        st = body["status"]
        self.assertFalse(st.get("authenticated", False))
        self.assertNotIn("authenticated", st)       # false is omitted on the wire (omitempty)
        self.assertEqual(st["user"], {})
        self.assertTrue(st["error"])

    def test_token_review_of_the_emulators_own_token(self):
        status, body = self.emu.token_review(self.emu.token())
        self.assertEqual(status, 201)
        self.assertIs(body["status"]["authenticated"], True)
        self.assertEqual(body["status"]["user"]["username"],
                         "system:serviceaccount:kube-system:eventbuffer-controller")
        self.assertIn("system:authenticated", body["status"]["user"]["groups"])

    def test_review_caller_must_authenticate(self):
        before = self.emu.control("GET", "auth-stats")
        for token in (None, "wrong-token", "alice-token"):
            status, body = self.emu.token_review("alice-token", token=token)
            self.assertEqual((status, body["kind"], body["reason"], body["code"]), (401, "Status", "Unauthorized", 401))
            status, body = self.emu.access_review(res("alice", "get", "events", "team-a"), token=token)
            self.assertEqual(status, 401)
        after = self.emu.control("GET", "auth-stats")
        self.assertEqual(after["tokenreviews"], before["tokenreviews"])
        self.assertEqual(after["subjectaccessreviews"], before["subjectaccessreviews"])
        self.assertEqual(after["counts"]["tokenreviews_caller_unauthorized"]
                         - before["counts"].get("tokenreviews_caller_unauthorized", 0), 3)

    def test_malformed_reviews_are_refused(self):
        e = self.emu
        status, _, body = e.get("/apis/authentication.k8s.io/v1/tokenreviews")
        self.assertEqual(status, 405)
        status, _, body = e.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {}})
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))
        status, _, body = e.post("/apis/authentication.k8s.io/v1/tokenreviews",
                                 {"apiVersion": "authentication.k8s.io/v1beta1", "spec": {"token": "alice-token"}})
        self.assertEqual(status, 400)
        status, _, body = e.post("/apis/authentication.k8s.io/v1/tokenreviews", b"{not json")
        self.assertEqual((status, body["reason"]), (400, "BadRequest"))
        status, _, body = e.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": "alice-token"}},
                                 headers={"Content-Type": "application/vnd.kubernetes.protobuf"})
        self.assertEqual((status, body["reason"]), (415, "UnsupportedMediaType"))
        both = dict(res("alice", "get", "events"), nonResourceAttributes={"path": "/metrics", "verb": "get"})
        for spec in ({"user": "alice"}, both, {"resourceAttributes": {"verb": "get", "resource": "events"}}):
            status, body = e.access_review(spec)
            self.assertEqual((status, body["reason"], body["details"]["kind"]), (422, "Invalid", "SubjectAccessReview"))
        self.assertEqual(e.access_review({"groups": ["viewers"], "resourceAttributes": {
            "verb": "get", "group": "eventbuffer.dev", "resource": "events"}})[0], 201)   # groups alone suffice

    # -- SubjectAccessReview semantics ----------------------------------------------------
    def test_namespace_scoped_and_cluster_scoped_grants(self):
        self.assertTrue(self.allowed(res("alice", "get", "events", "team-a")))
        self.assertTrue(self.allowed(res("alice", "list", "events", "shared")))
        self.assertFalse(self.allowed(res("alice", "list", "events", "team-b")))
        self.assertFalse(self.allowed(res("alice", "list", "events", "")))          # all namespaces / cluster
        self.assertFalse(self.allowed(res("alice", "watch", "events", "team-a")))   # verb
        self.assertFalse(self.allowed(res("alice", "get", "events", "team-a", group="")))  # core events
        self.assertFalse(self.allowed(res("alice", "get", "pods", "team-a")))      # resource
        self.assertFalse(self.allowed(res("mallory", "get", "events", "team-a")))  # subject
        # A rule without namespaces, or with "*", grants every namespace and the cluster scope.
        self.assertTrue(self.allowed(res("carol", "list", "events", "")))
        self.assertTrue(self.allowed(res("carol", "list", "events", "anything")))
        self.assertTrue(self.allowed(res("x", "watch", "events", "", groups=["viewers"])))

    def test_groups_and_wildcards(self):
        self.assertTrue(self.allowed(res("someone", "get", "events", "team-z", groups=["a", "viewers"])))
        self.assertFalse(self.allowed(res("viewers", "get", "events", "team-z", groups=["a"])))  # a user is no group
        self.assertFalse(self.allowed(res("someone", "delete", "events", "team-z", groups=["viewers"])))
        self.assertTrue(self.allowed(res("root", "deletecollection", "secrets", "", group="")))
        self.assertTrue(self.allowed(res("root", "patch", "deployments", "x", group="apps", subresource="scale")))
        # "*/scale" matches the scale subresource of anything in the group, not the resource itself.
        self.assertTrue(self.allowed(res("scaler", "update", "deployments", "x", group="apps", subresource="scale")))
        self.assertFalse(self.allowed(res("scaler", "update", "deployments", "x", group="apps")))
        self.assertFalse(self.allowed(res("scaler", "update", "deployments", "x", group="apps", subresource="status")))
        # "pods/log" with resourceNames: that subresource of that pod only.
        self.assertTrue(self.allowed(res("dave", "get", "pods", "x", group="", subresource="log", name="web-1")))
        self.assertFalse(self.allowed(res("dave", "get", "pods", "x", group="", subresource="log", name="web-2")))
        self.assertFalse(self.allowed(res("dave", "get", "pods", "x", group="", subresource="log")))
        self.assertFalse(self.allowed(res("dave", "get", "pods", "x", group="", name="web-1")))

    def test_non_resource_urls(self):
        self.assertTrue(self.allowed(nonres("bob", "get", "/metrics")))
        self.assertFalse(self.allowed(nonres("bob", "get", "/metrics/extra")))
        self.assertFalse(self.allowed(nonres("bob", "get", "/metricsx")))
        self.assertFalse(self.allowed(nonres("bob", "post", "/metrics")))
        self.assertTrue(self.allowed(nonres("x", "get", "/debug/pprof/heap", groups=["debuggers"])))
        self.assertTrue(self.allowed(nonres("x", "post", "/debug/", groups=["debuggers"])))
        self.assertFalse(self.allowed(nonres("x", "get", "/debug", groups=["debuggers"])))
        self.assertTrue(self.allowed(nonres("root", "delete", "/anything/at/all")))
        # A resource rule never grants a URL and a URL rule never grants a resource.
        self.assertFalse(self.allowed(res("bob", "get", "metrics", "")))
        self.assertFalse(self.allowed(nonres("alice", "get", "/apis/eventbuffer.dev/v1/namespaces/team-a/events",
                                             groups=[])))

    def test_default_discovery_grants_and_switching_them_off(self):
        for path in ("/apis", "/apis/eventbuffer.dev/v1", "/api", "/api/v1", "/version", "/healthz", "/readyz",
                     "/livez"):
            self.assertTrue(self.allowed(nonres("nobody", "get", path)), path)
        self.assertTrue(self.allowed(nonres("", "get", "/healthz", groups=["system:unauthenticated"])))
        self.assertFalse(self.allowed(nonres("", "get", "/apis", groups=["system:unauthenticated"])))
        self.assertFalse(self.allowed(nonres("nobody", "post", "/apis")))
        self.assertFalse(self.allowed(nonres("nobody", "get", "/metrics")))
        self.assertFalse(self.allowed(nonres("nobody", "get", "/apis", groups=["team-a"])))  # not authenticated
        status, body = self.emu.access_review(nonres("nobody", "get", "/apis"))
        self.assertIn("system:discovery", body["status"]["reason"])
        self.emu.control("POST", "auth-policy", dict(TEST_POLICY, defaults=False))
        for path in ("/apis", "/version", "/healthz"):
            self.assertFalse(self.allowed(nonres("nobody", "get", path)), path)
        self.assertTrue(self.allowed(nonres("bob", "get", "/metrics")))      # the policy's own rules still apply

    def test_denial_is_allowed_false_without_denied(self):
        status, body = self.emu.access_review(res("mallory", "get", "events", "team-a"))
        self.assertEqual(status, 201)
        self.assertIs(body["status"]["allowed"], False)
        self.assertNotIn("denied", body["status"])   # RBAC has no opinion to deny with

    # -- the policy at run time -----------------------------------------------------------
    def test_policy_replaced_at_run_time(self):
        self.assertNotIn("authenticated", self.emu.token_review("erin-token")[1]["status"])
        self.assertFalse(self.allowed(res("erin", "get", "events", "x")))
        out = self.emu.control("POST", "auth-policy", {
            "tokens": {"erin-token": {"user": "erin"}},
            "rules": [{"users": ["erin"], "verbs": ["get"], "apiGroups": ["eventbuffer.dev"], "resources": ["events"]}]})
        self.assertEqual(out, {"tokens": 1, "rules": 1, "defaults": True})
        self.assertEqual(self.emu.token_review("erin-token")[1]["status"]["user"]["username"], "erin")
        self.assertTrue(self.allowed(res("erin", "get", "events", "x")))
        self.assertNotIn("authenticated", self.emu.token_review("alice-token")[1]["status"])  # replaced, not merged
        self.assertEqual(self.emu.control("GET", "auth-policy")["policy"]["tokens"], {"erin-token": {"user": "erin"}})

    def test_invalid_policies_are_refused_and_the_old_one_kept(self):
        bad = [
            {"rules": [{"users": ["a"], "verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                        "namespace": ["x"]}]},                                    # typo: namespace
            {"rules": [{"users": ["a"], "verbs": ["get"], "resources": ["pods"]}]},  # no apiGroups
            {"rules": [{"users": ["a"], "verbs": ["get"], "apiGroups": [""], "resources": ["pods"],
                        "nonResourceURLs": ["/x"]}]},                             # both kinds
            {"rules": [{"verbs": ["get"], "nonResourceURLs": ["/x"]}]},           # no subject
            {"rules": [{"users": ["a"], "verbs": [], "nonResourceURLs": ["/x"]}]},  # no verbs
            {"rules": [{"users": "a", "verbs": ["get"], "nonResourceURLs": ["/x"]}]},  # not a list
            {"tokens": {"t": {"groups": ["g"]}}},                                 # no user
            {"tokens": {"t": {"user": "u", "extra": {"k": [1]}}}},                # extra not strings
            {"defaults": "yes"},
            {"token": {}},                                                        # typo: token
            ["not", "an", "object"],
        ]
        for policy in bad:
            with self.assertRaises(RuntimeError, msg=json.dumps(policy)) as ctx:
                self.emu.control("POST", "auth-policy", policy)
            self.assertIn("400", str(ctx.exception))
        self.assertEqual(self.emu.token_review("alice-token")[1]["status"]["user"]["username"], "alice")
        self.assertTrue(self.allowed(res("alice", "get", "events", "team-a")))

    # -- faults ---------------------------------------------------------------------------
    def test_review_error_fault(self):
        self.emu.fault(kind="review-error", match="subjectaccessreviews", times=2)
        spec = res("alice", "get", "events", "team-a")
        for _ in range(2):
            self.assertEqual(self.emu.token_review("alice-token")[0], 201)     # other endpoint untouched
            status, body = self.emu.access_review(spec)
            self.assertEqual((status, body["kind"], body["reason"], body["code"]),
                             (500, "Status", "InternalError", 500))
        self.assertEqual(self.emu.access_review(spec)[0], 201)
        faults = self.emu.control("GET", "faults")
        self.assertEqual((faults["pending"]["review_error"], faults["fired"]["review_error"]), (0, 2))

    def test_review_error_until_cleared_on_both_endpoints(self):
        self.emu.fault(kind="review_error", times=-1)
        self.assertEqual(self.emu.stats()["faults_pending"]["review_until_cleared"], 1)
        for _ in range(5):
            self.assertEqual(self.emu.token_review("alice-token")[0], 500)
            self.assertEqual(self.emu.access_review(res("alice", "get", "events", "team-a"))[0], 500)
        self.emu.fault(kind="clear")
        self.assertEqual(self.emu.token_review("alice-token")[0], 201)
        self.assertEqual(self.emu.access_review(res("alice", "get", "events", "team-a"))[0], 201)

    def test_review_unauthorized_fault(self):
        self.emu.fault(kind="review-unauthorized", match="tokenreviews")
        status, body = self.emu.token_review("alice-token")
        self.assertEqual((status, body["reason"]), (401, "Unauthorized"))
        self.assertEqual(self.emu.token_review("alice-token")[0], 201)
        log = self.emu.control("GET", "auth-stats?last=2")["reviews"]
        self.assertEqual([e["outcome"] for e in log], ["unauthorized", "answered"])

    def test_review_fault_specs_are_checked(self):
        for spec in ({"kind": "review_error", "match": "pods"}, {"kind": "review_hang", "times": 0}):
            with self.assertRaises(RuntimeError):
                self.emu.fault(**spec)

    def test_review_hang_then_answer(self):
        import threading
        self.emu.fault(kind="review-hang", seconds=1.5, match="subjectaccessreviews")
        result = {}

        def ask():
            t0 = time.time()
            result["status"], result["body"] = self.emu.access_review(res("alice", "get", "events", "team-a"))
            result["elapsed"] = time.time() - t0
        t = threading.Thread(target=ask)
        t.start()
        deadline = time.time() + 5
        while self.emu.control("GET", "auth-stats")["holding"] != 1 and time.time() < deadline:
            time.sleep(0.05)
        self.assertEqual(self.emu.control("GET", "auth-stats")["holding"], 1)
        self.assertEqual(self.emu.token_review("alice-token")[0], 201)     # other requests are served meanwhile
        t.join(20)
        self.assertEqual(result["status"], 201)
        self.assertIs(result["body"]["status"]["allowed"], True)
        self.assertGreaterEqual(result["elapsed"], 1.4)
        entry = [e for e in self.emu.control("GET", "auth-stats")["reviews"] if e["resource"] == "subjectaccessreviews"][-1]
        self.assertEqual(entry["outcome"], "answered")
        self.assertGreaterEqual(entry["held_seconds"], 1.4)

    def test_review_hang_until_the_client_closes(self):
        import socket as socketmod
        self.emu.fault(kind="review_hang", seconds=60)
        with self.assertRaises((socketmod.timeout, TimeoutError)):
            self.emu.post("/apis/authentication.k8s.io/v1/tokenreviews", {"spec": {"token": "alice-token"}},
                          timeout=0.5)
        deadline = time.time() + 5
        while time.time() < deadline:
            stats = self.emu.control("GET", "auth-stats")
            if stats["holding"] == 0 and stats["counts"].get("tokenreviews_client_closed"):
                break
            time.sleep(0.05)
        self.assertEqual(stats["holding"], 0)
        last = stats["reviews"][-1]
        self.assertEqual((last["outcome"], last["spec"]), ("client_closed", {"token": "alice-token"}))
        self.assertLess(last["held_seconds"], 10)
        self.assertEqual(self.emu.token_review("alice-token")[0], 201)

    def test_status_faults_with_match_any_reach_reviews(self):
        self.emu.fault(kind="status_500", match="any")
        self.assertEqual(self.emu.token_review("alice-token")[0], 500)
        self.assertEqual(self.emu.token_review("alice-token")[0], 201)

    # -- counters and the request log --------------------------------------------------
    def test_counters_and_review_log(self):
        self.emu.control("POST", "auth-stats/reset")
        base = self.emu.stats()["reviews"]
        self.assertEqual(base, {"tokenreviews": 0, "subjectaccessreviews": 0})
        spec = {"user": "alice", "uid": "uid-alice", "groups": ["team-a", "system:authenticated"],
                "extra": {"scopes": ["read"]},
                "resourceAttributes": {"namespace": "team-a", "verb": "list", "group": "eventbuffer.dev",
                                       "version": "v1", "resource": "events"}}
        self.emu.token_review("alice-token")
        self.emu.token_review("unknown")
        self.emu.access_review(spec)
        self.emu.access_review(nonres("bob", "get", "/metrics"))
        self.emu.access_review({"user": "x"})          # invalid: not answered, but logged
        stats = self.emu.control("GET", "auth-stats")
        self.assertEqual((stats["tokenreviews"], stats["subjectaccessreviews"]), (2, 2))
        self.assertEqual(self.emu.stats()["reviews"], {"tokenreviews": 2, "subjectaccessreviews": 2})
        log = stats["reviews"]
        self.assertEqual([(e["kind"], e["outcome"]) for e in log],
                         [("TokenReview", "answered"), ("TokenReview", "answered"),
                          ("SubjectAccessReview", "answered"), ("SubjectAccessReview", "answered"),
                          ("SubjectAccessReview", "invalid")])
        self.assertEqual(log[2]["spec"], spec)                        # exactly as received
        self.assertEqual(log[2]["status"]["allowed"], True)
        self.assertEqual(log[1]["status"]["user"], {})
        seqs = [e["seq"] for e in log]
        self.assertEqual(seqs, sorted(seqs))
        since = self.emu.control("GET", "auth-stats?since=%d" % seqs[2])["reviews"]
        self.assertEqual([e["seq"] for e in since], seqs[3:])
        self.assertEqual([e["seq"] for e in self.emu.control("GET", "auth-stats?last=2")["reviews"]], seqs[3:])

    # -- the ConfigMap and the certificates ----------------------------------------------
    def test_extension_apiserver_authentication_configmap(self):
        path = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
        status, _, cm = self.emu.get_json(path)
        self.assertEqual(status, 200)
        self.assertEqual((cm["kind"], cm["apiVersion"], cm["metadata"]["name"], cm["metadata"]["namespace"]),
                         ("ConfigMap", "v1", "extension-apiserver-authentication", "kube-system"))
        data = cm["data"]
        with open(self.emu.path("ca.crt")) as f:
            self.assertEqual(data["client-ca-file"], f.read())
        with open(self.emu.path("front-proxy-ca.crt")) as f:
            self.assertEqual(data["requestheader-client-ca-file"], f.read())
        self.assertEqual(json.loads(data["requestheader-allowed-names"]), ["front-proxy-client"])
        self.assertEqual(json.loads(data["requestheader-username-headers"]), ["X-Remote-User"])
        self.assertEqual(json.loads(data["requestheader-group-headers"]), ["X-Remote-Group"])
        self.assertEqual(json.loads(data["requestheader-extra-headers-prefix"]), ["X-Remote-Extra-"])
        self.assertEqual(data["requestheader-username-headers"], '["X-Remote-User"]')
        self.assertEqual(self.emu.get(path, token=None)[0], 401)
        status, _, body = self.emu.get_json("/api/v1/namespaces/kube-system/configmaps/other")
        self.assertEqual((status, body["reason"]), (404, "NotFound"))
        # Changed, removed and restored through the control API.
        rv = int(cm["metadata"]["resourceVersion"])
        try:
            self.emu.control("POST", "auth-configmap", {"data": {"requestheader-client-ca-file": None,
                                                                 "requestheader-allowed-names": "[]"}})
            status, _, cm2 = self.emu.get_json(path)
            self.assertNotIn("requestheader-client-ca-file", cm2["data"])
            self.assertEqual(cm2["data"]["requestheader-allowed-names"], "[]")
            self.assertGreater(int(cm2["metadata"]["resourceVersion"]), rv)
            self.emu.control("POST", "auth-configmap", {"exists": False})
            self.assertEqual(self.emu.get(path)[0], 404)
        finally:
            self.emu.control("POST", "auth-configmap", {"reset": True})
        self.assertEqual(self.emu.get_json(path)[2]["data"], data)

    def test_generated_certificates(self):
        p = self.emu.path
        ok = openssl("verify", "-CAfile", p("front-proxy-ca.crt"), p("front-proxy-client.crt"))
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        ok = openssl("verify", "-CAfile", p("ca.crt"), p("client-alice.crt"))
        self.assertEqual(ok.returncode, 0, ok.stdout + ok.stderr)
        # Neither CA vouches for the other's certificate.
        self.assertNotEqual(openssl("verify", "-CAfile", p("ca.crt"), p("front-proxy-client.crt")).returncode, 0)
        self.assertNotEqual(openssl("verify", "-CAfile", p("front-proxy-ca.crt"), p("client-alice.crt")).returncode, 0)
        subj = openssl("x509", "-in", p("front-proxy-client.crt"), "-noout", "-subject", "-nameopt", "RFC2253")
        self.assertEqual(subj.stdout.strip(), "subject=CN=front-proxy-client")
        subj = openssl("x509", "-in", p("client-alice.crt"), "-noout", "-subject", "-nameopt", "RFC2253")
        self.assertEqual(subj.stdout.strip(), "subject=CN=alice,O=team-a")
        for name in ("front-proxy-client", "client-alice"):
            text = openssl("x509", "-in", p(name + ".crt"), "-noout", "-text").stdout
            self.assertIn("TLS Web Client Authentication", text)
            self.assertIn("CA:FALSE", text)
            self.assertEqual(os.stat(p(name + ".key")).st_mode & 0o777, 0o600)
            # The key is the certificate's.
            pub_cert = openssl("x509", "-in", p(name + ".crt"), "-noout", "-pubkey").stdout
            pub_key = openssl("pkey", "-in", p(name + ".key"), "-pubout").stdout
            self.assertEqual(pub_cert, pub_key)
        self.assertEqual(os.stat(p("front-proxy-ca.key")).st_mode & 0o777, 0o600)
        # The client certificate works in a real TLS handshake (against a throwaway server).
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=p("ca.crt"))
        ctx.verify_mode = ssl.CERT_REQUIRED
        ctx.load_cert_chain(p("server.crt"), p("server.key"))
        self.assertEqual(self._handshake(ctx, p("client-alice.crt"), p("client-alice.key")),
                         ((("organizationName", "team-a"),), (("commonName", "alice"),)))

    def _handshake(self, server_ctx, cert, key):
        import socket as socketmod
        import threading
        listener = socketmod.socket()
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)
        seen = {}

        def serve():
            conn, _ = listener.accept()
            with server_ctx.wrap_socket(conn, server_side=True) as tls:
                seen["subject"] = tls.getpeercert()["subject"]
                tls.sendall(b"x")
        t = threading.Thread(target=serve)
        t.start()
        client = ssl.create_default_context(cafile=self.emu.path("ca.crt"))
        client.load_cert_chain(cert, key)
        with client.wrap_socket(socketmod.create_connection(listener.getsockname()), server_hostname="127.0.0.1") as s:
            s.recv(1)
        t.join(10)
        listener.close()
        return seen.get("subject")


class AuthPolicyFileTest(unittest.TestCase):
    """--auth-policy: the demo policy, YAML, a bad file, and review faults from a fault script."""

    def test_demo_policy(self):
        policy = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo-policy.json")
        with Emulator("--scenario", "idle", "--auth-policy", policy, tls=False) as emu:
            def review(token):
                status, body = emu.token_review(token)
                self.assertEqual(status, 201)
                return body["status"]

            def allowed(user, spec):
                status, body = emu.access_review(spec)
                self.assertEqual(status, 201)
                return body["status"]["allowed"]
            users = {}
            for token, name in (("demo-viewer-token", "demo-viewer"), ("demo-ns-reader-token", "ns-reader"),
                                ("demo-nobody-token", "nobody")):
                st = review(token)
                self.assertEqual((st["authenticated"], st["user"]["username"]), (True, name))
                users[name] = st["user"]

            def ev(name, verb, namespace):
                u = users[name]
                return {"user": u["username"], "uid": u.get("uid", ""), "groups": u["groups"],
                        "resourceAttributes": {"namespace": namespace, "verb": verb, "group": "eventbuffer.dev",
                                               "version": "v1", "resource": "events"}}

            def url(name, path):
                u = users[name]
                return {"user": u["username"], "groups": u["groups"],
                        "nonResourceAttributes": {"path": path, "verb": "get"}}
            for ns in ("", "default", "kube-system"):
                for verb in ("get", "list"):
                    self.assertTrue(allowed("demo-viewer", ev("demo-viewer", verb, ns)))
                    self.assertEqual(allowed("ns-reader", ev("ns-reader", verb, ns)), ns == "default")
                    self.assertFalse(allowed("nobody", ev("nobody", verb, ns)))
            self.assertFalse(allowed("demo-viewer", ev("demo-viewer", "delete", "default")))
            self.assertFalse(allowed("ns-reader", ev("ns-reader", "watch", "default")))
            self.assertTrue(allowed("demo-viewer", url("demo-viewer", "/metrics")))
            self.assertFalse(allowed("ns-reader", url("ns-reader", "/metrics")))
            self.assertFalse(allowed("nobody", url("nobody", "/metrics")))
            self.assertTrue(allowed("nobody", url("nobody", "/healthz")))       # the defaults are on
            self.assertNotIn("authenticated", review("demo-unknown-token"))

    def test_yaml_policy(self):
        try:
            import yaml  # noqa: F401
        except ImportError:
            self.skipTest("python3-yaml is not installed")
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as f:
            f.write("tokens:\n  yaml-token:\n    user: yuki\n    groups: [yaml-group]\n"
                    "rules:\n- groups: [yaml-group]\n  verbs: [get]\n  nonResourceURLs: [/metrics]\n"
                    "defaults: false\n")
        try:
            with Emulator("--scenario", "idle", "--auth-policy", f.name, tls=False) as emu:
                status, body = emu.token_review("yaml-token")
                self.assertEqual(body["status"]["user"]["groups"], ["yaml-group", "system:authenticated"])
                status, body = emu.access_review({"user": "yuki", "groups": ["yaml-group"],
                                                  "nonResourceAttributes": {"path": "/metrics", "verb": "get"}})
                self.assertIs(body["status"]["allowed"], True)
                status, body = emu.access_review({"user": "yuki", "groups": ["system:authenticated"],
                                                  "nonResourceAttributes": {"path": "/apis", "verb": "get"}})
                self.assertIs(body["status"]["allowed"], False)
        finally:
            os.unlink(f.name)

    def test_bad_policy_file_stops_start_up(self):
        import tempfile
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump({"rules": [{"users": ["a"], "verbs": ["get"], "resources": ["pods"]}]}, f)
        try:
            with self.assertRaises(RuntimeError) as ctx:
                Emulator("--scenario", "idle", "--auth-policy", f.name, tls=False, startup_timeout=20)
            self.assertIn("apiGroups", str(ctx.exception))
        finally:
            os.unlink(f.name)

    def test_fault_script_arms_review_faults_and_replaces_the_policy(self):
        import tempfile
        steps = [
            {"at": 0, "auth_policy": {"tokens": {"script-token": {"user": "scripted"}}}},
            {"at": 0, "fault": {"kind": "review-error", "match": "subjectaccessreviews", "times": 3}},
        ]
        with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
            json.dump(steps, f)
        try:
            with Emulator("--scenario", "idle", "--fault-script", f.name, tls=False) as emu:
                deadline = time.time() + 10
                while emu.stats()["faults_pending"]["review_error"] != 3 and time.time() < deadline:
                    time.sleep(0.05)
                self.assertEqual(emu.token_review("script-token")[1]["status"]["user"]["username"], "scripted")
                spec = {"user": "scripted", "nonResourceAttributes": {"path": "/metrics", "verb": "get"}}
                self.assertEqual([emu.access_review(spec)[0] for _ in range(4)], [500, 500, 500, 201])
        finally:
            os.unlink(f.name)


if __name__ == "__main__":
    unittest.main()
