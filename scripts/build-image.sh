#!/usr/bin/env bash
# Builds the kube-eventbuffer container image and smoke-tests it; used by CI.
#
#   scripts/build-image.sh [--from-head] [TAG]
#
#   TAG          image tag (default kube-eventbuffer:dev, the image the manifests name);
#                the image is also tagged kube-eventbuffer:<project version>
#   --from-head  build from `git archive HEAD` instead of the work tree: proves that a
#                clean checkout builds (uncommitted files are left out)
#
# Without a Docker engine: it wraps the shared build-image tool (buildah + podman on a
# locally made Debian base; as root; the first run debootstraps the base and takes minutes).
# Then, inside the image (podman, no network):
#   1. `--version` prints the project version from CMakeLists.txt;
#   2. `--check-config` accepts the config.yaml of every rollout stage exactly as the
#      rendered ConfigMap ships it (kubectl kustomize manifests/overlays/<stage>);
#   3. `--check-config` rejects a broken config (the check can fail);
#   4. the image runs as 65532 and has the controller as its entrypoint;
#   5. run as the pod runs it (read-only root, no capabilities, the config as a ConfigMap
#      volume, the rendered Deployment's args), the controller watches the bundled API-server emulator on 127.0.0.1 (TLS,
#      token), serves the read API and metrics in shadow mode, hot-reloads a stage change
#      to canary-10 delivered as the kubelet delivers it (..data symlink swap) without a
#      restart or a lost event, and exits 0 on SIGTERM.
# Prints the image size. Exit status non-zero on any failure.
#
# Environment: KEB_SHARED_DIR (default <repo>/../shared); KUBECTL (default kubectl);
# SKIP_BUILD=1 checks the existing image TAG without building; KEB_IMAGE_E2E=0 skips step 5;
# and build-image's own (DOCKFEAS_HOME, STORAGE_DRIVER, PRUNE).
set -euo pipefail

root=$(cd "$(dirname "$0")/.." && pwd)
from_head=0
if [[ ${1:-} == --from-head ]]; then from_head=1; shift; fi
tag=${1:-kube-eventbuffer:dev}
shared=${KEB_SHARED_DIR:-$root/../shared}
build_image=$shared/tools/build-image
stages=(legacy shadow canary-1 canary-10 canary-50 atomic)

log() { printf '[build-image.sh %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "FAIL: $*"; exit 1; }

[[ -x $build_image ]] || die "$build_image not found (set KEB_SHARED_DIR)"
version=$(sed -n 's/^project(kube-eventbuffer VERSION \([0-9][0-9.]*\).*/\1/p' "$root/CMakeLists.txt")
[[ -n $version ]] || die "no project version in CMakeLists.txt"

work=$(mktemp -d /tmp/keb-image.XXXXXX)
trap 'rm -rf "$work"' EXIT

context=$root
if ((from_head)); then
  context=$work/context
  mkdir -p "$context"
  git -C "$root" archive --format=tar HEAD | tar -x -C "$context"
  log "building from HEAD $(git -C "$root" rev-parse --short HEAD) in $context"
fi

# 1. build
if [[ ${SKIP_BUILD:-0} == 1 ]]; then
  log "SKIP_BUILD=1: checking the existing image $tag"
else
  "$build_image" "$context" "$tag"
fi
eval "$("$build_image" --env)"
podman tag "$tag" "kube-eventbuffer:$version"

run() { podman run --rm --network none "$@"; }

# 2. --version
out=$(run "$tag" --version 2>&1) || die "--version exited non-zero: $out"
log "--version: $out"
[[ $out == *"$version"* ]] || die "--version does not print the project version $version"

# 3. --check-config on every stage's config as the rendered ConfigMap ships it. The
# interpreter must have PyYAML (Debian's python3-yaml lives in /usr/bin/python3).
python=""
for p in python3 /usr/bin/python3; do
  if command -v "$p" >/dev/null && "$p" -c 'import yaml' 2>/dev/null; then python=$p; break; fi
done
[[ -n $python ]] || die "no python3 with the yaml module (Debian python3-yaml)"
kubectl=${KUBECTL:-kubectl}
command -v "$kubectl" >/dev/null || die "kubectl is needed to render the manifests"
configs=$work/configs
mkdir -p "$configs"
for stage in "${stages[@]}"; do
  "$kubectl" kustomize "$root/manifests/overlays/$stage" | "$python" -c '
import sys, yaml
cms = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "ConfigMap"
       and d["metadata"]["name"] == "kube-eventbuffer-config"]
