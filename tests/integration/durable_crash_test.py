#!/usr/bin/env python3
"""Crash test of the durable store (--data-dir): kill -9 at random moments, restart, lose nothing.

The emulator runs the demo traffic fast (new Events and BackOff repeats sent as MODIFIED
revisions). The controller keeps its history in --data-dir with --sync-interval 300ms. At
random moments the test reads everything the controller serves (the eventbuffer.dev API over
HTTPS, bearer token of the demo policy), waits well over one sync interval, and kill -9s it;
then restarts it on the same directory. While it is down the traffic goes on, so revisions
are superseded at the API server (a relist sees only the latest): only the disk can bring
them back. At the end:
  - no occurrence is served twice;
  - every occurrence served before a kill (so received more than a sync interval before it)
    is still served;
  - after a clean SIGTERM and restart, everything served before it is still served.

Environment: KEB_CONTROLLER (the binary), KEB_EMULATOR (kube_emulator.py), KEB_CRASH_KILLS (10).
"""

import json
import os
import random
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from keb_harness import free_port, lost_a_port  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
CONTROLLER = os.environ.get("KEB_CONTROLLER", os.path.join(ROOT, "build", "controller", "eventbuffer-controller"))
EMULATOR = os.environ.get("KEB_EMULATOR", os.path.join(ROOT, "tests", "emulator", "kube_emulator.py"))
POLICY = os.path.join(ROOT, "tests", "emulator", "demo-policy.json")
TOKEN = "demo-viewer-token"
SYNC_MS = 300
KILLS = int(os.environ.get("KEB_CRASH_KILLS", "10"))


def http_status(url, timeout=5):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code
    except (urllib.error.URLError, ConnectionError, socket.timeout, OSError):
        return 0


class Controller:
    def __init__(self, workdir, kubeconfig, data_dir, run):
        self.kubeconfig = kubeconfig
        self.data_dir = data_dir
        self.log_path = os.path.join(workdir, "controller-%d.log" % run)
        self.log = None
        self._launch()

    def _launch(self):
        self.probe_port = free_port()
        self.api_port = free_port()
        if self.log:
            self.log.close()
        self.log = open(self.log_path, "w")
        self.proc = subprocess.Popen(
            [CONTROLLER, "--kubeconfig", self.kubeconfig,
             "--health-probe-bind-address", "127.0.0.1:%d" % self.probe_port,
             "--metrics-bind-address", "0", "--secure-port", str(self.api_port),
             "--bind-address", "127.0.0.1", "--authentication-skip-lookup",
             "--data-dir", self.data_dir, "--sync-interval", "%dms" % SYNC_MS, "--log-level", "info"],
            stdout=self.log, stderr=subprocess.STDOUT)

    def wait_ready(self, timeout=60):
        deadline = time.time() + timeout
        relaunches = 0
        while time.time() < deadline:
            if relaunches < 3 and lost_a_port(self.proc, self.logs()):
                relaunches += 1
                self._launch()
                continue
            if self.proc.poll() is not None:
                raise AssertionError("controller exited with %s:\n%s" % (self.proc.returncode, self.logs()))
            if http_status("http://127.0.0.1:%d/readyz" % self.probe_port) == 200:
                return
            time.sleep(0.1)
        raise AssertionError("controller not ready after %ss:\n%s" % (timeout, self.logs()))

    def occurrences(self):
        """Every held occurrence as a list of (uid, resourceVersion), from the HTTPS API."""
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE  # the controller's self-signed certificate
        out = []
        cont = ""
        while True:
            url = "https://127.0.0.1:%d/apis/eventbuffer.dev/v1alpha1/events?limit=500" % self.api_port
            if cont:
                url += "&continue=" + urllib.parse.quote(cont)
            req = urllib.request.Request(url, headers={"Authorization": "Bearer " + TOKEN})
            with urllib.request.urlopen(req, timeout=30, context=ctx) as resp:
                body = json.loads(resp.read().decode("utf-8"))
            for item in body.get("items", []):
                md = item["metadata"]
                out.append((md["uid"], md["resourceVersion"]))
            cont = body.get("metadata", {}).get("continue", "")
            if not cont:
                return out

    def logs(self):
        with open(self.log_path) as f:
            return f.read()[-6000:]

    def kill9(self):
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)
        self.log.close()

    def term(self, timeout=30):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout)
        self.log.close()
        return self.proc.returncode



