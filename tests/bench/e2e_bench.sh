#!/usr/bin/env bash
# End-to-end benchmark driver: starts the API-server emulator with a pre-built fast watch
# stream (served as fast as the client reads), then runs e2e_bench once per gray mode, each
# in a fresh process pinned to one core (the emulator gets the other core).
#
#   tests/bench/e2e_bench.sh [BUILD_DIR]        (default build)
# Environment: E2E_EVENTS (stream length, default 200000), E2E_MODES (default
# "atomic shadow legacy"), E2E_TLS=0 to serve plain HTTP, E2E_CPU (default 1),
# E2E_READ_LINE=1 to read watch lines with cpprestsdk's read_line instead of chunks.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
BUILD_DIR=${1:-$ROOT/build}
BIN=$BUILD_DIR/tests/bench/e2e_bench
EVENTS=${E2E_EVENTS:-200000}
MODES=${E2E_MODES:-atomic shadow legacy}
CPU=${E2E_CPU:-1}
NCPU=$(nproc)
EMU_CPU=0
if ((NCPU < 2)); then CPU=0; fi

[[ -x $BIN ]] || { echo "e2e_bench.sh: build $BIN first (ninja -C $BUILD_DIR e2e_bench)" >&2; exit 1; }
WORK=$(mktemp -d -t keb-e2e-XXXXXX)
emu_pid=""
cleanup() {
  [[ -n $emu_pid ]] && kill "$emu_pid" 2>/dev/null && wait "$emu_pid" 2>/dev/null
  rm -rf "$WORK"
}
trap cleanup EXIT

tls=()
[[ ${E2E_TLS:-1} == 0 ]] && tls=(--no-tls)
taskset -c "$EMU_CPU" python3 "$ROOT/tests/emulator/kube_emulator.py" --workdir "$WORK" --host 127.0.0.1 \
  --port 0 --scenario fast-stream --stream-events "$EVENTS" "${tls[@]}" >"$WORK/emu.out" 2>"$WORK/emu.log" &
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
echo "e2e_bench.sh: stream of $COUNT events ($((BYTES / COUNT)) bytes per watch line), TLS=${E2E_TLS:-1}," \
  "controller on CPU $CPU, emulator on CPU $EMU_CPU"
for mode in $MODES; do
  KEB_E2E_READ_LINE=${E2E_READ_LINE:-0} KEB_E2E_KUBECONFIG=$WORK/kubeconfig KEB_E2E_FIRST_RV=$FIRST KEB_E2E_EVENTS=$COUNT \
    taskset -c "$CPU" "$BIN" --benchmark_filter="BM_EndToEnd/$mode/" --benchmark_counters_tabular=true
done
