#!/usr/bin/env python3
"""Integration tests of the bounded EventBuffer: the eventbuffer-controller binary against
the API-server emulator, with small retention bounds set in its configuration file.

  test_huge_messages       1,000 Events with 1 MiB messages arrive by watch: the controller
                           keeps running (same process), its RSS stays within baseline +
                           retention.maxBytes (8 MiB) + a margin, the record bytes within the budget,
                           every message is counted as truncated and is served with the marker.
  test_far_future_times    Events dated 9999 (lastTimestamp, or eventTime) are aged out
                           maxAge + maxClockSkew after they arrived, while an Event created
                           later stays; while held they are served with their own timestamps.
  test_namespace_flood     100,000 Events on distinct objects in one namespace against
                           retention.maxEvents 20,000: the 100 Events of another namespace all
                           stay held, and the evictions are counted as namespace_share.

The controller is started (and ready) before the Events are created, so they arrive by
watch; nothing here depends on a relist.

Environment: KEB_CONTROLLER (path of the binary), KEB_EMULATOR (path of kube_emulator.py).
Run one test: python3 bounded_test.py BoundedBuffer.test_far_future_times
"""

import os
import shutil
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keb_harness import API, CONTROLLER, Controller, Emulator, make_serving_cert  # noqa: E402

MARKER = "\u2026 [truncated "
MiB = 1 << 20