class DurableCrash(unittest.TestCase):
    def setUp(self):
        if not os.path.exists(CONTROLLER):
            self.skipTest("controller binary not built: %s" % CONTROLLER)
        self.workdir = tempfile.mkdtemp(prefix="keb-durable-")
        self.data_dir = os.path.join(self.workdir, "data")
        self.emu_log = open(os.path.join(self.workdir, "emulator.log"), "w")
        self.emu = subprocess.Popen(
            [sys.executable, EMULATOR, "--workdir", self.workdir, "--port", "0", "--exit-with-parent",
             "--scenario", "demo", "--events-per-second", "150", "--initial-events", "100",
             "--ttl", "0", "--auth-policy", POLICY, "--seed", "7"],
            stdout=subprocess.PIPE, stderr=self.emu_log, text=True)
        line = self.emu.stdout.readline()
        if "ready" not in line:
            raise RuntimeError("emulator did not start: %r" % line)
        self.kubeconfig = os.path.join(self.workdir, "kubeconfig")
        self.ctl = None

    def tearDown(self):
        if self.ctl is not None and self.ctl.proc.poll() is None:
            self.ctl.kill9()
        self.emu.terminate()
        self.emu.wait(10)
        self.emu.stdout.close()
        self.emu_log.close()
        if not os.environ.get("KEB_KEEP_WORKDIR"):
            shutil.rmtree(self.workdir, ignore_errors=True)

    def assert_no_duplicates(self, occ, when):
        self.assertEqual(len(occ), len(set(occ)), "%s: duplicated occurrences" % when)

    def test_kill9_loses_nothing_synced_and_duplicates_nothing(self):
        rng = random.Random(int(os.environ.get("KEB_CRASH_SEED", "11")))
        must_hold = set()
        runs = 0
        for kill in range(KILLS):
            self.ctl = Controller(self.workdir, self.kubeconfig, self.data_dir, runs)
            runs += 1
            self.ctl.wait_ready()
            seen = self.ctl.occurrences()
            self.assert_no_duplicates(seen, "after restart %d" % kill)
            missing = must_hold - set(seen)
            self.assertFalse(missing, "after restart %d: %d occurrences lost, e.g. %r\n%s" % (
                kill, len(missing), sorted(missing)[:5], self.ctl.logs()))
            time.sleep(rng.uniform(0.2, 2.5))  # ingesting
            snapshot = set(self.ctl.occurrences())
            # Everything in the snapshot was received before this point; the kill comes more
            # than one sync interval later, and more traffic keeps arriving meanwhile.
            time.sleep(SYNC_MS / 1000.0 * 2 + rng.uniform(0, 0.5))
            self.ctl.kill9()
            must_hold |= snapshot
            time.sleep(rng.uniform(0, 1.5))  # down: revisions are superseded meanwhile
        # Clean shutdown: SIGTERM flushes everything received.
        self.ctl = Controller(self.workdir, self.kubeconfig, self.data_dir, runs)
        runs += 1
        self.ctl.wait_ready()
        time.sleep(1)
        before_term = self.ctl.occurrences()
        self.assert_no_duplicates(before_term, "before SIGTERM")
        self.assertFalse(must_hold - set(before_term))
        self.assertEqual(self.ctl.term(), 0)
        self.ctl = Controller(self.workdir, self.kubeconfig, self.data_dir, runs)
        self.ctl.wait_ready()
        final = self.ctl.occurrences()
        self.assert_no_duplicates(final, "final")
        lost = set(before_term) - set(final)
        self.assertFalse(lost, "SIGTERM lost %d occurrences, e.g. %r" % (len(lost), sorted(lost)[:5]))
        # The disk brought back revisions a relist cannot: superseded ones.
        snapshot = json.loads(urllib.request.urlopen(
            "http://127.0.0.1:%d/_emulator/events-snapshot" % self._emu_port(), timeout=30).read())
        emitted = {(o["uid"], o["resourceVersion"]) for o in snapshot}
        self.assertFalse(set(final) - emitted, "served occurrences the API server never sent")
        # Revisions required by a kill that the API server no longer has as the latest of
        # their Event (superseded, e.g. while the controller was down): a list cannot
        # return them, only the disk can; they are in must_hold, so checked above.
        latest = {}
        for o in snapshot:
            latest[o["uid"]] = max(latest.get(o["uid"], 0), int(o["resourceVersion"]))
        superseded_required = sum(1 for uid, rv in must_hold if int(rv) != latest.get(uid))
        self.assertGreater(superseded_required, 0, "no superseded revision was required")
        uids_with_revisions = {}
        for uid, rv in final:
            uids_with_revisions.setdefault(uid, []).append(rv)
        superseded_held = sum(len(v) - 1 for v in uids_with_revisions.values())
        self.assertGreater(superseded_held, 0, "no superseded revision held: the test did not test it")
        sys.stderr.write("durable crash test: %d kills, %d occurrences held at the end (%d earlier "
                         "revisions of repeated Events), %d required by the kills (%d of them superseded)\n" % (
                             KILLS, len(final), superseded_held, len(must_hold), superseded_required))

    def _emu_port(self):
        with open(os.path.join(self.workdir, "port")) as f:
            return int(f.read().strip())


if __name__ == "__main__":
    unittest.main()
