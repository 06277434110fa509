#!/usr/bin/env python3
"""The SIGTERM sequence of a replica behind a Service (--shutdown-delay) with --data-dir.

The emulator runs the demo traffic; the controller keeps its history in --data-dir and has
--shutdown-delay 3s. On SIGTERM:
  - /readyz turns non-200 at once (within 0.5 s), so the endpoints move away;
  - the eventbuffer.dev API (HTTPS, delegated authentication) and /metrics go on answering
    during the delay, and /livez stays 200 (shutting down is not dead);
  - the process exits 0 after the delay and within the delay plus a few seconds, having
    logged each step;
  - a restart on the same --data-dir becomes ready only after its restore and its first
    list, and holds every occurrence served before the exit (zero loss), read back from
    the disk (eventbuffer_store_occurrences_total{op="restored"}).
A second SIGTERM during a long delay cuts it short, and the exit is still clean.

Environment: KEB_CONTROLLER (the binary), KEB_EMULATOR (kube_emulator.py).
Run one test: python3 shutdown_test.py SigtermShutdown.test_delay_then_flush_loses_nothing
"""

import os
import shutil
import signal
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keb_harness import API, CONTROLLER, Controller, Emulator, make_serving_cert  # noqa: E402

DELAY_S = 3.0
READY_FAILS_WITHIN_S = 0.5
EXIT_MARGIN_S = 4.0  # the watch stops and the store flushes in well under a second


class ReadyzRecorder(threading.Thread):
    """Polls /readyz every 20 ms and records (monotonic time, status)."""

    def __init__(self, ctl):
        super().__init__(daemon=True)
        self.ctl = ctl
        self.samples = []
        self.done = threading.Event()

    def run(self):
        while not self.done.is_set():
            status, _ = self.ctl.probe("/readyz", timeout=1)
            self.samples.append((time.monotonic(), status))
            time.sleep(0.02)

    def first_not_ok_after(self, t0):
        return next((t for t, s in self.samples if t >= t0 and s != 200), None)


