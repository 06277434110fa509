"""Proves the emulator's wire format with a real client: kubectl against the generated
kubeconfigs (TLS with the generated CA, bearer token inline and from the token file).
Skipped, with a message, only when kubectl is not installed."""

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import unittest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from emulator_fixture import Emulator  # noqa: E402

# KEB_KUBECTL selects another kubectl binary (e.g. an older client to check compatibility).
KUBECTL = os.environ.get("KEB_KUBECTL") or shutil.which("kubectl")


@unittest.skipIf(KUBECTL is None, "kubectl is not installed: the real-client wire-format check cannot run")
class KubectlTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.emu = Emulator("--scenario", "demo", "--initial-events", "60", "--events-per-second", "0",
                           "--seed", "3")
        # A private HOME and cache so that kubectl neither reads nor writes the user's files.
        cls.home = tempfile.mkdtemp(prefix="keb-kubectl-home-")
        cls.env = dict(os.environ, HOME=cls.home, KUBECONFIG="")
        cls.env.pop("KUBERNETES_SERVICE_HOST", None)

    @classmethod
    def tearDownClass(cls):
        cls.emu.close()
        shutil.rmtree(cls.home, ignore_errors=True)

    def kubectl(self, kubeconfig, *args, timeout=30):
        cmd = [KUBECTL, "--kubeconfig", self.emu.path(kubeconfig), "--cache-dir",
               os.path.join(self.home, "cache"), "--request-timeout", "20s"] + list(args)
        return subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=timeout)

    def test_version(self):
        r = self.kubectl("kubeconfig-inline", "version", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        self.assertEqual(out["serverVersion"]["major"], "1")

    def test_get_events_all_namespaces_table(self):
        for kubeconfig in ("kubeconfig-inline", "kubeconfig"):
            with self.subTest(kubeconfig=kubeconfig):
                r = self.kubectl(kubeconfig, "get", "events", "-A")
                self.assertEqual(r.returncode, 0, r.stderr)
                lines = r.stdout.splitlines()
                self.assertEqual(lines[0].split(), ["NAMESPACE", "LAST", "SEEN", "TYPE", "REASON", "OBJECT",
                                                    "MESSAGE"])
                status, _, page = self.emu.get_json("/api/v1/events")
                self.assertEqual(len(lines) - 1, len(page["items"]))
                namespaces = {line.split()[0] for line in lines[1:]}
                self.assertTrue({"default", "payments"} & namespaces)
                self.assertTrue(any(" node/" in line for line in lines[1:]))

    def test_get_events_paged_wide_and_json(self):
        # --chunk-size forces limit/continue paging; -o wide shows the priority-1 columns.
        before = self.emu.stats()["requests"]
        r = self.kubectl("kubeconfig-inline", "get", "events", "-A", "--chunk-size", "7", "-o", "wide")
        self.assertEqual(r.returncode, 0, r.stderr)
        after = self.emu.stats()["requests"]
        status, _, page = self.emu.get_json("/api/v1/events")
        pages = (len(page["items"]) + 6) // 7
        self.assertEqual((after["list"] - before["list"], after["list_first"] - before["list_first"]), (pages, 1))
        self.assertEqual(len(r.stdout.splitlines()) - 1, len(page["items"]))
        self.assertIn("SUBOBJECT", r.stdout.splitlines()[0])
        r = self.kubectl("kubeconfig-inline", "get", "events", "-n", "payments", "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        out = json.loads(r.stdout)
        expected = [i for i in page["items"] if i["metadata"]["namespace"] == "payments"]
        self.assertEqual(sorted(i["metadata"]["uid"] for i in out["items"]),
                         sorted(i["metadata"]["uid"] for i in expected))
        for item in out["items"]:
            self.assertEqual((item["kind"], item["apiVersion"]), ("Event", "v1"))

    def test_describe_style_field_selector(self):
        status, _, page = self.emu.get_json("/api/v1/namespaces/payments/events")
        name = page["items"][0]["involvedObject"]["name"]
        r = self.kubectl("kubeconfig-inline", "get", "events", "-n", "payments", "--field-selector",
                         "involvedObject.name=%s" % name, "-o", "json")
        self.assertEqual(r.returncode, 0, r.stderr)
        items = json.loads(r.stdout)["items"]
        self.assertTrue(items)
        self.assertTrue(all(i["involvedObject"]["name"] == name for i in items))

    def test_watch_all_namespaces(self):
        marker = "kubectl-watch-marker-%d" % os.getpid()
        cmd = [KUBECTL, "--kubeconfig", self.emu.path("kubeconfig"), "--cache-dir",
               os.path.join(self.home, "cache"), "get", "events", "-A", "--watch"]
        proc = subprocess.Popen(cmd, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            # Wait until kubectl's watch request is open, then create events.
            deadline = time.time() + 10
            while self.emu.stats()["active_watches"] == 0 and time.time() < deadline:
                time.sleep(0.05)
            self.assertGreater(self.emu.stats()["active_watches"], 0, "kubectl never opened a watch")
            self.emu.post_events(count=1, namespace="watched", name="marker-pod", message=marker, repeat=1)
            self.emu.post_events(count=1, kind="Node", name="worker-7", reason="NodeHasDiskPressure",
                                 message="Node worker-7 status is now: NodeHasDiskPressure " + marker)
            # Read until the three marked rows arrived (bounded), then stop kubectl.
            out_lines = []

            def read_stdout():
                for line in proc.stdout:
                    out_lines.append(line)
            reader = threading.Thread(target=read_stdout, daemon=True)
            reader.start()
            deadline = time.time() + 20
            while sum(marker in line for line in list(out_lines)) < 3 and time.time() < deadline:
                time.sleep(0.05)
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            reader.join(5)
            err = proc.stderr.read()
            out = "".join(out_lines)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        lines = [line for line in out.splitlines() if marker in line]
        self.assertEqual(len(lines), 3, "stdout:\n%s\nstderr:\n%s" % (out[-3000:], err[-2000:]))
        self.assertTrue(lines[0].startswith("watched"))
        self.assertIn("pod/marker-pod", lines[0])
        self.assertIn("node/worker-7", lines[2])
        self.assertNotIn("error", err.lower())

    def test_wrong_token_is_rejected(self):
        bad = os.path.join(self.home, "bad-kubeconfig")
        with open(self.emu.path("kubeconfig-inline")) as f:
            text = f.read()
        with open(bad, "w") as f:
            f.write(text.replace("token: " + self.emu.token(), "token: not-the-token"))
        cmd = [KUBECTL, "--kubeconfig", bad, "--cache-dir", os.path.join(self.home, "cache"), "get", "events", "-A"]
        r = subprocess.run(cmd, env=self.env, capture_output=True, text=True, timeout=30)
        self.assertNotEqual(r.returncode, 0)
        self.assertRegex(r.stderr, "(Unauthorized|must be logged in)")


if __name__ == "__main__":
    unittest.main()
