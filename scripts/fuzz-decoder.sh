#!/usr/bin/env bash
# Builds the EventDecoder libFuzzer target with clang 14 (ASan + UBSan) and runs it for a
# bounded time. Usage: scripts/fuzz-decoder.sh [SECONDS]   (default 60)
# Prints the number of executions libFuzzer ran; exits non-zero on any crash.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
out=${FUZZ_OUT:-build-fuzz}
mkdir -p "$out/corpus" "$out/artifacts"
CXX=${CXX_FUZZ:-clang++-14}
command -v "$CXX" >/dev/null || CXX=clang++

flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I.)
if [[ ! -x $out/event_decoder_fuzz || tests/fuzz/event_decoder_fuzz.cpp -nt $out/event_decoder_fuzz ||
      controller/kube/event_decoder.cpp -nt $out/event_decoder_fuzz || eventbuffer/event_record.cpp -nt $out/event_decoder_fuzz ||
      eventbuffer/intern_table.cpp -nt $out/event_decoder_fuzz ]]; then
  echo "fuzz: building $out/event_decoder_fuzz with $CXX"
  "$CXX" "${flags[@]}" tests/fuzz/event_decoder_fuzz.cpp controller/kube/event_decoder.cpp \
    eventbuffer/event_record.cpp eventbuffer/intern_table.cpp -lsimdjson -o "$out/event_decoder_fuzz"
fi

# Seed corpus: real list and watch shapes, one file per entry point (first byte = mode).
python3 - "$out/corpus" <<'PY'
import os, sys
out = sys.argv[1]
root = "tests/controller/kube/testdata"
lines = open(os.path.join(root, "watch_stream.jsonl"), "rb").read().splitlines()
for i, line in enumerate(lines):
    open(os.path.join(out, f"watch-{i}"), "wb").write(b"\x00" + line)
    if b'"object":{"kind":"Event"' in line or b'"object":{"metadata"' in line:
        obj = line[line.index(b'"object":') + 9:-1]
        open(os.path.join(out, f"event-{i}"), "wb").write(b"\x02" + obj)
open(os.path.join(out, "list-0"), "wb").write(b"\x01" + open(os.path.join(root, "event_list.json"), "rb").read())
open(os.path.join(out, "status-0"), "wb").write(b'\x03{"kind":"Status","code":429,"reason":"TooManyRequests","message":"slow down"}')
PY

echo "fuzz: running for ${seconds}s"
log="$out/fuzz.log"
set +e
"$out/event_decoder_fuzz" -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
  -artifact_prefix="$out/artifacts/" -print_final_stats=1 "$out/corpus" >"$log" 2>&1
rc=$?
set -e
grep -E '^stat::number_of_executed_units|^stat::peak_rss_mb|^#[0-9]+ +DONE' "$log" || true
execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log")
if [[ $rc -ne 0 ]]; then
  tail -40 "$log"
  echo "fuzz: FAILED (exit $rc); crashing input in $out/artifacts/" >&2
  exit 1
fi
echo "fuzz: ${execs:-?} executions in ${seconds}s, no crash"
