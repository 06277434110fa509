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
#   4. the image runs as 65532, has the controller as its entrypoint and exposes 8443 (the
#      eventbuffer.dev API), 8080 (/metrics) and 8081 (probes);
#   5. run as the pod runs it (read-only root, no capabilities, the config and the serving
#      certificate in one projected volume, --data-dir on a tmpfs as the pod's emptyDir, the
#      rendered Deployment's args with the ports moved to loopback), the controller watches the bundled API-server emulator on
#      127.0.0.1 (TLS, token), serves events.eventbuffer.dev on its secure port with that
#      certificate (read as the demo policy's viewer, verified against the demo CA; 401
#      without a token, 403 for a user without rights) and /metrics over HTTPS with the same
#      authentication, in shadow mode; hot-reloads a stage change to canary-10 delivered as
#      the kubelet delivers it (..data symlink swap) without a restart or a lost event, and
#      exits 0 on SIGTERM.
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
ports=$(podman image inspect --format '{{json .Config.ExposedPorts}}' "$tag")
for port in 8443 8080 8081; do # the API, /metrics, the probes (the Deployment's containerPorts)
  [[ $ports == *"\"$port/tcp\""* ]] || die "the image does not expose $port: $ports"
done
out=$(run --entrypoint /usr/bin/id "$tag" -u) || die "cannot run id in the image"
[[ $out == 65532 ]] || die "the container runs as uid $out"

