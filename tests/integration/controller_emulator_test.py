#!/usr/bin/env python3
"""Integration tests: the eventbuffer-controller binary against the API-server emulator.

Each test starts the emulator (TLS, bearer token file, tests/emulator/demo-policy.json for
delegated authentication) and the controller on loopback, drives traffic and one fault
through the emulator's control API, and then checks that what the controller serves on its
eventbuffer.dev API (HTTPS, listed with a token allowed to read every namespace) holds
exactly the occurrences the emulator emitted: none lost, none duplicated, same content, and
that the controller did not storm the API server. Watch and buffer state come from /metrics.

Environment: KEB_CONTROLLER (path of the binary), KEB_EMULATOR (path of kube_emulator.py).
Run one test: python3 controller_emulator_test.py ControllerVsEmulator.test_mid_line_drop
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keb_harness import (API, CONTROLLER, Controller, Emulator, group_by_object,  # noqa: E402
                         make_serving_cert)

# The reviews of the test's reads are cached for longer than any test runs, so that after
# the first read the controller sends the emulator no TokenReview or SubjectAccessReview:
# the emulator's request and status counts (e.g. the one 401 of a token rotation) stay
# those of the list/watch client under test.
READ_CACHE_TTL = "10m"


class ControllerVsEmulator(unittest.TestCase):
    emulator_args = ("--scenario", "idle")

    def setUp(self):
        if not os.path.exists(CONTROLLER):
            self.skipTest("controller binary not built: %s" % CONTROLLER)
        self.workdir = tempfile.mkdtemp(prefix="keb-it-")
        self.emu = None
        self.ctl = None
        self.serving = None
        self._problems_before = self._problem_count()

    def _problem_count(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return len(result.errors) + len(result.failures) if result is not None else 0

    def tearDown(self):
        failed = self._problem_count() > self._problems_before
        if self.ctl:
            self.ctl.stop()
        if self.emu:
            self.emu.stop()
        if failed and self.ctl:
            sys.stderr.write("---- controller log ----\n%s\n" % self.ctl.logs())
        if not os.environ.get("KEB_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def controller(self, kubeconfig, *args):
        """The controller against `kubeconfig`, its reads cached (READ_CACHE_TTL)."""
        if self.serving is None:
            self.serving = make_serving_cert(os.path.join(self.workdir, "serving"))
        return Controller(self.workdir, kubeconfig, *args, serving=self.serving, cache_ttl=READ_CACHE_TTL)

    def start(self, emulator_args=None, controller_args=(), ready=True):
        self.emu = Emulator(self.workdir, *(emulator_args or self.emulator_args))
        self.ctl = self.controller(self.emu.kubeconfig, *controller_args)
        if ready:
            self.ctl.wait_ready()

    # -- the central check ---------------------------------------------------------------
    def expected(self, namespace=None):
        """Occurrences the emulator emitted (ADDED/MODIFIED), grouped by key, in order."""
        by_key = {}
        for occ in self.emu.snapshot():
            if namespace is not None and occ["namespace"] != namespace:
                continue
            if occ.get("poisoned"):
                continue  # a revision that does not decode (fault poison_watch_line): never held
            by_key.setdefault(occ["key"], []).append(occ)
        return by_key

    def served(self):
        """What the controller serves: every item of one list over all namespaces, grouped
        by involved object (the emulator's key), in list order."""
        return group_by_object(self.ctl.list_all())

    def assert_converges(self, timeout=30, namespace=None, check_content=True):
        """Waits until the controller serves exactly the emulator's occurrences."""
        deadline = time.time() + timeout
        last = None
        while True:
            expected = self.expected(namespace)
            served = self.served()
            problems = []
            for key, occs in expected.items():
                want = [(o["uid"], o["resourceVersion"]) for o in occs]
                got = [(e["metadata"]["uid"], e["metadata"]["resourceVersion"]) for e in served.get(key, [])]
                if len(set(got)) != len(got):
                    problems.append("%s: duplicated occurrences %r" % (key, got))
                if set(got) != set(want):
                    problems.append("%s: missing %r extra %r" % (key, sorted(set(want) - set(got))[:5],
                                                                 sorted(set(got) - set(want))[:5]))
            unexpected = sorted(set(served) - set(expected))
            if unexpected:
                problems.append("served objects the emulator emitted nothing for: %r" % unexpected[:5])
            total_served = sum(len(v) for v in served.values())
            total_expected = sum(len(v) for v in expected.values())
            if total_served != total_expected:
                problems.append("served %d occurrences in total, emulator emitted %d" % (total_served, total_expected))
            if not problems:
                break
            last = problems
            if time.time() > deadline:
                self.fail("controller did not converge:\n  " + "\n  ".join(last[:10]))
            time.sleep(0.2)
        if check_content:
            for key, occs in expected.items():
                by_id = {(e["metadata"]["uid"], e["metadata"]["resourceVersion"]): e for e in served[key]}
                for o in occs:
                    e = by_id[(o["uid"], o["resourceVersion"])]
                    self.assertEqual(e["metadata"]["name"], "%s.%s" % (o["name"], o["resourceVersion"]), key)
                    self.assertEqual(e["metadata"]["namespace"], o["namespace"], key)
                    self.assertEqual(e["involvedObject"]["kind"], o["kind"], key)
                    self.assertEqual(e["involvedObject"]["name"], o["object"], key)
                    self.assert_message_held(e["message"], o["message"], key)
                    self.assertEqual(e["reason"], o["reason"], key)
                    self.assertEqual(e["type"], o["type"], key)
                    self.assertEqual(e.get("count", 0), o["count"], key)
        return sum(len(v) for v in expected.values())

    # retention.maxMessageBytes by default: longer messages are held truncated, with a marker.
    MAX_MESSAGE_BYTES = 16 * 1024

    def assert_message_held(self, held, sent, key):
        sent_bytes = sent.encode("utf-8")
        if len(sent_bytes) <= self.MAX_MESSAGE_BYTES:
            self.assertEqual(held, sent, key)
            return
        held_bytes = held.encode("utf-8")
        self.assertLessEqual(len(held_bytes), self.MAX_MESSAGE_BYTES, key)
        prefix, sep, marker = held.rpartition("\u2026 [truncated ")
        self.assertEqual(sep, "\u2026 [truncated ", key)
        kept = prefix.encode("utf-8")
        self.assertTrue(sent_bytes.startswith(kept), key)
        self.assertEqual(marker, "%d of %d bytes]" % (len(sent_bytes) - len(kept), len(sent_bytes)), key)

    def metrics(self):
        return self.ctl.metrics()

    def wait_for(self, predicate, timeout=30):
        deadline = time.time() + timeout
        while not predicate():
            if time.time() > deadline:
                self.fail("condition not reached in %ss" % timeout)
            time.sleep(0.1)

    def watch_requests(self):
        return self.emu.stats()["requests"]["watch"]

    def list_requests(self):
        return self.emu.stats()["requests"]["list"]

    # -- tests ---------------------------------------------------------------------------
    def test_steady_traffic(self):
        self.start()
        first = self.emu.events(count=20, name_prefix="web", repeat=2)["events"]
        self.emu.events(modify={"uids": [first[0]["uid"]], "times": 3})
        self.emu.events(count=5, kind="Node", name="worker-9")
        total = self.assert_converges()
        self.assertEqual(total, 20 * 3 + 3 + 5)
        self.assertLessEqual(self.watch_requests(), 2)
        self.assertEqual(self.list_requests(), 1)
        # Per-key order is the occurrence order.
        key = first[0]["key"]
        rvs = [int(e["metadata"]["resourceVersion"]) for e in self.served()[key]]
        self.assertEqual(rvs, sorted(rvs))
        self.assertEqual(len(rvs), 6)

    def test_mid_line_drop(self):
        self.start()
        self.emu.events(count=5)
        self.assert_converges()
        self.emu.fault(kind="drop_mid_line", after_events=7, times=2)
        for _ in range(6):
            self.emu.events(count=5, repeat=1)
            time.sleep(0.2)
        self.assert_converges()
        self.assertEqual(self.emu.stats()["faults_fired"].get("drop_mid_line", 0), 2)
        self.assertLessEqual(self.watch_requests(), 1 + 2 + 2)

    def test_expired_watch(self):
        self.start()
        self.emu.events(count=5)
        self.assert_converges()
        self.emu.fault(kind="expire_watch", after_events=3, times=1)
        # New Events (one revision each) during the gap: the relist must bring them all.
        # (A revision superseded while no watch is open is gone from the API server: a list
        # returns only the latest revision, so no client can recover it.)
        self.emu.events(count=10)
        self.assert_converges()
        self.emu.events(count=4, repeat=2)
        self.assert_converges()
        self.assertEqual(self.emu.stats()["faults_fired"].get("expire_watch", 0), 1)
        self.assertEqual(self.list_requests(), 2)  # the first list and one relist
        self.assertLessEqual(self.watch_requests(), 3)

    def test_stale_watch_trap(self):
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        # End the current watch (410), then answer the next three watches with 200 and an
        # immediate close: the controller must relist with backoff, not reconnect in a loop.
        self.emu.fault(kind="stale_watch", times=3)
        self.emu.fault(kind="expire_watch", after_events=0, times=1)
        self.emu.events(count=4)
        time.sleep(0.5)
        self.emu.events(count=4)
        self.assert_converges(timeout=45)
        # Once the trap is spent and a watch is open again, repeats (MODIFIED) flow as usual.
        self.wait_for(lambda: self.emu.stats()["faults_pending"]["stale_watch"] == 0 and
                      self.emu.stats()["active_watches"] == 1, timeout=30)
        self.emu.events(count=4, repeat=2)
        self.assert_converges()
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("stale_watch", 0), 3)
        self.assertLessEqual(stats["requests"]["watch"], 1 + 3 + 2)
        self.assertLessEqual(stats["requests"]["list"], 1 + 1 + 3 + 1)

    def test_too_many_requests(self):
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        self.emu.fault(kind="status_429", match="watch", times=2, retry_after=1)
        self.emu.fault(kind="drop_mid_line", after_events=1, times=1)
        started = time.time()
        self.emu.events(count=6)
        self.assert_converges()
        elapsed = time.time() - started
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("status_429", 0), 2)
        self.assertGreaterEqual(elapsed, 2.0)  # two Retry-After: 1 waits, honoured
        self.assertLessEqual(stats["requests"]["watch"], 1 + 1 + 2 + 1)
        self.assertEqual(stats["requests"]["list"], 1)

    def test_server_error(self):
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        self.emu.fault(kind="status_500", match="watch", times=3)
        self.emu.fault(kind="drop_mid_line", after_events=1, times=1)
        self.emu.events(count=6, repeat=1)
        self.assert_converges(timeout=40)
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("status_500", 0), 3)
        self.assertLessEqual(stats["requests"]["watch"], 1 + 1 + 3 + 1)

    def start_with_expiring_continue(self, times, timeout):
        """1200 events (more than one page of 500) before the controller starts, and the
        first `times` continuation requests get 410. Expects the controller ready with all
        1200, the fault fired `times` times, the list started `times` + 1 times, each time
        paged from the first page (never one unpaged list); returns the emulator's stats."""
        self.emu = Emulator(self.workdir, *self.emulator_args)
        for _ in range(3):
            self.emu.events(count=400)
        self.emu.fault(kind="expire_continue", times=times)
        self.ctl = self.controller(self.emu.kubeconfig)
        self.ctl.wait_ready(timeout=timeout)
        total = self.assert_converges(timeout=timeout, check_content=False)
        self.assertEqual(total, 1200)
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("expire_continue", 0), times)
        self.assertEqual(stats["requests"]["list_first"], times + 1)
        self.assertEqual(stats["requests"].get("list_unpaged", 0), 0)  # every list paged
        return stats

    def test_expired_continue(self):
        # An expired continue token on the first continuation: the list is done again,
        # paged from the first page, and loses nothing.
        stats = self.start_with_expiring_continue(times=1, timeout=30)
        self.assertLessEqual(stats["requests"]["watch"], 2)
        self.assertEqual(stats["requests"]["list"], 1 * 2 + 3)  # page 1, 410; pages 1 to 3
        self.assertIn("listing again from the first page (limit 500)", self.ctl.logs())

    def test_continue_expires_repeatedly(self):
        # Continued pages get 410 three times in a row (a server that keeps its list
        # snapshots only briefly): the controller pages again from the start each time,
        # backing off after the first, never asks for one unbounded unpaged list, and
        # becomes ready once a paged list gets through.
        stats = self.start_with_expiring_continue(times=3, timeout=30)
        self.assertEqual(stats["requests"]["list"], 3 * 2 + 3)

    def poison_then_relist(self, in_list):
        """Three Events held, then a poisoned revision of the first (the fault; with in_list
        its lists carry it too) and five new Events. Expects the controller to hold every
        occurrence but the poisoned one after rewatching once and relisting once."""
        self.start()
        first = self.emu.events(count=3, namespace="poison")["events"]
        self.assert_converges()
        self.emu.fault(kind="poison_watch_line", in_list=in_list)
        # Without in_list a fine revision follows the poisoned one; with it, the poisoned
        # revision stays the Event's latest.
        self.emu.events(modify={"uids": [first[0]["uid"]], "times": 1 if in_list else 2})
        self.emu.events(count=5, namespace="poison")  # new Events only while no watch is open
        self.assert_converges(timeout=20)
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("poison_watch_line", 0), 1)
        self.assertEqual(stats["requests"]["list_first"], 2)  # the first list and one relist
        self.assertLessEqual(stats["requests"]["watch"], 4)
        self.assertEqual(self.metrics().get("eventbuffer_watch_relists_total"), 2)
        self.assertIn("same watch line failed to decode again", self.ctl.logs())

    def assert_flows_past_poison(self):
        # Past the poison line the watch flows as usual, repeats included.
        self.emu.events(count=2, namespace="poison", repeat=2)
        self.assert_converges()
        self.assertEqual(self.emu.stats()["requests"]["list_first"], 2)

    def test_poison_watch_line(self):
        # One revision in the watch history does not decode ("count" as a string) and every
        # watch from before it replays it; the Event's next revision is fine. Rewatching
        # alone would stall forever: the controller rewatches once, sees the same line fail
        # again, and relists past it. It then holds every occurrence but the poisoned one.
        self.poison_then_relist(in_list=False)
        self.assert_flows_past_poison()

    def test_poison_watch_line_in_list(self):
        # As above, but the poisoned revision stays the Event's latest, so the relist's list
        # carries it too, as a real API server's list would. The list skips that one item
        # and completes, and the watch resumes from the list's resourceVersion, past the line.
        self.poison_then_relist(in_list=True)
        metrics = self.metrics()
        self.assertEqual(metrics.get("eventbuffer_watch_decode_failures_total", source="watch"), 2)
        self.assertEqual(metrics.get("eventbuffer_watch_decode_failures_total", source="list"), 1)
        self.assertIn("list item did not decode, skipped: items[0].count: expected an integer",
                      self.ctl.logs())
        self.assert_flows_past_poison()

    def test_poisoned_item_in_first_list(self):
        # An Event whose latest revision does not decode is in the very first list: the
        # controller skips that item, becomes ready and holds everything else.
        self.emu = Emulator(self.workdir, *self.emulator_args)
        self.emu.events(count=3, namespace="poison")
        self.emu.fault(kind="poison_watch_line", in_list=True)
        self.emu.events(count=1, namespace="poison")  # an ADDED that does not decode
        self.emu.events(count=2, namespace="poison")
        self.ctl = self.controller(self.emu.kubeconfig)
        self.ctl.wait_ready(timeout=10)
        self.assertEqual(self.assert_converges(timeout=10), 5)
        metrics = self.metrics()
        self.assertEqual(metrics.get("eventbuffer_watch_relists_total"), 1)
        self.assertEqual(metrics.get("eventbuffer_watch_decode_failures_total", source="list"), 1)
        self.assertEqual(metrics.get("eventbuffer_watch_decode_failures_total", source="watch"), 0)
        self.assertIn("list item did not decode, skipped: items[", self.ctl.logs())
        self.emu.events(count=2, namespace="poison", repeat=1)
        self.assertEqual(self.assert_converges(), 9)
        self.assertEqual(self.emu.stats()["requests"]["list_first"], 1)

    def test_token_rotation(self):
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        self.emu.post("/rotate-token", {})
        # Cut the current watch so the controller must reconnect with the new token.
        self.emu.fault(kind="drop_mid_line", after_events=1, times=1)
        self.emu.events(count=5, repeat=1)
        self.assert_converges()
        stats = self.emu.stats()
        # The cached token was refused once, re-read from the file at once, and accepted.
        self.assertEqual(stats["status_codes"].get("401", 0), 1)
        self.assertLessEqual(stats["requests"]["watch"], 4)
        # Retried inside the API client: the watcher never saw a failed watch.
        self.assertNotIn("watch failed: status 401", self.ctl.logs())
        self.assertNotIn(open(os.path.join(self.workdir, "token")).read().strip(), self.ctl.logs())

    def test_token_rotation_on_relist(self):
        # The token rotates while the watch stays open; the watch then expires (410) and the
        # relist's first request carries the old token: refused once, the token is re-read
        # from the file and the same list is sent again, and nothing is lost.
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        lists_before = self.list_requests()
        self.emu.post("/rotate-token", {})
        self.emu.fault(kind="expire_watch", after_events=1, times=1)
        self.emu.events(count=6)
        self.assert_converges()
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("expire_watch", 0), 1)
        self.assertEqual(stats["status_codes"].get("401", 0), 1)
        # The refused list and its retry, inside the API client: the watcher never saw a
        # failed list (no backoff round in between).
        self.assertEqual(self.list_requests() - lists_before, 2)
        self.assertNotIn("list failed: status 401", self.ctl.logs())
        self.assertNotIn(open(os.path.join(self.workdir, "token")).read().strip(), self.ctl.logs())

    def test_tls_wrong_ca_refused(self):
        self.emu = Emulator(self.workdir, *self.emulator_args)
        # A kubeconfig that trusts another CA: the controller must refuse the server.
        other = os.path.join(self.workdir, "other")
        os.mkdir(other)
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-subj", "/CN=other-ca", "-keyout", os.path.join(other, "ca.key"),
                        "-out", os.path.join(other, "ca.crt")], check=True, capture_output=True)
        with open(self.emu.kubeconfig) as f:
            text = f.read().replace(os.path.join(self.workdir, "ca.crt"), os.path.join(other, "ca.crt"))
        bad = os.path.join(other, "kubeconfig")
        with open(bad, "w") as f:
            f.write(text)
        self.ctl = self.controller(bad)
        time.sleep(3)
        self.assertIsNone(self.ctl.proc.poll(), "controller must keep retrying, not exit")
        self.assertEqual(self.ctl.probe("/readyz")[0], 503)
        stats = self.emu.stats()
        self.assertEqual(stats["requests"]["list"], 0)  # no HTTP request got through TLS
        self.assertIn("network", self.ctl.logs())
        self.assertLessEqual(self.ctl.logs().count("list failed"), 4)  # backing off

    def test_unicode_and_large_messages(self):
        self.start()
        self.emu.events(count=6, unicode=True, repeat=1)
        self.emu.events(count=3, message_bytes=100_000, repeat=1)
        self.emu.events(count=2, unicode=True, message_bytes=100_000)
        total = self.assert_converges()
        self.assertEqual(total, 12 + 6 + 2)
        big = [o for o in self.emu.snapshot() if len(o["message"]) >= 50_000]
        self.assertEqual(len(big), 8)
        # Held truncated (assert_converges checked each against what was sent), and counted.
        self.assertEqual(self.metrics().get("eventbuffer_truncated_messages_total"), 8)

    def test_huge_watch_line(self):
        # A 100 MB watch line (an Event no API server should ever send; a broken or hostile
        # one may). The controller reads past it without holding it (it keeps at most
        # --max-watch-event-bytes, 4 MiB), counts and logs it, and the watch goes on: the
        # Events after it are held, with no relist and no new watch.
        self.start()
        self.emu.events(count=3)
        self.assert_converges()
        watches_before = self.emu.stats()["requests"]["watch"]
        peak_before = self.ctl.peak_rss_kb()
        self.emu.fault(kind="huge_watch_line", bytes=100_000_000)
        self.emu.events(count=5)
        self.assert_converges(timeout=60)
        stats = self.emu.stats()
        self.assertEqual(stats["faults_fired"].get("huge_watch_line", 0), 1)
        metrics = self.metrics()
        self.assertEqual(metrics.get("eventbuffer_watch_events_skipped_total", source="watch",
                                     reason="too_large"), 1)
        self.assertEqual(metrics.get("eventbuffer_watch_events_skipped_total", source="list",
                                     reason="too_large"), 0)
        self.assertEqual(metrics.get("eventbuffer_watch_relists_total"), 1)
        self.assertEqual(stats["requests"]["watch"], watches_before)  # the same stream
        logs = self.ctl.logs()
        self.assertIn("watch event skipped: 100000000 bytes", logs)
        self.assertIn("ADDED default/huge-watch-line.", logs)
        # Structural, not a timing: the whole line never was in memory at once.
        grown_kb = self.ctl.peak_rss_kb() - peak_before
        self.assertLess(grown_kb, 40 * 1024, "peak RSS grew by %d KiB" % grown_kb)
        # And the watch flows on as before.
        self.emu.events(count=2, repeat=1)
        self.assert_converges()
        self.assertEqual(self.emu.stats()["requests"].get("list_unpaged", 0), 0)

    def test_oversized_list_item(self):
        # An Event whose message (3 MB) is over the page cap is in the first list. With
        # --max-list-page-bytes=1Mi and --list-limit=8 the controller halves the page (it
        # sorts first: namespace "huge") down to limit 1, skips that item alone by its page's
        # continue token, lists the rest at limit 8 again, becomes ready and holds every other
        # Event. Every list request is paged. A 2 MB message later on the watch is within
        # --max-watch-event-bytes (4Mi) and is held.
        self.emu = Emulator(self.workdir, *self.emulator_args)
        self.emu.events(count=5, namespace="ok")
        self.emu.events(count=1, namespace="huge", message_bytes=3_000_000)
        self.emu.events(count=5, namespace="ok")
        self.ctl = self.controller(self.emu.kubeconfig, "--max-list-page-bytes=1Mi", "--list-limit=8")
        self.ctl.wait_ready(timeout=20)
        self.assertEqual(self.assert_converges(namespace="ok"), 10)
        metrics = self.metrics()
        self.assertEqual(metrics.get("eventbuffer_watch_events_skipped_total", source="list",
                                     reason="too_large"), 1)
        self.assertEqual(metrics.get("eventbuffer_watch_events_skipped_total", source="watch",
                                     reason="too_large"), 0)
        self.assertEqual(metrics.get("eventbuffer_watch_relists_total"), 1)
        logs = self.ctl.logs()
        self.assertIn("at limit 8: asking again with limit 4", logs)
        self.assertIn("list item skipped: alone over the cap of --max-list-page-bytes", logs)
        self.assertIn("(huge/", logs)
        stats = self.emu.stats()
        self.assertEqual(stats["requests"].get("list_unpaged", 0), 0)
        self.assertEqual(stats["requests"]["list_first"], 4)  # limits 8, 4, 2, 1; then continued
        self.emu.events(count=1, namespace="ok", message_bytes=2_000_000)
        self.assertEqual(self.assert_converges(namespace="ok"), 11)
        self.assertEqual(self.metrics().get("eventbuffer_watch_events_skipped_total",
                                            source="watch", reason="too_large"), 0)

    def test_namespace_filter(self):
        self.emu = Emulator(self.workdir, *self.emulator_args)
        self.ctl = self.controller(self.emu.kubeconfig, "--namespace", "team-a")
        self.ctl.wait_ready()
        self.emu.events(count=4, namespace="team-a")
        self.emu.events(count=4, namespace="team-b")
        self.assert_converges(namespace="team-a")
        items = self.ctl.list_all()
        self.assertTrue(items)
        self.assertEqual({i["metadata"]["namespace"] for i in items}, {"team-a"})
        self.assertEqual({i["involvedObject"]["namespace"] for i in items}, {"team-a"})
        self.assertEqual(self.ctl.list_all(namespace="team-b"), [])

    def test_sigterm_shutdown(self):
        self.start()
        self.emu.events(count=10)
        self.assert_converges()
        self.assertEqual(self.ctl.probe("/healthz")[0], 200)
        # A query the API cannot answer is a 400 Status, not an empty list.
        code, _, body = self.ctl.api(API + "/events?fieldSelector=spec.bogus%3Dx")
        self.assertEqual(code, 400)
        status = json.loads(body)
        self.assertEqual((status["kind"], status["reason"], status["code"]), ("Status", "BadRequest", 400))
        # The probe port serves the probes only: the old read API is gone.
        self.assertEqual(self.ctl.probe("/nope")[0], 404)
        for old in ("/v1/objects", "/v1/events?kind=Pod", "/v1/status"):
            self.assertEqual(self.ctl.probe(old)[0], 404, old)
        self.assertEqual(self.ctl.probe("/readyz")[0], 200)  # synced
        self.assertEqual(self.metrics().total("eventbuffer_mismatches_total"), 0)
        started = time.time()
        code = self.ctl.stop(signal.SIGTERM, timeout=10)
        self.assertEqual(code, 0)
        self.assertLess(time.time() - started, 5.0)
        last = [line for line in self.ctl.logs().splitlines() if line.strip()][-1]
        record = json.loads(last)
        self.assertIn("stopped", record["msg"])

    def test_config_hot_reload(self):
        config = os.path.join(self.workdir, "config.yaml")
        with open(config, "w") as f:
            f.write("eventBuffer:\n  mode: shadow\n")
        self.start(controller_args=("--config", config))
        self.emu.events(count=5, repeat=1)
        self.assert_converges()
        self.assertEqual(self.metrics().mode(), "shadow")
        # A new file content is picked up by polling; nothing is lost across the switch.
        with open(config + ".tmp", "w") as f:
            f.write("eventBuffer:\n  mode: canary\n  rolloutPercent: 50\n")
        os.replace(config + ".tmp", config)
        self.wait_for(lambda: self.metrics().mode() == "canary", timeout=20)
        self.emu.events(count=5, repeat=1)
        self.assert_converges()
        # An invalid file is rejected and the last good configuration stays.
        with open(config + ".tmp", "w") as f:
            f.write("eventBuffer:\n  mode: atomc\n")
        os.replace(config + ".tmp", config)
        self.wait_for(lambda: "configuration rejected" in self.ctl.logs(), timeout=20)
        self.assertEqual(self.metrics().mode(), "canary")
        # SIGHUP reloads at once.
        with open(config, "w") as f:
            f.write("eventBuffer:\n  mode: atomic\n")
        self.ctl.proc.send_signal(signal.SIGHUP)
        self.wait_for(lambda: self.metrics().mode() == "atomic", timeout=20)
        self.emu.events(count=5, repeat=1)
        total = self.assert_converges()
        self.assertEqual(total, 30)
        self.assertEqual(self.metrics().total("eventbuffer_mismatches_total"), 0)

    def test_command_line_errors(self):
        def run(*args):
            p = subprocess.run([CONTROLLER, *args], capture_output=True, text=True, timeout=20)
            return p.returncode, p.stdout + p.stderr
        code, out = run("--bogus")
        self.assertEqual(code, 2)
        self.assertIn("--bogus", out)
        code, out = run("--version")
        self.assertEqual(code, 0)
        self.assertIn("eventbuffer-controller", out)
        good = os.path.join(self.workdir, "good.yaml")
        bad = os.path.join(self.workdir, "bad.yaml")
        with open(good, "w") as f:
            f.write("eventBuffer:\n  mode: shadow\n  rolloutPercent: 0\n")
        with open(bad, "w") as f:
            f.write("eventBuffer:\n  mode: shadow\n  rolloutPercent: 120\n")
        self.assertEqual(run("--check-config", good), (0, "OK\n"))
        code, out = run("--check-config", bad)
        self.assertEqual(code, 1)
        self.assertIn("rolloutPercent", out)
        code, out = run("--kubeconfig", os.path.join(self.workdir, "absent"), "--metrics-bind-address", "0",
                        "--health-probe-bind-address", "127.0.0.1:0", "--secure-port", "0")
        self.assertEqual(code, 1)
        self.assertIn("cannot read", out)


if __name__ == "__main__":
    unittest.main(verbosity=2)
