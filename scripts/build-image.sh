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
#   4. the image runs as 65532 and has the controller as its entrypoint.
# Prints the image size. Exit status non-zero on any failure.
#
# Environment: KEB_SHARED_DIR (default <repo>/../shared), and build-image's own
# (DOCKFEAS_HOME, STORAGE_DRIVER, PRUNE).
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
"$build_image" "$context" "$tag"
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
command -v kubectl >/dev/null || die "kubectl is needed to render the manifests"
configs=$work/configs
mkdir -p "$configs"
for stage in "${stages[@]}"; do
  kubectl kustomize "$root/manifests/overlays/$stage" | "$python" -c '
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

size=$(podman image inspect --format '{{.Size}}' "$tag")
log "image $tag (also kube-eventbuffer:$version): $((size / 1000000)) MB ($size bytes), user $user"
log "all image checks passed"
