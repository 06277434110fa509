#!/usr/bin/env python3
"""The no-cluster demo: starts the API-server emulator with realistic traffic and the
eventbuffer-controller against it, serving the eventbuffer.dev API on a local HTTPS port, then
prints the kubectl lines to try. Ctrl-C stops both.

    python3 tests/emulator/demo.py                      # controller found under build*/
    python3 tests/emulator/demo.py --controller PATH -- --log-format text
    python3 tests/emulator/demo.py --duration 10 --check   # smoke test: exits 0 when data flows

The controller delegates authentication (TokenReview) and authorization (SubjectAccessReview)
to the emulator, which answers them from demo-policy.json. WORKDIR/kubeconfig-demo points
kubectl at the controller's secure port, trusts the demo's serving CA (WORKDIR/serving/ca.crt)
and holds the policy's tokens as the contexts viewer (current), ns-reader and nobody.
/metrics is plain HTTP here (--metrics-secure=false: local use only).

Servers listen on 127.0.0.1 only. Logs go to WORKDIR/controller.log and WORKDIR/emulator.log.
"""

import argparse
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

import demo_access

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
EMULATOR = os.path.join(HERE, "kube_emulator.py")


def find_controller(explicit):
    if explicit:
        return explicit
    if os.environ.get("KEB_CONTROLLER"):
        return os.environ["KEB_CONTROLLER"]
    found = glob.glob(os.path.join(ROOT, "build*", "controller", "eventbuffer-controller"))
    found = [f for f in found if os.access(f, os.X_OK)]
    return max(found, key=os.path.getmtime) if found else None


def pick_ports(preferred):
    """One port on 127.0.0.1 per entry of `preferred`: that port if it can be bound, else (and
    for 0) a free one; all different."""
    socks, ports = [], []
    try:
        for want in preferred:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            socks.append(s)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the servers bind
            try:
                if want == 0 or want in ports:
                    raise OSError
                s.bind(("127.0.0.1", want))
            except OSError:
                s.bind(("127.0.0.1", 0))
            ports.append(s.getsockname()[1])
    finally:
        for s in socks:
            s.close()
    return ports


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def stop(proc, timeout=8):
    """SIGTERM, then SIGKILL after `timeout`; returns the exit status (None: not started)."""
    if proc is None:
        return None
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return proc.returncode


def kubectl_binary():
    return os.environ.get("KEB_KUBECTL") or shutil.which("kubectl")


