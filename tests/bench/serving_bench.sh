#!/usr/bin/env bash
# Serving benchmark driver (tests/bench/serving_bench.cpp).
#
#   tests/bench/serving_bench.sh [BUILD_DIR]        (default build)
#
# Part "ingest": starts the API-server emulator with a pre-built fast watch stream, then runs
# BM_IngestUnderReadLoad: the stream into the buffer alone and with concurrent HTTPS readers,
# alternating, SERVING_REPS times, medians and their ratio.
# Part "read": the page latencies and the namespace walk on a 1M-occurrence buffer (no
# emulator needed).
#
# Environment: SERVING_PARTS (default "ingest read"), SERVING_EVENTS (stream length, default
# 400000), SERVING_REPS (default 5), SERVING_READERS (default 16), SERVING_PREFILL (default
# 200000), SERVING_SERVER_NICE (the server threads at this nice value instead of the
# controller's default --serving-nice 19; 0: equal priority with the watch),
# SERVING_PLACEMENT:
#   split  (default) the emulator and the reader threads on CPU 0, the controller's side
#          (watch, buffer, server threads) on CPU 1: the controller has one core of its own,
#          the readers stand for clients elsewhere;
#   shared the emulator on CPU 0, the whole benchmark process (readers included) free to
#          run on both CPUs.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
BIN=$BUILD_DIR/tests/bench/serving_bench
PARTS=${SERVING_PARTS:-ingest read}
EVENTS=${SERVING_EVENTS:-400000}
PLACEMENT=${SERVING_PLACEMENT:-split}

[[ -x $BIN ]] || { echo "serving_bench.sh: build $BIN first (ninja -C $BUILD_DIR serving_bench)" >&2; exit 1; }
(($(nproc) >= 2)) || { echo "serving_bench.sh: needs 2 CPUs" >&2; exit 1; }
WORK=$(mktemp -d -t keb-serving-XXXXXX)
emu_pid=""
cleanup() {
  [[ -n $emu_pid ]] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

if [[ " $PARTS " == *" ingest "* ]]; then
  taskset -c 0 python3 "$ROOT/tests/emulator/kube_emulator.py" --workdir "$WORK" --host 127.0.0.1 \
    --port 0 --scenario fast-stream --stream-events "$EVENTS" >"$WORK/emu.out" 2>"$WORK/emu.log" &
  emu_pid=$!
  for _ in $(seq 1 600); do grep -q ready "$WORK/emu.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/emu.out" || { cat "$WORK/emu.log" >&2; exit 1; }
  PORT=$(cat "$WORK/port")
  read -r FIRST COUNT BYTES < <(python3 - "$PORT" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_emulator/stats" % sys.argv[1]))["stream"]
print(int(s["first_resource_version"]) - 1, s["events"], s["bytes"])
PY
)
  pin=(taskset -c 0,1)
  reader_cpus=""
  if [[ $PLACEMENT == split ]]; then
    pin=(taskset -c 1)
    reader_cpus=0
  fi
  echo "serving_bench.sh: stream of $COUNT events ($((BYTES / COUNT)) bytes per watch line), placement $PLACEMENT"
  KEB_SERVING_KUBECONFIG=$WORK/kubeconfig KEB_SERVING_FIRST_RV=$FIRST KEB_SERVING_EVENTS=$COUNT \
    KEB_SERVING_REPS=${SERVING_REPS:-5} KEB_SERVING_READERS=${SERVING_READERS:-16} \
    KEB_SERVING_PREFILL=${SERVING_PREFILL:-200000} KEB_SERVING_READER_CPUS=$reader_cpus \
    KEB_SERVING_SERVER_NICE=${SERVING_SERVER_NICE:-} \
    "${pin[@]}" "$BIN" --benchmark_filter='BM_IngestUnderReadLoad' --benchmark_counters_tabular=true
  kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null || true
  emu_pid=""
fi

if [[ " $PARTS " == *" read "* ]]; then
  "$BIN" --benchmark_filter='BM_Page|BM_WalkNamespace' --benchmark_counters_tabular=true
fi