assert len(cms) == 1, "expected one ConfigMap kube-eventbuffer-config"
sys.stdout.write(cms[0]["data"]["config.yaml"])' > "$configs/$stage.yaml" \
    || die "could not render the $stage config"
done
# A config the controller must refuse: an unknown mode.
sed 's/^\(  *mode:\).*/\1 blue-green/' "$configs/shadow.yaml" > "$configs/broken-mode.yaml"
grep -q 'mode: blue-green' "$configs/broken-mode.yaml" || die "could not make the broken config"
chmod 755 "$configs" && chmod 644 "$configs"/*.yaml  # readable by the image's user 65532

for stage in "${stages[@]}"; do
  out=$(run -v "$configs:/config:ro" "$tag" --check-config "/config/$stage.yaml" 2>&1) \
    || die "--check-config rejects the shipped $stage config: $out"
  log "--check-config $stage: ok${out:+ ($out)}"
done
if out=$(run -v "$configs:/config:ro" "$tag" --check-config /config/broken-mode.yaml 2>&1); then
  die "--check-config accepts a config with an unknown mode: $out"
fi
log "--check-config rejects an unknown mode: ${out//$'\n'/ }"

# 4. image metadata
user=$(podman image inspect --format '{{.Config.User}}' "$tag")
entrypoint=$(podman image inspect --format '{{json .Config.Entrypoint}}' "$tag")
[[ $user == 65532* ]] || die "image user is '$user', want 65532"
[[ $entrypoint == '["/usr/local/bin/eventbuffer-controller"]' ]] || die "entrypoint is $entrypoint"
out=$(run --entrypoint /usr/bin/id "$tag" -u) || die "cannot run id in the image"
[[ $out == 65532 ]] || die "the container runs as uid $out"

# 5. the image as the pod runs it (read-only root, every capability dropped, uid 65532,
# the config mounted as a ConfigMap volume is laid out by the kubelet) watches the bundled
# API-server emulator over TLS on 127.0.0.1, serves the read API and metrics in shadow
# mode, follows a stage change the way the kubelet delivers it (a new ..data symlink),
# keeps its buffer through it, and stops cleanly on SIGTERM.
if [[ ${KEB_IMAGE_E2E:-1} == 1 ]]; then
  emu=$work/emulator
  mkdir -p "$emu"
  python3 "$root/tests/emulator/kube_emulator.py" --workdir "$emu" --host 127.0.0.1 --port 0 \
    --scenario demo --max-lifetime 300 >"$emu/out" 2>"$emu/log" &
  emu_pid=$!
  container=keb-image-smoke-$$
  trap 'podman rm -f "$container" >/dev/null 2>&1 || true; kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    grep -q ready "$emu/out" 2>/dev/null && [[ -s $emu/kubeconfig ]] && break
    sleep 0.1
  done
  grep -q ready "$emu/out" || die "the emulator did not start: $(cat "$emu/log")"
  chmod -R a+rX "$emu" # kubeconfig, CA and token readable by uid 65532

  # A ConfigMap volume as the kubelet writes it: config.yaml -> ..data/config.yaml,
  # ..data -> a timestamped folder; an update writes a new folder and renames a new
  # ..data symlink over the old one.
  cm=$work/configmap
  mkdir -p "$cm/..v1"
  cp "$configs/shadow.yaml" "$cm/..v1/config.yaml"
  ln -s ..v1 "$cm/..data"
  ln -s ..data/config.yaml "$cm/config.yaml"
  chmod -R a+rX "$cm"

  read -r hp mp < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(2)]
for s in ss: s.bind(("127.0.0.1", 0))
print(*[s.getsockname()[1] for s in ss])')
  # The container's args exactly as the rendered Deployment has them, with the bind addresses
  # moved to loopback ports (the container shares the host's network here).
  mapfile -t args < <("$kubectl" kustomize "$root/manifests/overlays/shadow" | "$python" -c '
import sys, yaml
deps = [d for d in yaml.safe_load_all(sys.stdin) if d and d["kind"] == "Deployment"]
for a in deps[0]["spec"]["template"]["spec"]["containers"][0]["args"]:
    if a.startswith("--metrics-bind-address="): a = "--metrics-bind-address=127.0.0.1:" + sys.argv[1]
    if a.startswith("--health-probe-bind-address="): a = "--health-probe-bind-address=127.0.0.1:" + sys.argv[2]
    print(a)' "$mp" "$hp")
  [[ " ${args[*]} " == *" --config=/etc/kube-eventbuffer/config.yaml "* ]] \
    || die "unexpected Deployment args: ${args[*]}"
  log "container args: ${args[*]} --kubeconfig=$emu/kubeconfig"
  podman run -d --name "$container" --network host --read-only --tmpfs /tmp \
    --cap-drop ALL --security-opt no-new-privileges \
    -v "$emu:$emu:ro" -v "$cm:/etc/kube-eventbuffer:ro" "$tag" \
    "${args[@]}" --kubeconfig="$emu/kubeconfig" >/dev/null
  # GET with python3 (curl is not among the project's packages).
  http_get() { python3 -c 'import sys, urllib.request; sys.stdout.write(urllib.request.urlopen(sys.argv[1], timeout=5).read().decode())' "$1"; }
  held() { # "objects occurrences" held by the controller
    http_get "http://127.0.0.1:$hp/v1/objects" \
      | python3 -c 'import json,sys; o=json.load(sys.stdin)["objects"]; print(len(o), sum(x["events"] for x in o))'
  }
  ready=0
  for _ in $(seq 1 150); do
    if http_get "http://127.0.0.1:$hp/readyz" >/dev/null 2>&1; then ready=1; break; fi
    [[ $(podman inspect --format '{{.State.Running}}' "$container") == true ]] || break
    sleep 0.2
  done
  ((ready)) || die "the containerized controller did not become ready: $(podman logs "$container" 2>&1 | tail -20)"
  sleep 3 # some demo traffic on the watch
  before=$(held) || die "GET /v1/objects failed"
  [[ ${before%% *} -gt 0 ]] || die "the containerized controller serves no objects"
  metrics=$(http_get "http://127.0.0.1:$mp/metrics") || die "GET /metrics failed"
  grep -q '^eventbuffer_gray_mode{mode="shadow"} 1' <<<"$metrics" || die "/metrics does not show mode shadow"

  # Stage change shadow -> canary-10, delivered like a ConfigMap update.
  mkdir -p "$cm/..v2"
  cp "$configs/canary-10.yaml" "$cm/..v2/config.yaml"
  chmod -R a+rX "$cm/..v2"
  ln -s ..v2 "$cm/..data_tmp"
  mv -T "$cm/..data_tmp" "$cm/..data"
  switched=0
  for _ in $(seq 1 60); do
    metrics=$(http_get "http://127.0.0.1:$mp/metrics") || break
    if grep -q '^eventbuffer_gray_mode{mode="canary"} 1' <<<"$metrics" \
      && grep -q '^eventbuffer_rollout_percent 10$' <<<"$metrics"; then switched=1; break; fi
    sleep 0.5
  done
  ((switched)) || die "the controller did not reload the new ConfigMap content (canary-10) within 30 s: $(podman logs "$container" 2>&1 | tail -10)"
  after=$(held) || die "GET /v1/objects failed after the stage change"
  [[ ${after#* } -ge ${before#* } ]] || die "occurrences dropped over the stage change: $before -> $after"
  [[ $(podman inspect --format '{{.RestartCount}}' "$container") == 0 ]] || die "the container restarted"

  podman stop -t 10 "$container" >/dev/null
  rc=$(podman inspect --format '{{.State.ExitCode}}' "$container")
  [[ $rc == 0 ]] || die "the controller exited with $rc on SIGTERM: $(podman logs "$container" 2>&1 | tail -20)"
  log "in-container run against the emulator: objects/occurrences $before in shadow," \
    "hot reload to canary-10 without restart ($after held after), exit 0 on SIGTERM"
fi

size=$(podman image inspect --format '{{.Size}}' "$tag")
log "image $tag (also kube-eventbuffer:$version): $((size / 1000000)) MB ($size bytes), user $user"
log "all image checks passed"