def check(workdir, emu_port, api, ca, kubeconfig, metrics_url):
    """Reads what the controller holds through events.eventbuffer.dev and compares it with what
    the emulator emitted; checks the demo policy's refusals, a field selector, /metrics and,
    when kubectl is installed, the printed kubectl lines. Prints a summary; returns the list
    of problems (empty: all good)."""
    problems = []
    status, items = demo_access.list_events(api, demo_access.VIEWER_TOKEN, ca)
    # The emulator's record is read after the list: everything held must be in it.
    with urllib.request.urlopen("http://127.0.0.1:%d/_emulator/events-snapshot" % emu_port, timeout=10) as r:
        emitted = {(o["uid"], o["resourceVersion"]) for o in json.loads(r.read())}
    held = {(i.get("metadata", {}).get("uid"), i.get("metadata", {}).get("resourceVersion")) for i in items}
    occurrences, objects, namespaces = demo_access.summarize(items)
    print("check: emulator emitted %d occurrences; the controller holds %d (%d objects, %d namespaces) "
          "read through events.eventbuffer.dev as demo-viewer (HTTP %d)"
          % (len(emitted), occurrences, objects, namespaces, status), flush=True)
    if status != 200:
        problems.append("listing events.eventbuffer.dev as demo-viewer: HTTP %d" % status)
    elif not items:
        problems.append("the controller holds no events")
    if len(held) != len(items):
        problems.append("the list repeats an occurrence (%d items, %d distinct)" % (len(items), len(held)))
    unknown = held - emitted
    if unknown:
        problems.append("%d held occurrences were never emitted, e.g. %s" % (len(unknown), sorted(unknown)[0]))

    # The demo policy: who may read what (the refusals fail closed).
    results = []
    for who, namespace, want in (("ns-reader", "default", 200), ("ns-reader", "payments", 403),
                                 ("nobody", None, 403), (None, None, 401)):
        token = demo_access.DEMO_CONTEXTS[who] if who else None
        got, _ = demo_access.https_get(api + demo_access.events_path(namespace), token, ca, timeout=10)
        results.append("%s %s: %d" % (who or "no token", namespace or "all namespaces", got))
        if got != want:
            problems.append("%s listing %s: HTTP %d, want %d"
                            % (who or "a request without a token", namespace or "all namespaces", got, want))
    print("check: access " + ", ".join(results), flush=True)

    status, warnings = demo_access.list_events(api, demo_access.VIEWER_TOKEN, ca, "default", "type=Warning")
    stray = [i for i in warnings if i.get("type") != "Warning" or i.get("metadata", {}).get("namespace") != "default"]
    print("check: -n default --field-selector type=Warning: HTTP %d, %d items" % (status, len(warnings)), flush=True)
    if status != 200 or stray:
        problems.append("field selector type=Warning in default: HTTP %d, %d items not matching" % (status, len(stray)))

    code_m, body_m = http_get(metrics_url, timeout=5)
    mode, mismatches = demo_access.metrics_summary(body_m.decode("utf-8", "replace"))
    print("check: /metrics HTTP %d (%d bytes): mode %s, %g mismatches" % (code_m, len(body_m), mode, mismatches),
          flush=True)
    if code_m != 200 or b"eventbuffer_" not in body_m:
        problems.append("/metrics: HTTP %d without eventbuffer_ metrics" % code_m)

    kubectl = kubectl_binary()
    if not kubectl:
        print("check: kubectl not installed: the kubectl lines were not tried", flush=True)
        return problems
    base = [kubectl, "--kubeconfig", kubeconfig, "--cache-dir", os.path.join(workdir, "kubectl-cache")]
    try:
        table = subprocess.run(base + ["get", "events.eventbuffer.dev", "-A"], capture_output=True, text=True,
                               timeout=60)
        refused = subprocess.run(base + ["--context", "ns-reader", "get", "events.eventbuffer.dev", "-n", "payments"],
                                 capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired as e:
        problems.append("kubectl did not finish: %s" % " ".join(e.cmd))
        return problems
    header = table.stdout.splitlines()[0] if table.stdout else ""
    rows = max(0, len(table.stdout.splitlines()) - 1)
    print("check: kubectl get events.eventbuffer.dev -A: exit %d, %d rows; as ns-reader in payments: exit %d, %s"
          % (table.returncode, rows, refused.returncode, (refused.stderr.strip().splitlines() or ["no message"])[-1]),
          flush=True)
    if table.returncode != 0 or not header.split()[:3] == ["NAMESPACE", "LAST", "SEEN"] or rows == 0:
        problems.append("kubectl get events.eventbuffer.dev -A: exit %d, header %r, %d rows: %s"
                        % (table.returncode, header, rows, table.stderr.strip()))
    if refused.returncode == 0 or "forbidden" not in refused.stderr.lower():
        problems.append("kubectl as ns-reader in payments was not refused: exit %d, %s"
                        % (refused.returncode, refused.stderr.strip() or refused.stdout.strip()))
    return problems


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--controller", help="path of eventbuffer-controller (default: $KEB_CONTROLLER or build*/)")
    p.add_argument("--no-controller", action="store_true", help="run only the emulator")
    p.add_argument("--workdir", help="directory for certificates, kubeconfigs and logs (default: a temp dir)")
    p.add_argument("--events-per-second", type=float, default=5.0)
    p.add_argument("--chaos", type=float, default=0, metavar="S",
                   help="let the emulator inject a random fault every S seconds (0: off)")
    p.add_argument("--secure-port", type=int, default=8443,
                   help="HTTPS port of the eventbuffer.dev API (a free one if busy; 0: any)")
    p.add_argument("--probe-port", type=int, default=8081,
                   help="/livez, /healthz, /readyz port (a free one if busy; 0: any)")
    p.add_argument("--metrics-port", type=int, default=8080, help="/metrics port (a free one if busy; 0: any)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--check", action="store_true",
                   help="with --duration: exit 1 unless the controller serves the emulator's events through "
                        "events.eventbuffer.dev, applies the demo policy, answers /metrics and exits 0 on SIGTERM")
    p.add_argument("controller_args", nargs="*", help="extra controller flags, after --")
    args = p.parse_args()

    controller = None if args.no_controller else find_controller(args.controller)
    if not args.no_controller and (controller is None or not os.path.exists(controller)):
        sys.stderr.write("eventbuffer-controller not found; build it first:\n"
                         "  cmake -S . -B build -G Ninja && ninja -C build eventbuffer-controller\n"
                         "or pass --controller PATH (or --no-controller for the emulator alone)\n")
        return 77 if args.check else 2     # 77: CTest's "skipped" for the smoke test
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="keb-demo-"))
    os.makedirs(workdir, exist_ok=True)

    stopping = []
    signal.signal(signal.SIGINT, lambda *_: stopping.append(1))
    signal.signal(signal.SIGTERM, lambda *_: stopping.append(1))

    emu_log = open(os.path.join(workdir, "emulator.log"), "w")
    emu = subprocess.Popen([sys.executable, EMULATOR, "--workdir", workdir, "--scenario", "demo",
                            "--auth-policy", demo_access.DEMO_POLICY,
                            "--events-per-second", str(args.events_per_second), "--bookmark-interval", "30",
                            "--chaos-interval", str(args.chaos), "--exit-with-parent"],
                           stdout=subprocess.PIPE, stderr=emu_log, text=True)
    ctl = None
    ctl_log = None
    try:
        ready = emu.stdout.readline()
        if "ready" not in ready:
            sys.stderr.write("the emulator did not start; see %s\n" % emu_log.name)
            return 1
        with open(os.path.join(workdir, "port")) as f:
            emu_port = int(f.read())
        probes = api = metrics_url = ca = kubeconfig = None
        if controller:
            secure, probe, metrics = pick_ports([args.secure_port, args.probe_port, args.metrics_port])
            probes = "http://127.0.0.1:%d" % probe
            api = "https://127.0.0.1:%d" % secure
            metrics_url = "http://127.0.0.1:%d/metrics" % metrics
            ca, cert, key = demo_access.make_serving_cert(os.path.join(workdir, "serving"))
            kubeconfig = demo_access.write_demo_kubeconfig(os.path.join(workdir, "kubeconfig-demo"), api, ca)
            ctl_log = open(os.path.join(workdir, "controller.log"), "w")
            ctl = subprocess.Popen([controller, "--kubeconfig", os.path.join(workdir, "kubeconfig"),
                                    "--secure-port", str(secure), "--bind-address", "127.0.0.1",
                                    "--tls-cert-file", cert, "--tls-private-key-file", key,
                                    "--metrics-secure=false", "--metrics-bind-address", "127.0.0.1:%d" % metrics,
                                    "--health-probe-bind-address", "127.0.0.1:%d" % probe,
                                    # One local controller: no endpoints to move away first.
                                    "--shutdown-delay", "0s"] + args.controller_args,
                                   stdout=ctl_log, stderr=subprocess.STDOUT)
            deadline = time.time() + 30
            while http_get(probes + "/readyz")[0] != 200:
                if ctl.poll() is not None or time.time() > deadline or stopping:
                    sys.stderr.write("the controller did not become ready; see %s\n" % ctl_log.name)
                    return 1
                time.sleep(0.2)

        lines = ["", "kube-eventbuffer demo (no cluster needed)",
                 "  API-server emulator  https://127.0.0.1:%d   demo traffic, %g events/s%s"
                 % (emu_port, args.events_per_second,
                    ", a random fault every %gs" % args.chaos if args.chaos > 0 else "")]
        if api:
            kc = "kubectl --kubeconfig %s" % kubeconfig
            example = ""
            status, items = demo_access.list_events(api, demo_access.VIEWER_TOKEN, ca)
            if status == 200 and items:
                m = items[-1]["metadata"]
                example = "%s get events.eventbuffer.dev -n %s %s -o yaml" % (kc, m["namespace"], m["name"])
            lines += ["  eventbuffer.dev API  %s   HTTPS (CA %s), tokens checked by the emulator's"
                      % (api, ca),
                      "                       TokenReview and SubjectAccessReview (%s)"
                      % os.path.relpath(demo_access.DEMO_POLICY, ROOT),
                      "  try                  %s get events.eventbuffer.dev -A" % kc,
                      "                       %s get events.eventbuffer.dev -n default --field-selector type=Warning"
                      % kc]
            if example:
                lines += ["                       %s" % example]
            lines += ["                       %s --context ns-reader get events.eventbuffer.dev -n default" % kc,
                      "                       %s --context ns-reader get events.eventbuffer.dev -n payments"
                      "   # forbidden" % kc,
                      "                       %s --context nobody get events.eventbuffer.dev -A   # forbidden" % kc,
                      "  without kubectl      curl --cacert %s -H 'Authorization: Bearer %s' %s%s"
                      % (ca, demo_access.VIEWER_TOKEN, api, demo_access.events_path("default")),
                      "  probes               %s/livez  %s/healthz  %s/readyz   (plain HTTP, no token)"
                      % (probes, probes, probes),
                      "  metrics              %s   (plain HTTP, no token: --metrics-secure=false for this"
                      % metrics_url,
                      "                       local demo; in a cluster /metrics is HTTPS with a token)"]
        lines += ["  source Events        kubectl --kubeconfig %s get events -A --watch   (the emulator)"
                  % os.path.join(workdir, "kubeconfig-inline"),
                  "  emulator control     curl http://127.0.0.1:%d/_emulator/stats" % emu_port,
                  "  logs                 %s" % "  ".join(x.name for x in (ctl_log, emu_log) if x),
                  "  stop                 Ctrl-C", ""]
        print("\n".join(lines), flush=True)

        started = time.time()
        while not stopping:
            if args.duration and time.time() - started >= args.duration:
                break
            if emu.poll() is not None or (ctl is not None and ctl.poll() is not None):
                sys.stderr.write("a process exited early; see the logs in %s\n" % workdir)
                return 1
            time.sleep(0.2)

        if args.check and api:
            problems = check(workdir, emu_port, api, ca, kubeconfig, metrics_url)
            rc = stop(ctl)
            print("check: the controller exited with %s on SIGTERM" % rc, flush=True)
            if rc != 0:
                problems.append("the controller exited with %s on SIGTERM; see %s" % (rc, ctl_log.name))
            for problem in problems:
                print("check FAILED: %s" % problem, flush=True)
            if problems:
                return 1
            print("check: OK", flush=True)
            if not args.workdir:
                shutil.rmtree(workdir, ignore_errors=True)
        return 0
    finally:
        stop(ctl)
        stop(emu)
        for f in (ctl_log, emu_log):
            if f:
                f.close()
        if emu.stdout:
            emu.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
