# kube-eventbuffer controller image.
#   build:  ../shared/tools/build-image . kube-eventbuffer:dev   (or scripts/build-image.sh)
#   run:    see manifests/ and docs/deploy.md
#
# Stage 1 builds the controller with the project's own dependency script; stage 2 holds only
# the stripped binary and the Debian packages of the shared libraries it links (found with
# ldd + dpkg -S in stage 1, so the list cannot drift from the code).

FROM debian:bookworm AS build
ENV DEBIAN_FRONTEND=noninteractive
# The dependency script alone first (only what the controller needs to build): this layer is
# reused until the script changes.
COPY scripts/install-deps.sh /src/scripts/install-deps.sh
RUN /src/scripts/install-deps.sh --build-only && rm -rf /var/lib/apt/lists/*
COPY . /src
RUN cmake -S /src -B /build -G Ninja -DCMAKE_BUILD_TYPE=Release \
      -DKEB_BUILD_TESTS=OFF -DKEB_BUILD_BENCH=OFF \
 && cmake --build /build --target eventbuffer-controller -j2 \
 && install -D -s /build/controller/eventbuffer-controller /out/usr/local/bin/eventbuffer-controller
# The runtime packages: the owner of every shared library the binary loads. Debian 12 has a
# merged /usr, so ldd's /lib/... path may be registered under /usr/lib/... in dpkg's database.
RUN set -eu; \
    ldd /out/usr/local/bin/eventbuffer-controller | awk '$2 == "=>" && $3 ~ /^\// {print $3}' \
    | while read -r lib; do \
        real=$(readlink -f "$lib"); \
        dpkg -S "$lib" 2>/dev/null || dpkg -S "$real" 2>/dev/null || dpkg -S "/usr$lib" 2>/dev/null \
          || { echo "no Debian package owns $lib" >&2; exit 1; }; \
      done \
    | cut -d: -f1 | tr ', ' '\n\n' | sed '/^$/d' | sort -u > /out/runtime-packages; \
    echo "runtime packages:"; cat /out/runtime-packages

FROM debian:bookworm-slim
LABEL org.opencontainers.image.title="kube-eventbuffer" \
      org.opencontainers.image.description="Kubernetes controller that buffers core/v1 Events in memory"
ENV DEBIAN_FRONTEND=noninteractive
COPY --from=build /out/runtime-packages /tmp/runtime-packages
# ca-certificates: for API servers behind a public CA when run with --kubeconfig.
RUN apt-get update -qq \
 && xargs -a /tmp/runtime-packages apt-get install -y -qq --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log /tmp/runtime-packages
COPY --from=build /out/usr/local/bin/eventbuffer-controller /usr/local/bin/eventbuffer-controller
# Fail the build, not the pod, when a library is missing.
RUN if ldd /usr/local/bin/eventbuffer-controller | grep 'not found'; then exit 1; fi
USER 65532:65532
# 8443: the eventbuffer.dev API (HTTPS, --secure-port); 8080: /metrics (HTTPS unless
# --metrics-secure=false); 8081: /livez, /healthz, /readyz (plain HTTP).
EXPOSE 8443 8080 8081
ENTRYPOINT ["/usr/local/bin/eventbuffer-controller"]
