#!/usr/bin/env bash
# Installs every Debian package that building, running and testing kube-eventbuffer need.
# Idempotent: when everything is present it does nothing (no apt-get update).
# Usage: scripts/install-deps.sh [--build-only | --runtime-only]
#   (default)       everything to build, run and test
#   --build-only    what the controller binary alone needs to build (the image's build stage)
#   --runtime-only  what scripts/run.sh needs besides the build
set -euo pipefail

core_build_pkgs=(
  build-essential cmake ninja-build pkg-config git ca-certificates
  libcpprest-dev libssl-dev zlib1g-dev libboost-dev  # cpprestsdk (HTTP client/listener)
  libyaml-cpp-dev                                     # configuration
  prometheus-cpp-dev libcurl4-openssl-dev             # metrics (its CMake config wants CURL)
  libspdlog-dev libfmt-dev                            # logging
  libsimdjson-dev                                     # event decoding
  libsqlite3-dev                                      # durable store (--data-dir)
)
build_pkgs=(
  "${core_build_pkgs[@]}"
  libgtest-dev libgmock-dev libbenchmark-dev          # tests and benchmarks
  libtbb-dev                                          # peer map in the storage benchmark only
  clang-14 libclang-rt-14-dev                         # libFuzzer target
)
test_pkgs=(
  python3 openssl      # API-server emulator (TLS with a generated CA)
  python3-yaml         # manifest and rule checks (tests/manifests, tests/prometheus)
  prometheus           # prometheus + promtool for metrics/rules tests
  yamllint             # manifest lint
  kubernetes-client    # kubectl (wire-format test, kustomize) when none is installed
)
runtime_pkgs=(python3 openssl)

want=("${build_pkgs[@]}" "${test_pkgs[@]}")
case ${1:-} in
  "") ;;
  --build-only) want=("${core_build_pkgs[@]}") ;;
  --runtime-only) want=("${runtime_pkgs[@]}") ;;
  *) echo "usage: $0 [--build-only | --runtime-only]" >&2; exit 2 ;;
esac

missing=()
for p in "${want[@]}"; do
  [[ $p == \#* ]] && continue
  if [[ $p == kubernetes-client ]] && command -v kubectl >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]} == 0)); then
  echo "install-deps: all packages present"
  exit 0
fi
SUDO=""
if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
echo "install-deps: installing ${missing[*]}"
$SUDO apt-get -o DPkg::Lock::Timeout=300 update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get -o DPkg::Lock::Timeout=300 install -y -qq --no-install-recommends "${missing[@]}"