class BoundedBuffer(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(CONTROLLER):
            self.skipTest("controller binary not built: %s" % CONTROLLER)
        self.workdir = tempfile.mkdtemp(prefix="keb-bounded-")
        self.emu = None
        self.ctl = None

    def tearDown(self):
        outcome = getattr(self, "_outcome", None)
        result = getattr(outcome, "result", None)
        failed = bool(result and (result.errors or result.failures))
        if self.ctl:
            self.ctl.stop()
        if self.emu:
            self.emu.stop()
        if failed and self.ctl:
            sys.stderr.write("---- controller log ----\n%s\n" % self.ctl.logs())
        if not os.environ.get("KEB_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def start(self, retention, emulator_args=(), controller_args=()):
        """The emulator, then the controller with `retention` (YAML lines under
        eventBuffer.retention) and a retention pass every second; waits until it is ready."""
        config = os.path.join(self.workdir, "config.yaml")
        with open(config, "w") as f:
            f.write("eventBuffer:\n  mode: atomic\n  retention:\n")
            for key, value in retention.items():
                f.write("    %s: %s\n" % (key, value))
        self.emu = Emulator(self.workdir, "--scenario", "idle", "--no-managed-fields", *emulator_args)
        serving = make_serving_cert(os.path.join(self.workdir, "serving"))
        self.ctl = Controller(self.workdir, self.emu.kubeconfig, "--config", config,
                              "--maintenance-interval-seconds", "1", "--log-level", "info",
                              *controller_args, serving=serving, cache_ttl="10m")
        self.ctl.wait_ready()
        self.pid = self.ctl.proc.pid

    def assert_alive(self):
        self.assertIsNone(self.ctl.proc.poll(), "controller exited:\n%s" % self.ctl.logs())
        self.assertEqual(self.ctl.proc.pid, self.pid)
        self.assertEqual(self.ctl.probe("/healthz")[0], 200)

    def wait_for(self, what, predicate, timeout):
        deadline = time.time() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.time() > deadline:
                self.fail("%s: not reached in %ss" % (what, timeout))
            time.sleep(0.2)

    def watched_added(self):
        return self.ctl.metrics().get("eventbuffer_watch_events_total", type="ADDED") or 0

    # -----------------------------------------------------------------------------------
    def test_huge_messages(self):
        budget = 8 * MiB
        self.start({"maxBytes": "8Mi"})
        metrics = self.ctl.metrics()
        self.assertEqual(metrics.get("eventbuffer_truncated_messages_total"), 0)
        baseline_kb = self.ctl.rss_kb()

        # The highest RSS seen while the Events stream in.
        peak = [baseline_kb]
        done = threading.Event()

        def sample():
            while not done.is_set():
                try:
                    peak[0] = max(peak[0], self.ctl.rss_kb())
                except (OSError, AssertionError):
                    return
                time.sleep(0.05)
        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            message = ("m" * 61 + "\n") * (MiB // 62) + "x" * (MiB % 62)
            self.assertEqual(len(message.encode()), MiB)
            for batch in range(10):
                answer = self.emu.post("/events", {"count": 100, "namespace": "big", "name_prefix": "huge-%d" % batch,
                                                   "reason": "Huge", "message": message, "summary": True})
                self.assertEqual(answer["created"], 100)
            self.wait_for("1000 ADDED watch events", lambda: self.watched_added() >= 1000, timeout=120)
            self.wait_for("1000 messages truncated",
                          lambda: self.ctl.metrics().get("eventbuffer_truncated_messages_total") == 1000, timeout=30)
        finally:
            done.set()
            sampler.join()

        self.assert_alive()
        self.assertEqual(self.emu.stats()["requests"]["list_first"], 1,
                         "the Events must arrive by watch, not by a relist")
        # Budget: the records within maxBytes; the process within baseline + budget + margin.
        # Margin: the watch reads 1 MiB lines (a line buffer and its decoded copy), the atomic
        # backend's own structures and the indexes for 1,000 occurrences, and the allocator
        # keeping freed pages: 48 MiB.
        margin_kb = 48 * 1024
        metrics = self.ctl.metrics()
        record_bytes = metrics.get("eventbuffer_record_memory_bytes")
        self.assertIsNotNone(record_bytes)
        sys.stderr.write("RSS baseline %d KiB, peak %d KiB; record bytes %d (budget %d)\n"
                         % (baseline_kb, peak[0], record_bytes, budget))
        self.assertLessEqual(record_bytes, budget)
        self.assertLessEqual(peak[0], baseline_kb + budget // 1024 + margin_kb,
                             "peak RSS %d KiB, baseline %d KiB" % (peak[0], baseline_kb))
        # 1,000 truncated records of ~16 KiB each are about 16 MiB, twice the budget: the
        # oldest went by budget (one namespace only: no namespace is over a fair share).
        self.assertEqual(metrics.get("eventbuffer_truncated_messages_total"), 1000)
        self.assertGreater(metrics.get("eventbuffer_evictions_total", reason="budget"), 0)
        self.assertEqual(metrics.get("eventbuffer_evictions_total", reason="namespace_share"), 0)

        # Read one back through the API: the message is cut with the marker, within 16 KiB.
        items = self.ctl.list_all(namespace="big")
        self.assertGreater(len(items), 0)
        self.assertLess(len(items), 1000)
        item = items[-1]
        held = item["message"]
        self.assertLessEqual(len(held.encode("utf-8")), 16 * 1024)
        prefix, sep, tail = held.rpartition(MARKER)
        self.assertEqual(sep, MARKER)
        self.assertTrue(message.startswith(prefix))
        self.assertEqual(tail, "%d of %d bytes]" % (MiB - len(prefix.encode()), MiB))
        one = self.ctl.api_json(API + "/namespaces/big/events/" + item["metadata"]["name"])
        self.assertEqual(one["message"], held)

    # -----------------------------------------------------------------------------------
    def test_far_future_times(self):
        max_age, skew = 20.0, 5.0
        self.start({"maxAge": "20s", "maxClockSkew": "5s"})
        future = "9999-12-31T23:59:59Z"
        future_micro = "9999-12-31T23:59:59.000000Z"
        sent_at = time.time()
        self.emu.post("/events", {"count": 4, "namespace": "skewed", "name_prefix": "old-style",
                                  "first_timestamp": future, "last_timestamp": future, "summary": True})
        self.emu.post("/events", {"count": 3, "namespace": "skewed", "name_prefix": "new-style", "new_style": True,
                                  "event_time": future_micro, "summary": True})
        self.wait_for("7 far-future Events held", lambda: len(self.ctl.list_all(namespace="skewed")) == 7, timeout=20)
        held_at = time.time()

        # While held, the API shows the timestamps as sent.
        for item in self.ctl.list_all(namespace="skewed"):
            name = item["involvedObject"]["name"]
            if name.startswith("old-style"):
                self.assertEqual(item["lastTimestamp"], future, name)
                self.assertEqual(item["firstTimestamp"], future, name)
            else:
                self.assertEqual(item["eventTime"], future_micro, name)

        # A normal Event created later, in another namespace.
        time.sleep(max(0.0, sent_at + 10 - time.time()))
        self.emu.post("/events", {"count": 1, "namespace": "recent", "name_prefix": "now", "summary": True})
        self.wait_for("the recent Event held", lambda: len(self.ctl.list_all(namespace="recent")) == 1, timeout=10)
        self.assertEqual(len(self.ctl.list_all(namespace="skewed")), 7)

        # Gone maxAge + maxClockSkew after they arrived (+ one retention pass), not earlier.
        gone_at = self.wait_for("far-future Events aged out",
                                lambda: time.time() if not self.ctl.list_all(namespace="skewed") else None,
                                timeout=held_at + max_age + skew + 10 - time.time())
        self.assertGreaterEqual(gone_at, sent_at + max_age + skew - 0.5,
                                "aged out %.1fs after they were sent" % (gone_at - sent_at))
        self.assertLessEqual(gone_at, held_at + max_age + skew + 1 + 4,
                             "aged out %.1fs after they were held" % (gone_at - held_at))
        recent = self.ctl.list_all(namespace="recent")
        self.assertEqual(len(recent), 1)
        self.assertEqual(self.ctl.metrics().get("eventbuffer_evictions_total", reason="age"), 7)
        self.assert_alive()

    # -----------------------------------------------------------------------------------
    def test_namespace_flood(self):
        flood, quiet = 100_000, 100
        self.start({"maxEvents": 20000}, emulator_args=("--window", "250000"))
        self.emu.post("/events", {"count": quiet, "namespace": "quiet", "name_prefix": "calm", "summary": True})
        self.wait_for("the quiet namespace held", lambda: len(self.ctl.list_all(namespace="quiet")) == quiet,
                      timeout=20)
        for batch in range(10):
            answer = self.emu.post("/events", {"count": flood // 10, "namespace": "flood",
                                               "name_prefix": "flood-%d" % batch, "summary": True})
            self.assertEqual(answer["created"], flood // 10)
        self.wait_for("every Event watched", lambda: self.watched_added() >= flood + quiet, timeout=120)
        # One retention pass after the last append brings the buffer within maxEvents.
        self.wait_for("within maxEvents",
                      lambda: (self.ctl.metrics().get("eventbuffer_events", backend="atomic") or 0) <= 20000,
                      timeout=20)
        self.assertEqual(self.emu.stats()["requests"]["list_first"], 1, "the Events must arrive by watch")

        # The quiet namespace keeps every Event, the flooding one is cut to the budget.
        held_quiet = self.ctl.list_all(namespace="quiet")
        self.assertEqual(len(held_quiet), quiet)
        self.assertEqual({i["involvedObject"]["name"] for i in held_quiet},
                         {"calm-%d" % n for n in range(quiet)})
        held_flood = len(self.ctl.list_all(namespace="flood"))
        self.assertLessEqual(held_flood, 20000 - quiet)
        self.assertGreater(held_flood, 0)
        # The flood's newest Events are the ones kept.
        # (The emulator names the n-th Event's object <name_prefix>-<n>, n counted from 0.)
        last = "flood-9-%d" % (flood + quiet - 1)
        newest = self.ctl.list_all(namespace="flood", fieldSelector="involvedObject.name=" + last)
        self.assertEqual(len(newest), 1)
        metrics = self.ctl.metrics()
        evicted = metrics.get("eventbuffer_evictions_total", reason="namespace_share")
        self.assertGreaterEqual(evicted, flood - (20000 - quiet))
        self.assertEqual(evicted + held_flood, flood)
        self.assertEqual(metrics.get("eventbuffer_evictions_total", reason="age"), 0)

        # A relist brings back all 100,100 Events the API server still has: the evicted part
        # of the flood comes in again, and goes again; the quiet namespace stays whole.
        relists = metrics.get("eventbuffer_watch_relists_total")
        self.emu.fault(kind="expire_watch", after_events=0, times=1, compact=True)
        self.wait_for("a relist", lambda: self.ctl.metrics().get("eventbuffer_watch_relists_total") > relists,
                      timeout=30)
        self.wait_for("the relist's list complete", lambda: self.ctl.logs().count('"list complete: ') >= 2,
                      timeout=90)
        self.assertIn("list complete: %d events" % (flood + quiet), self.ctl.logs())
        self.wait_for("within maxEvents after the relist",
                      lambda: (self.ctl.metrics().get("eventbuffer_events", backend="atomic") or 0) <= 20000,
                      timeout=30)
        self.assertEqual(len(self.ctl.list_all(namespace="quiet")), quiet)
        self.assertLessEqual(len(self.ctl.list_all(namespace="flood")), 20000 - quiet)
        self.assertEqual(self.emu.stats()["requests"]["list_first"], 2)
        sys.stderr.write("evictions by namespace_share: %d after the flood, %d after the relist\n"
                         % (evicted, self.ctl.metrics().get("eventbuffer_evictions_total", reason="namespace_share")))
        self.assert_alive()


if __name__ == "__main__":
    unittest.main(verbosity=2)
