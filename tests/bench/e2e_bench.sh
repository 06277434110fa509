#!/usr/bin/env bash
# End-to-end benchmark driver: starts the API-server emulator with a pre-built fast watch
# stream (served as fast as the client reads), then runs e2e_bench once per gray mode, each
# in a fresh process pinned to one core (the emulator gets the other core). With several
# stream shapes, one emulator (one stream) per shape, each run for every mode.
#
#   tests/bench/e2e_bench.sh [--revisions N] [--shapes "N..."] [BUILD_DIR]   (default build)
#
# Stream shapes (the emulator's --stream-revisions):
#   0 (distinct, the default): ADDED Events, 1 line in 5 a MODIFIED repeat of a recent one.
#   N > 0: each Event as ADDED then exactly N MODIFIED revisions (count 1..N+1, a new
#          resourceVersion and lastTimestamp each, nothing else changed: a kubelet BackOff
#          repeating), the revisions of a few hundred Events in flight interleaved.
#   --revisions N     runs the distinct stream, then the N-revisions stream (N=0: only the
#                     distinct one). E.g. `e2e_bench.sh --revisions 4`.
#   --shapes "N..."   runs exactly these shapes, in order (e.g. --shapes 4: only N=4).
# Every result block is preceded by a "== shape ... mode ..." line saying which is which.
# Environment: E2E_REVISIONS (as --revisions), E2E_SHAPES (as --shapes; options win),
# E2E_EVENTS (stream length, default 200000; a multiple of N+1 gives every Event all its
# revisions), E2E_MODES (default "atomic shadow legacy"), E2E_TLS=0 to serve plain HTTP,
# E2E_CPU (default 1), E2E_READ_LINE=1 to read watch lines with cpprestsdk's read_line
# instead of chunks.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
usage() { sed -n '2,/^set -euo/{/^#/s/^# \{0,1\}//p}' "${BASH_SOURCE[0]}" >&2; exit 2; }
shapes_for_revisions() {
  [[ $1 =~ ^[0-9]+$ ]] || { echo "e2e_bench.sh: --revisions takes a count, not '$1'" >&2; exit 2; }
  if (($1 == 0)); then echo 0; else echo "0 $1"; fi
}
SHAPES=${E2E_SHAPES:-}
[[ -z $SHAPES && -n ${E2E_REVISIONS:-} ]] && SHAPES=$(shapes_for_revisions "$E2E_REVISIONS")
BUILD_DIR=""
while (($#)); do
  case $1 in
    --revisions) (($# >= 2)) || usage; SHAPES=$(shapes_for_revisions "$2"); shift 2 ;;
    --revisions=*) SHAPES=$(shapes_for_revisions "${1#*=}"); shift ;;
    --shapes) (($# >= 2)) || usage; SHAPES=$2; shift 2 ;;
    --shapes=*) SHAPES=${1#*=}; shift ;;
    -h|--help) usage ;;
    -*) echo "e2e_bench.sh: unknown option $1" >&2; usage ;;
    *) [[ -z $BUILD_DIR ]] || usage; BUILD_DIR=$1; shift ;;
  esac
done
SHAPES=${SHAPES:-0}
for n in $SHAPES; do
  [[ $n =~ ^[0-9]+$ ]] || { echo "e2e_bench.sh: a shape is a revision count, not '$n'" >&2; exit 2; }
done
BUILD_DIR=${BUILD_DIR:-$ROOT/build}
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
stop_emulator() {
  if [[ -n $emu_pid ]]; then
    kill "$emu_pid" 2>/dev/null || true
    wait "$emu_pid" 2>/dev/null || true
    emu_pid=""
  fi
}
cleanup() {
  stop_emulator
  rm -rf "$WORK"
}
trap cleanup EXIT

shape_name() { if (($1 == 0)); then echo "distinct"; else echo "revisions=$1"; fi; }

tls=()
[[ ${E2E_TLS:-1} == 0 ]] && tls=(--no-tls)
for revisions in $SHAPES; do
  SHAPE=$(shape_name "$revisions")
  EMU_DIR=$WORK/$SHAPE
  mkdir -p "$EMU_DIR"
  taskset -c "$EMU_CPU" python3 "$ROOT/tests/emulator/kube_emulator.py" --workdir "$EMU_DIR" --host 127.0.0.1 \
    --port 0 --scenario fast-stream --stream-events "$EVENTS" --stream-revisions "$revisions" "${tls[@]}" \
    >"$EMU_DIR/emu.out" 2>"$EMU_DIR/emu.log" &
  emu_pid=$!
  for _ in $(seq 1 600); do grep -q ready "$EMU_DIR/emu.out" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$EMU_DIR/emu.out" || { cat "$EMU_DIR/emu.log" >&2; exit 1; }
  PORT=$(cat "$EMU_DIR/port")
  read -r FIRST COUNT BYTES < <(python3 - "$PORT" <<'PY'
import json, sys, urllib.request
s = json.load(urllib.request.urlopen("http://127.0.0.1:%s/_emulator/stats" % sys.argv[1]))["stream"]
print(int(s["first_resource_version"]) - 1, s["events"], s["bytes"])
PY
  )
  if ((revisions == 0)); then
    desc="distinct: ADDED Events, 1 in 5 lines a MODIFIED repeat"
  else
    desc="revisions=$revisions: each Event ADDED then $revisions MODIFIED revisions"
  fi
  echo "e2e_bench.sh: stream of $COUNT events, shape $desc ($((BYTES / COUNT)) bytes per watch line)," \
    "TLS=${E2E_TLS:-1}, controller on CPU $CPU, emulator on CPU $EMU_CPU"
  for mode in $MODES; do
    echo "== shape $SHAPE, mode $mode"
    KEB_E2E_READ_LINE=${E2E_READ_LINE:-0} KEB_E2E_KUBECONFIG=$EMU_DIR/kubeconfig KEB_E2E_FIRST_RV=$FIRST \
      KEB_E2E_EVENTS=$COUNT taskset -c "$CPU" "$BIN" --benchmark_filter="BM_EndToEnd/$mode/" \
      --benchmark_counters_tabular=true
  done
  stop_emulator
done
