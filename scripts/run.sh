#!/usr/bin/env bash
# Builds and runs eventbuffer-controller.
#
#   scripts/run.sh                      no cluster: tests/emulator/demo.py starts the bundled
#                                       API-server emulator with realistic traffic and the
#                                       controller against it, serving events.eventbuffer.dev
#                                       on https://127.0.0.1:8443; it prints the kubectl lines
#                                       (WORKDIR/kubeconfig-demo, the demo policy's tokens)
#   scripts/run.sh --kubeconfig PATH    watch a real cluster (also: inside a Pod, in-cluster)
#   RUN_SECONDS=20 scripts/run.sh       stop by itself after 20 s (CI smoke run); the exit
#                                       code says whether the controller served events through
#                                       events.eventbuffer.dev, applied the demo policy,
#                                       answered /metrics and shut down cleanly
#
# Extra flags are passed to the controller (see `eventbuffer-controller --help`).
# Environment: BUILD_DIR (default build), SECURE_PORT (8443), HEALTH_PORT (8081),
# METRICS_PORT (8080) (without a cluster a taken port is replaced by a free one),
# SKIP_DEPS=1 (do not run scripts/install-deps.sh), SKIP_BUILD=1, KEEP_WORKDIR=1 (keep the
# demo's directory with its logs, certificates and kubeconfig-demo).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
BUILD_DIR=${BUILD_DIR:-build}
SECURE_PORT=${SECURE_PORT:-8443}
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

if ((!real_cluster)); then
  # No cluster: demo.py runs the emulator (with the demo auth policy) and the controller with
  # the secure port, a generated serving certificate and plain-HTTP /metrics.
  WORKDIR=$(mktemp -d -t keb-run-XXXXXX)
  trap 'if [[ ${KEEP_WORKDIR:-0} != 1 ]]; then rm -rf "$WORKDIR"; fi' EXIT
  echo "run.sh: no cluster given: the API-server emulator (demo traffic) and the controller, in $WORKDIR"
  demo=(python3 tests/emulator/demo.py --controller "$BIN" --workdir "$WORKDIR"
    --secure-port "$SECURE_PORT" --probe-port "$HEALTH_PORT" --metrics-port "$METRICS_PORT")
  if ((RUN_SECONDS > 0)); then
    echo "run.sh: stopping after ${RUN_SECONDS}s (RUN_SECONDS), then checking what the controller serves"
    demo+=(--duration "$RUN_SECONDS" --check)
  fi
  set +e
  "${demo[@]}" -- "$@"
  rc=$?
  set -e
  if ((RUN_SECONDS > 0)); then
    if ((rc == 0)); then
      echo "run.sh: smoke check OK: events served through events.eventbuffer.dev, clean shutdown"
    else
      echo "run.sh: smoke check FAILED (exit $rc); logs: $WORKDIR/controller.log $WORKDIR/emulator.log" >&2
      KEEP_WORKDIR=1
    fi
  fi
  exit "$rc"
fi

pids=()
cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
}
trap cleanup EXIT

# A real cluster. On a workstation the endpoints stay on loopback (and /metrics is plain
# HTTP there); inside a Pod they must be reachable and /metrics keeps its authentication.
# Without --tls-cert-file/--tls-private-key-file the controller makes a self-signed serving
# certificate; tokens are checked with the cluster's TokenReview and SubjectAccessReview.
host=127.0.0.1
if [[ -n ${KUBERNETES_SERVICE_HOST:-} ]]; then
  echo "run.sh: watching the cluster (in a Pod: eventbuffer.dev API on *:${SECURE_PORT}, probes on *:${HEALTH_PORT}, metrics (HTTPS) on *:${METRICS_PORT})"
  ctl_args=(--secure-port "$SECURE_PORT" --health-probe-bind-address ":${HEALTH_PORT}"
    --metrics-bind-address ":${METRICS_PORT}")
  metrics_url="https://$host:$METRICS_PORT/metrics (bearer token allowed to get /metrics)"
else
  echo "run.sh: watching the cluster (eventbuffer.dev API on 127.0.0.1:${SECURE_PORT}, probes on 127.0.0.1:${HEALTH_PORT}, metrics on 127.0.0.1:${METRICS_PORT})"
  ctl_args=(--secure-port "$SECURE_PORT" --bind-address 127.0.0.1
    --health-probe-bind-address "127.0.0.1:${HEALTH_PORT}"
    --metrics-bind-address "127.0.0.1:${METRICS_PORT}" --metrics-secure=false)
  metrics_url="http://$host:$METRICS_PORT/metrics (plain HTTP: --metrics-secure=false on loopback)"
fi

"$BIN" "${ctl_args[@]}" "$@" &
ctl=$!
pids=("$ctl")

# Wait for readiness (the first list in the buffer).
probe() { # PATH: 0 when the probe port answers 200
  python3 - "$host" "$HEALTH_PORT" "$1" <<'PY' 2>/dev/null
import sys, urllib.request
urllib.request.urlopen("http://%s:%s%s" % (sys.argv[1], sys.argv[2], sys.argv[3]), timeout=1)
PY
}
ready=0
for _ in $(seq 1 150); do
  if ! kill -0 "$ctl" 2>/dev/null; then break; fi
  if probe /readyz; then
    ready=1
    break
  fi
  sleep 0.2
done
# (Still running: an answer could also come from another process on that port.)
if ((!ready)) || ! kill -0 "$ctl" 2>/dev/null; then
  echo "run.sh: the controller did not become ready" >&2
  exit 1
fi

cat <<MSG

run.sh: eventbuffer-controller is running.
  eventbuffer.dev API:  https://$host:$SECURE_PORT (self-signed certificate unless --tls-cert-file);
                        a token the cluster's TokenReview accepts, allowed to list events.eventbuffer.dev:
    kubectl --server https://$host:$SECURE_PORT --insecure-skip-tls-verify=true --token "\$TOKEN" get events.eventbuffer.dev -A
  probes:   http://$host:$HEALTH_PORT/livez  http://$host:$HEALTH_PORT/healthz  http://$host:$HEALTH_PORT/readyz
  metrics:  $metrics_url
MSG

if ((RUN_SECONDS > 0)); then
  echo "run.sh: stopping after ${RUN_SECONDS}s (RUN_SECONDS)"
  sleep "$RUN_SECONDS"
  # Smoke check: still ready and live (reading the API needs a token of the cluster).
  probe /readyz || { echo "run.sh: /readyz fails after ${RUN_SECONDS}s" >&2; exit 1; }
  probe /livez || { echo "run.sh: /livez fails after ${RUN_SECONDS}s" >&2; exit 1; }
  kill -TERM "$ctl"
  set +e
  wait "$ctl"
  rc=$?
  set -e
  pids=()
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
pids=()
exit "$rc"
