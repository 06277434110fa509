#!/usr/bin/env bash
# Builds and runs eventbuffer-controller.
#
#   scripts/run.sh                      no cluster: start the bundled API-server emulator with
#                                       realistic traffic and the controller against it
#   scripts/run.sh --kubeconfig PATH    watch a real cluster (also: inside a Pod, in-cluster)
#   RUN_SECONDS=20 scripts/run.sh       stop by itself after 20 s (CI smoke run); the exit
#                                       code says whether the controller served events and
#                                       shut down cleanly
#
# Extra flags are passed to the controller (see `eventbuffer-controller --help`).
# Environment: BUILD_DIR (default build), HEALTH_PORT (8081), METRICS_PORT (8080),
# SKIP_DEPS=1 (do not run scripts/install-deps.sh), SKIP_BUILD=1, KEEP_WORKDIR=1 (keep the
# emulator's directory with its logs).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
HEALTH_PORT=${HEALTH_PORT:-8081}
METRICS_PORT=${METRICS_PORT:-8080}
RUN_SECONDS=${RUN_SECONDS:-0}

real_cluster=0
for arg in "$@"; do
  case $arg in
    --kubeconfig | --kubeconfig=* | -kubeconfig | -kubeconfig=*) real_cluster=1 ;;
  esac
done
if [[ -n ${KUBERNETES_SERVICE_HOST:-} ]]; then real_cluster=1; fi

if [[ ${SKIP_DEPS:-0} != 1 ]]; then
  scripts/install-deps.sh
fi
BIN="$BUILD_DIR/controller/eventbuffer-controller"
if [[ ${SKIP_BUILD:-0} != 1 ]]; then
  echo "run.sh: building eventbuffer-controller into $BUILD_DIR/"
  cmake -S . -B "$BUILD_DIR" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
  ninja -C "$BUILD_DIR" eventbuffer-controller
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  if [[ -n ${WORKDIR:-} && ${KEEP_WORKDIR:-0} != 1 ]]; then rm -rf "$WORKDIR"; fi
}
trap cleanup EXIT

ctl_args=()
if ((real_cluster)); then
  # On a workstation the endpoints stay on loopback; inside a Pod they must be reachable.
  bind=127.0.0.1
  if [[ -n ${KUBERNETES_SERVICE_HOST:-} ]]; then bind=""; fi
  echo "run.sh: watching the cluster (read API on ${bind:-*}:${HEALTH_PORT}, metrics on ${bind:-*}:${METRICS_PORT})"
  ctl_args=(--health-probe-bind-address "${bind}:${HEALTH_PORT}" --metrics-bind-address "${bind}:${METRICS_PORT}")
  host=127.0.0.1
else
  WORKDIR=$(mktemp -d -t keb-run-XXXXXX)
  echo "run.sh: no cluster given: starting the API-server emulator (demo traffic) in $WORKDIR"
  python3 tests/emulator/kube_emulator.py --workdir "$WORKDIR" --host 127.0.0.1 --port 0 \
    --scenario demo >"$WORKDIR/emulator.out" 2>"$WORKDIR/emulator.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    [[ -s $WORKDIR/port && -s $WORKDIR/kubeconfig ]] && grep -q ready "$WORKDIR/emulator.out" && break
    sleep 0.1
  done
  if ! grep -q ready "$WORKDIR/emulator.out"; then
    echo "run.sh: the emulator did not start:" >&2
    cat "$WORKDIR/emulator.log" >&2
    exit 1
  fi
  ctl_args=(--kubeconfig "$WORKDIR/kubeconfig"
    --health-probe-bind-address "127.0.0.1:${HEALTH_PORT}"
    --metrics-bind-address "127.0.0.1:${METRICS_PORT}")
  host=127.0.0.1
fi

"$BIN" "${ctl_args[@]}" "$@" &
ctl=$!
pids=("$ctl" "${pids[@]}")

# Wait for readiness (the first list in the buffer).
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$ctl" 2>/dev/null; then break; fi
  if python3 - "$host" "$HEALTH_PORT" <<'PY' 2>/dev/null; then
import sys, urllib.request
urllib.request.urlopen("http://%s:%s/readyz" % (sys.argv[1], sys.argv[2]), timeout=1)
PY
    ready=1
    break
  fi
  sleep 0.2
done
if ((!ready)); then
  echo "run.sh: the controller did not become ready" >&2
  exit 1
fi

cat <<MSG

run.sh: eventbuffer-controller is running.
  objects:  http://$host:$HEALTH_PORT/v1/objects
  events:   http://$host:$HEALTH_PORT/v1/events?namespace=NS&kind=Pod&name=NAME
  status:   http://$host:$HEALTH_PORT/v1/status
  probes:   http://$host:$HEALTH_PORT/healthz  http://$host:$HEALTH_PORT/readyz
  metrics:  http://$host:$METRICS_PORT/metrics
MSG
if ((!real_cluster)); then
  echo "  emulator control API: http://127.0.0.1:$(cat "$WORKDIR/port")/_emulator/stats"
fi

if ((RUN_SECONDS > 0)); then
  echo "run.sh: stopping after ${RUN_SECONDS}s (RUN_SECONDS)"
  sleep "$RUN_SECONDS"
  # Smoke check: the read API serves events and the metrics endpoint answers.
  python3 - "$host" "$HEALTH_PORT" "$METRICS_PORT" <<'PY'
import json, sys, urllib.parse, urllib.request
host, hp, mp = sys.argv[1], sys.argv[2], sys.argv[3]
objs = json.load(urllib.request.urlopen("http://%s:%s/v1/objects" % (host, hp), timeout=5))["objects"]
assert objs, "no objects served"
o = objs[0]
q = urllib.parse.urlencode({"namespace": o["namespace"], "kind": o["kind"], "name": o["name"]})
evs = json.load(urllib.request.urlopen("http://%s:%s/v1/events?%s" % (host, hp, q), timeout=5))["events"]
assert len(evs) == o["events"], "object count and events disagree"
status = json.load(urllib.request.urlopen("http://%s:%s/v1/status" % (host, hp), timeout=5))
metrics = urllib.request.urlopen("http://%s:%s/metrics" % (host, mp), timeout=5).read().decode()
assert "eventbuffer_" in metrics, "no eventbuffer metrics"
print("run.sh: smoke check OK: %d objects, %d occurrences held, mode %s, %d mismatches"
      % (len(objs), sum(x["events"] for x in objs), status["buffer"]["mode"],
         status["buffer"]["mismatches"]["total"]))
PY
  kill -TERM "$ctl"
  set +e
  wait "$ctl"
  rc=$?
  set -e
  pids=("${pids[@]:1}")
  echo "run.sh: controller exited with $rc"
  exit "$rc"
fi

echo "run.sh: press Ctrl-C to stop"
trap 'kill -TERM "$ctl" 2>/dev/null || true' INT TERM
set +e
rc=0
# wait returns early when a trapped signal arrives: wait again until the controller is gone.
while kill -0 "$ctl" 2>/dev/null; do
  wait "$ctl"
  rc=$?
done
set -e
pids=("${pids[@]:1}")
exit "$rc"
