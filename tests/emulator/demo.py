#!/usr/bin/env python3
"""The no-cluster demo: starts the API-server emulator with realistic traffic and the
eventbuffer-controller against it, then prints where to look. Ctrl-C stops both.

    python3 tests/emulator/demo.py                      # controller found under build*/
    python3 tests/emulator/demo.py --controller PATH -- --log-format text
    python3 tests/emulator/demo.py --duration 10 --check   # smoke test: exits 0 when data flows

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
import urllib.parse
import urllib.request

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


def port_or_free(preferred):
    """preferred if it can be bound on 127.0.0.1, else a free port."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        try:
            s.bind(("127.0.0.1", preferred))
            return s.getsockname()[1]
        except OSError:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]


def http_get(url, timeout=3):
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def stop(proc, timeout=8):
    if proc is not None and proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--controller", help="path of eventbuffer-controller (default: $KEB_CONTROLLER or build*/)")
    p.add_argument("--no-controller", action="store_true", help="run only the emulator")
    p.add_argument("--workdir", help="directory for certificates, kubeconfig and logs (default: a temp dir)")
    p.add_argument("--events-per-second", type=float, default=5.0)
    p.add_argument("--chaos", type=float, default=0, metavar="S",
                   help="let the emulator inject a random fault every S seconds (0: off)")
    p.add_argument("--probe-port", type=int, default=8081, help="read API / health port (a free one if busy)")
    p.add_argument("--metrics-port", type=int, default=8080, help="/metrics port (a free one if busy)")
    p.add_argument("--duration", type=float, default=0, help="stop after this many seconds (0: until Ctrl-C)")
    p.add_argument("--check", action="store_true",
                   help="with --duration: exit 1 unless the controller serves the emulator's events")
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
        base = probe = metrics = None
        if controller:
            probe = port_or_free(args.probe_port)
            metrics = port_or_free(args.metrics_port)
            base = "http://127.0.0.1:%d" % probe
            ctl_log = open(os.path.join(workdir, "controller.log"), "w")
            ctl = subprocess.Popen([controller, "--kubeconfig", os.path.join(workdir, "kubeconfig"),
                                    "--health-probe-bind-address", "127.0.0.1:%d" % probe,
                                    "--metrics-bind-address", "127.0.0.1:%d" % metrics] + args.controller_args,
                                   stdout=ctl_log, stderr=subprocess.STDOUT)
            deadline = time.time() + 30
            while http_get(base + "/readyz")[0] != 200:
                if ctl.poll() is not None or time.time() > deadline or stopping:
                    sys.stderr.write("the controller did not become ready; see %s\n" % ctl_log.name)
                    return 1
                time.sleep(0.2)

        example = ""
        if base:
            code, body = http_get(base + "/v1/objects")
            if code == 200:
                objects = json.loads(body).get("objects", [])
                if objects:
                    o = max(objects, key=lambda x: x.get("events", 0))
                    example = base + "/v1/events?" + urllib.parse.urlencode(
                        {"namespace": o["namespace"], "kind": o["kind"], "name": o["name"]})
        lines = ["", "kube-eventbuffer demo (no cluster needed)",
                 "  API-server emulator  https://127.0.0.1:%d   demo traffic, %g events/s%s"
                 % (emu_port, args.events_per_second,
                    ", a random fault every %gs" % args.chaos if args.chaos > 0 else "")]
        if base:
            lines += ["  read API             %s/v1/objects" % base]
            if example:
                lines += ["                       %s" % example]
            lines += ["                       %s/v1/status" % base,
                      "  health               %s/healthz  %s/readyz" % (base, base),
                      "  metrics              http://127.0.0.1:%d/metrics" % metrics]
        lines += ["  kubectl              kubectl --kubeconfig %s get events -A --watch"
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

        if args.check and base:
            with urllib.request.urlopen("http://127.0.0.1:%d/_emulator/stats" % emu_port, timeout=5) as r:
                emitted = json.loads(r.read())["events_total"]
            code, body = http_get(base + "/v1/objects")
            held = sum(o.get("events", 0) for o in json.loads(body).get("objects", [])) if code == 200 else 0
            code_m, body_m = http_get("http://127.0.0.1:%d/metrics" % metrics)
            print("check: emulator emitted %d occurrences, controller holds %d, /metrics HTTP %d (%d bytes)"
                  % (emitted, held, code_m, len(body_m)), flush=True)
            if held == 0 or held > emitted:
                return 1
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