# 5. the image as the pod runs it (read-only root, every capability dropped, uid 65532,
# the projected volume of config and serving certificate laid out as the kubelet does)
# watches the bundled API-server emulator over TLS on 127.0.0.1, serves events.eventbuffer.dev
# and /metrics over HTTPS with delegated authentication and authorization (the emulator
# answers the reviews from tests/emulator/demo-policy.json) in shadow mode, follows a stage
# change the way the kubelet delivers it (a new ..data symlink), keeps its buffer through
# it, and stops cleanly on SIGTERM.
if [[ ${KEB_IMAGE_E2E:-1} == 1 ]]; then
  emu=$work/emulator
  mkdir -p "$emu"
  python3 "$root/tests/emulator/kube_emulator.py" --workdir "$emu" --host 127.0.0.1 --port 0 \
    --scenario demo --auth-policy "$root/tests/emulator/demo-policy.json" --max-lifetime 300 \
    >"$emu/out" 2>"$emu/log" &
  emu_pid=$!
  container=keb-image-smoke-$$
  trap 'podman rm -f "$container" >/dev/null 2>&1 || true; kill "$emu_pid" 2>/dev/null || true; rm -rf "$work"' EXIT
  for _ in $(seq 1 100); do
    grep -q ready "$emu/out" 2>/dev/null && [[ -s $emu/kubeconfig ]] && break
    sleep 0.1
  done
  grep -q ready "$emu/out" || die "the emulator did not start: $(cat "$emu/log")"
  chmod -R a+rX "$emu" # kubeconfig, CA and token readable by uid 65532

  # The serving certificate (the Secret kube-eventbuffer-serving-cert) for 127.0.0.1, signed
  # by a CA the checks below trust; the demo policy's viewer token reads through it.
  access=$root/tests/emulator/demo_access.py
  python3 "$access" make-cert "$work/serving" || die "could not make the serving certificate"
  ca=$work/serving/ca.crt
  token=demo-viewer-token

  # The Deployment's projected volume (ConfigMap + Secret) as the kubelet writes it:
  # config.yaml -> ..data/config.yaml, serving-cert -> ..data/serving-cert, ..data -> a
  # timestamped folder; an update writes a new folder and renames a new ..data symlink over
  # the old one. The key is mode 0440, group 65532 (the pod's fsGroup).
  cm=$work/configmap
  payload() { # DIR CONFIG: one timestamped folder
    mkdir -p "$1/serving-cert"
    cp "$2" "$1/config.yaml"
    cp "$work/serving/tls.crt" "$work/serving/tls.key" "$1/serving-cert/"
    chmod -R a+rX "$1"
    chgrp 65532 "$1/serving-cert/tls.key"
    chmod 0440 "$1/serving-cert/tls.key"
  }
  payload "$cm/..v1" "$configs/shadow.yaml"
  ln -s ..v1 "$cm/..data"
  ln -s ..data/config.yaml "$cm/config.yaml"
  ln -s ..data/serving-cert "$cm/serving-cert"
  chmod a+rx "$cm"

  read -r hp mp sp < <(python3 -c '
import socket
ss = [socket.socket() for _ in range(3)]
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
    if a.startswith("--secure-port="): a = "--secure-port=" + sys.argv[3]
    if a.startswith("--bind-address="): a = "--bind-address=127.0.0.1"
    print(a)' "$mp" "$hp" "$sp")
  for want in --config=/etc/kube-eventbuffer/config.yaml "--secure-port=$sp" --bind-address=127.0.0.1 \
    --tls-cert-file=/etc/kube-eventbuffer/serving-cert/tls.crt \
    --tls-private-key-file=/etc/kube-eventbuffer/serving-cert/tls.key --metrics-secure=true; do
    [[ " ${args[*]} " == *" $want "* ]] || die "the Deployment args lack $want: ${args[*]}"
  done
  # --data-dir is the pod's data volume (an emptyDir): a writable tmpfs here.
  data_dir=
  for a in "${args[@]}"; do [[ $a == --data-dir=* ]] && data_dir=${a#--data-dir=}; done
  [[ -n $data_dir ]] || die "the Deployment args lack --data-dir: ${args[*]}"
  log "container args: ${args[*]} --kubeconfig=$emu/kubeconfig"
  podman run -d --name "$container" --network host --read-only --tmpfs /tmp \
    --tmpfs "$data_dir:rw,mode=1777" \
    --cap-drop ALL --security-opt no-new-privileges \
    -v "$emu:$emu:ro" -v "$cm:/etc/kube-eventbuffer:ro" "$tag" \
    "${args[@]}" --kubeconfig="$emu/kubeconfig" >/dev/null
  # GET with python3 (curl is not among the project's packages): plain HTTP for the probes,
  # HTTPS verified with the demo CA and the viewer's token for the API and /metrics.
  http_get() { python3 "$access" get "$1"; }
  https_get() { python3 "$access" get "$1" --ca "$ca" --token "$token"; }
  held() { # "occurrences objects namespaces" held, listed through events.eventbuffer.dev
    python3 "$access" summary "https://127.0.0.1:$sp" --ca "$ca" --token "$token"
  }
  ready=0
  for _ in $(seq 1 150); do
    if http_get "http://127.0.0.1:$hp/readyz" >/dev/null 2>&1; then ready=1; break; fi
    [[ $(podman inspect --format '{{.State.Running}}' "$container") == true ]] || break
    sleep 0.2
  done
  ((ready)) || die "the containerized controller did not become ready: $(podman logs "$container" 2>&1 | tail -20)"
  sleep 3 # some demo traffic on the watch
  before=$(held) || die "listing events.eventbuffer.dev failed: $(podman logs "$container" 2>&1 | tail -10)"
  [[ ${before%% *} -gt 0 ]] || die "the containerized controller serves no events"
  # Fail closed: no token is 401, a user without rights 403, on the API and on /metrics.
  api=https://127.0.0.1:$sp/apis/eventbuffer.dev/v1alpha1/events
  python3 "$access" get "$api" --ca "$ca" --expect 401 >/dev/null || die "the API without a token is not 401"
  python3 "$access" get "$api" --ca "$ca" --token demo-nobody-token --expect 403 >/dev/null \
    || die "the API as a user without rights is not 403"
  python3 "$access" get "https://127.0.0.1:$mp/metrics" --ca "$ca" --expect 401 >/dev/null \
    || die "/metrics without a token is not 401"
  python3 "$access" get "https://127.0.0.1:$mp/metrics" --ca "$ca" --token demo-nobody-token --expect 403 \
    >/dev/null || die "/metrics as a user without rights is not 403"
  metrics=$(https_get "https://127.0.0.1:$mp/metrics") || die "GET /metrics failed"
  grep -q '^eventbuffer_gray_mode{mode="shadow"} 1' <<<"$metrics" || die "/metrics does not show mode shadow"

  # Stage change shadow -> canary-10, delivered like a ConfigMap update.
  payload "$cm/..v2" "$configs/canary-10.yaml"
  ln -s ..v2 "$cm/..data_tmp"
  mv -T "$cm/..data_tmp" "$cm/..data"
  switched=0
  for _ in $(seq 1 60); do
    metrics=$(https_get "https://127.0.0.1:$mp/metrics") || break
    if grep -q '^eventbuffer_gray_mode{mode="canary"} 1' <<<"$metrics" \
      && grep -q '^eventbuffer_rollout_percent 10$' <<<"$metrics"; then switched=1; break; fi
    sleep 0.5
  done
  ((switched)) || die "the controller did not reload the new ConfigMap content (canary-10) within 30 s: $(podman logs "$container" 2>&1 | tail -10)"
  after=$(held) || die "listing events.eventbuffer.dev failed after the stage change"
  [[ ${after%% *} -ge ${before%% *} ]] || die "occurrences dropped over the stage change: $before -> $after"
  [[ $(podman inspect --format '{{.RestartCount}}' "$container") == 0 ]] || die "the container restarted"

  podman stop -t 10 "$container" >/dev/null
  rc=$(podman inspect --format '{{.State.ExitCode}}' "$container")
  [[ $rc == 0 ]] || die "the controller exited with $rc on SIGTERM: $(podman logs "$container" 2>&1 | tail -20)"
  log "in-container run against the emulator: events.eventbuffer.dev on the secure port holds" \
    "occurrences/objects/namespaces $before in shadow (401 without a token, 403 without rights)," \
    "hot reload to canary-10 without restart ($after held after), exit 0 on SIGTERM"
fi

size=$(podman image inspect --format '{{.Size}}' "$tag")
log "image $tag (also kube-eventbuffer:$version): $((size / 1000000)) MB ($size bytes), user $user"
log "all image checks passed"