class SigtermShutdown(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(CONTROLLER):
            self.skipTest("controller binary not built: %s" % CONTROLLER)
        self.workdir = tempfile.mkdtemp(prefix="keb-shutdown-")
        self.data_dir = os.path.join(self.workdir, "data")
        self.serving = make_serving_cert(os.path.join(self.workdir, "serving"))
        self.emu = Emulator(self.workdir, "--scenario", "demo", "--events-per-second", "80",
                            "--initial-events", "60", "--ttl", "0", "--seed", "5")
        self.ctls = []
        self._problems_before = self._problem_count()

    def _problem_count(self):
        result = getattr(getattr(self, "_outcome", None), "result", None)
        return len(result.errors) + len(result.failures) if result is not None else 0

    def tearDown(self):
        failed = self._problem_count() > self._problems_before
        for ctl in self.ctls:
            if ctl.proc.poll() is None:
                ctl.proc.kill()
                ctl.proc.wait()
            if failed:
                sys.stderr.write("---- %s ----\n%s\n" % (ctl.log_path, ctl.logs()))
            if not ctl.log.closed:
                ctl.log.close()
        self.emu.stop()
        if not os.environ.get("KEB_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def controller(self, name, *args):
        ctl = Controller(self.workdir, self.emu.kubeconfig, "--data-dir", self.data_dir, *args,
                         serving=self.serving, name=name, cache_ttl="10m")
        self.ctls.append(ctl)
        ctl.wait_ready(timeout=30)
        return ctl

    @staticmethod
    def held(ctl):
        """Every occurrence the controller serves, as (uid, resourceVersion), from one list."""
        return {(i["metadata"]["uid"], i["metadata"]["resourceVersion"]) for i in ctl.list_all()}

    def test_delay_then_flush_loses_nothing(self):
        ctl = self.controller("first", "--shutdown-delay", "3s")
        time.sleep(1.5)  # traffic arrives and is written
        before = self.held(ctl)
        self.assertGreater(len(before), 50, "too little traffic to test anything")
        ctl.close_connection()

        recorder = ReadyzRecorder(ctl)
        recorder.start()
        time.sleep(0.1)
        t0 = time.monotonic()
        ctl.proc.send_signal(signal.SIGTERM)

        # Readiness fails at once.
        deadline = t0 + 2
        while recorder.first_not_ok_after(t0) is None and time.monotonic() < deadline:
            time.sleep(0.01)
        failed_at = recorder.first_not_ok_after(t0)
        self.assertIsNotNone(failed_at, "/readyz still 200 two seconds after SIGTERM")
        self.assertLess(failed_at - t0, READY_FAILS_WITHIN_S,
                        "/readyz turned non-200 only %.3f s after SIGTERM" % (failed_at - t0))
        status, body = ctl.probe("/readyz")
        self.assertEqual(status, 503)
        self.assertIn(b"shutting down", body)

        # Serving goes on during the delay: the API over HTTPS (authenticated through the
        # emulator's reviews, cached), /metrics, and /livez.
        answered = []
        while time.monotonic() < t0 + DELAY_S - 0.6:
            try:
                code, _, _ = ctl.api(API + "/events?limit=5", timeout=5)
            except OSError as e:
                self.fail("the API stopped answering %.2f s into the delay: %r" % (time.monotonic() - t0, e))
            answered.append((round(time.monotonic() - t0, 2), code))
            self.assertEqual(code, 200, "the API stopped answering %.2f s into the delay" % (time.monotonic() - t0))
            self.assertIsNone(ctl.proc.poll(), "exited during the delay")
            time.sleep(0.25)
        self.assertGreaterEqual(len(answered), 4, answered)
        self.assertIn("eventbuffer_store_bytes", ctl.metrics_text())
        self.assertEqual(ctl.probe("/livez")[0], 200)
        # Everything held now (the watch still runs during the delay) must survive.
        before |= self.held(ctl)
        ctl.close_connection()

        ctl.proc.wait(DELAY_S + EXIT_MARGIN_S + 5)
        exited_after = time.monotonic() - t0
        recorder.done.set()
        recorder.join()
        ctl.log.close()
        self.assertEqual(ctl.proc.returncode, 0, ctl.logs())
        self.assertGreaterEqual(exited_after, DELAY_S - 0.05, "exited before the delay was over")
        self.assertLess(exited_after, DELAY_S + EXIT_MARGIN_S, "exit took %.2f s" % exited_after)
        # /readyz never came back once it failed.
        after_fail = [s for t, s in recorder.samples if t >= failed_at]
        self.assertNotIn(200, after_fail)

        logs = ctl.logs()
        steps = ["SIGTERM: shutting down", "shutdown: /readyz fails from now on", "shutdown: delay over",
                 "shutdown: stopping the watch", "shutdown: watch stopped", "shutdown: flushing the durable store",
                 "durable store flushed", "shutdown: closing the serving ports", "stopped in"]
        positions = [logs.find(step) for step in steps]
        self.assertNotIn(-1, positions, "missing steps: %r\n%s" % (
            [s for s, p in zip(steps, positions) if p < 0], logs))
        self.assertEqual(positions, sorted(positions), "steps out of order:\n%s" % logs)

        # Restart on the same directory: everything held before is held again, from disk.
        # /readyz is 200 only once the restore is done and the first list is in.
        again = Controller(self.workdir, self.emu.kubeconfig, "--data-dir", self.data_dir, "--shutdown-delay", "0s",
                           serving=self.serving, name="second", cache_ttl="10m")
        self.ctls.append(again)
        deadline = time.monotonic() + 30
        while again.probe("/readyz", timeout=1)[0] != 200:
            self.assertIsNone(again.proc.poll(), again.logs())
            self.assertLess(time.monotonic(), deadline, "not ready after 30 s:\n" + again.logs())
            time.sleep(0.01)
        logs = again.logs()
        self.assertIn("durable store", logs)
        self.assertIn("restored", logs, "ready before the restore was logged:\n" + logs)
        self.assertIn("first list is in the buffer", logs, "ready before the first list:\n" + logs)
        self.assertLess(logs.find("restored"), logs.find("first list is in the buffer"), logs)
        after = self.held(again)
        lost = before - after
        self.assertFalse(lost, "%d occurrences lost across the restart, e.g. %r" % (len(lost), sorted(lost)[:5]))
        restored = again.metrics().get("eventbuffer_store_occurrences_total", op="restored")
        self.assertGreaterEqual(restored, len(before), "fewer occurrences restored from disk than held")
        self.assertEqual(again.stop(), 0)

    def test_second_sigterm_cuts_the_delay_short(self):
        ctl = self.controller("impatient", "--shutdown-delay", "60s")
        time.sleep(0.5)
        before = self.held(ctl)
        ctl.close_connection()
        t0 = time.monotonic()
        ctl.proc.send_signal(signal.SIGTERM)
        deadline = t0 + 2
        while ctl.probe("/readyz", timeout=1)[0] == 200 and time.monotonic() < deadline:
            time.sleep(0.02)
        self.assertEqual(ctl.probe("/readyz")[0], 503)
        time.sleep(0.5)
        self.assertIsNone(ctl.proc.poll(), "exited before the 60 s delay was over or cut short")
        ctl.proc.send_signal(signal.SIGTERM)
        ctl.proc.wait(20)  # far less than the 60 s delay
        ctl.log.close()
        self.assertEqual(ctl.proc.returncode, 0, ctl.logs())
        self.assertLess(time.monotonic() - t0, 20)
        self.assertIn("cut the delay short", ctl.logs())
        # The store was still flushed.
        again = self.controller("after-impatient", "--shutdown-delay", "0s")
        lost = before - self.held(again)
        self.assertFalse(lost, "%d occurrences lost, e.g. %r" % (len(lost), sorted(lost)[:5]))
        self.assertEqual(again.stop(), 0)


if __name__ == "__main__":
    unittest.main()
