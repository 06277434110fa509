#!/usr/bin/env python3
"""Access to the controller's secure port outside a cluster, for the demo (demo.py),
scripts/run.sh and the image smoke test (scripts/build-image.sh): a local serving CA and
certificate for 127.0.0.1/localhost, a kubeconfig for kubectl with the tokens of
demo-policy.json, and HTTPS GETs with a bearer token. Python 3 standard library and the
openssl CLI only.

    python3 demo_access.py make-cert DIR
        DIR/ca.crt, ca.key (the CA), tls.crt, tls.key (EC P-256, SANs IP:127.0.0.1 and
        DNS:localhost, valid 30 days); the names the Deployment's Secret uses
    python3 demo_access.py get URL [--token T] [--ca FILE] [--accept MEDIA] [--expect CODE]
        prints the body; exit 0 on a 2xx answer (with --expect: on status CODE), else 1
        with the status on stderr
    python3 demo_access.py summary URL --token T --ca FILE
        lists events.eventbuffer.dev at URL (https://host:port) and prints
        "<occurrences> <objects> <namespaces>"; exit 1 when the list fails

The tokens are those of demo-policy.json (the emulator answers TokenReview and
SubjectAccessReview from it): the demo kubeconfig's contexts are named after them.
"""

import argparse
import json
import os
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
DEMO_POLICY = os.path.join(HERE, "demo-policy.json")

# kubeconfig context -> bearer token of demo-policy.json. "viewer" reads events in every
# namespace and /metrics; "ns-reader" reads events in namespace default only; "nobody" is
# authenticated but has no rights.
DEMO_CONTEXTS = {
    "viewer": "demo-viewer-token",
    "ns-reader": "demo-ns-reader-token",
    "nobody": "demo-nobody-token",
}
VIEWER_TOKEN = DEMO_CONTEXTS["viewer"]

API_PREFIX = "/apis/eventbuffer.dev/v1alpha1"


def events_path(namespace=None, field_selector=None, name=None):
    """The path of events.eventbuffer.dev: all namespaces, one namespace, or one item."""
    path = API_PREFIX + ("/namespaces/%s/events" % urllib.parse.quote(namespace) if namespace else "/events")
    if name:
        path += "/" + urllib.parse.quote(name)
    if field_selector:
        path += "?" + urllib.parse.urlencode({"fieldSelector": field_selector})
    return path


def make_serving_cert(directory, days=30):
    """A CA and a serving certificate signed by it for 127.0.0.1 and localhost, written as
    DIR/ca.crt, ca.key, tls.crt, tls.key (keys mode 0600). EC P-256, one openssl run each.
    Returns the paths (ca, cert, key)."""
    os.makedirs(directory, exist_ok=True)

    def openssl(*args):
        proc = subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt",
                               "ec_paramgen_curve:prime256v1", "-nodes", "-days", str(days)] + list(args),
                              cwd=directory, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        if proc.returncode != 0:
            raise RuntimeError("openssl failed: %s" % proc.stderr.strip())

    openssl("-keyout", "ca.key", "-out", "ca.crt", "-subj", "/CN=kube-eventbuffer-demo-ca",
            "-addext", "basicConstraints=critical,CA:TRUE",
            "-addext", "keyUsage=critical,keyCertSign,cRLSign")
    openssl("-keyout", "tls.key", "-out", "tls.crt", "-subj", "/CN=localhost",
            "-CA", "ca.crt", "-CAkey", "ca.key",
            "-addext", "basicConstraints=critical,CA:FALSE",
            "-addext", "keyUsage=critical,digitalSignature",
            "-addext", "extendedKeyUsage=serverAuth",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost")
    for name in ("ca.key", "tls.key"):
        os.chmod(os.path.join(directory, name), 0o600)
    return tuple(os.path.join(directory, n) for n in ("ca.crt", "tls.crt", "tls.key"))


def write_demo_kubeconfig(path, server, ca_file, current="viewer"):
    """A kubeconfig for kubectl: cluster eventbuffer-demo at `server` verified with `ca_file`,
    one user and one context per entry of DEMO_CONTEXTS; current-context `current`."""
    lines = ["apiVersion: v1", "kind: Config", "clusters:",
             "- name: eventbuffer-demo",
             "  cluster:",
             "    server: %s" % json.dumps(server),
             "    certificate-authority: %s" % json.dumps(os.path.abspath(ca_file)),
             "users:"]
    for context, token in DEMO_CONTEXTS.items():
        lines += ["- name: %s" % context, "  user:", "    token: %s" % json.dumps(token)]
    lines.append("contexts:")
    for context in DEMO_CONTEXTS:
        lines += ["- name: %s" % context, "  context:", "    cluster: eventbuffer-demo",
                  "    user: %s" % context]
    lines.append("current-context: %s" % current)
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.chmod(path + ".tmp", 0o600)   # it holds tokens
    os.replace(path + ".tmp", path)
    return path


def https_get(url, token=None, ca_file=None, accept=None, timeout=5):
    """GET `url`, verifying the server with `ca_file` (https), with a bearer token when given.
    Returns (status, body bytes); status 0 when the connection failed."""
    headers = {}
    if token:
        headers["Authorization"] = "Bearer " + token
    if accept:
        headers["Accept"] = accept
    context = ssl.create_default_context(cafile=ca_file) if url.startswith("https:") else None
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def list_events(base, token, ca_file, namespace=None, field_selector=None):
    """(status, items) of a list of events.eventbuffer.dev at `base` (https://host:port);
    items is [] unless the status is 200."""
    status, body = https_get(base + events_path(namespace, field_selector), token, ca_file, timeout=10)
    if status != 200:
        return status, []
    return status, json.loads(body).get("items", [])


def summarize(items):
    """(occurrences, distinct involved objects, namespaces) of a list's items."""
    objects = {(i.get("metadata", {}).get("namespace", ""), i.get("involvedObject", {}).get("kind", ""),
                i.get("involvedObject", {}).get("name", "")) for i in items}
    namespaces = {i.get("metadata", {}).get("namespace", "") for i in items}
    return len(items), len(objects), len(namespaces)


def metrics_summary(text):
    """(the gray-release mode whose eventbuffer_gray_mode sample is 1, or "unknown"; the sum of
    eventbuffer_mismatches_total) of a Prometheus text exposition."""
    mode, mismatches = "unknown", 0.0
    for line in text.splitlines():
        name, _, rest = line.partition("{")
        if name == "eventbuffer_gray_mode" and rest.endswith("} 1"):
            mode = rest.split('mode="', 1)[-1].split('"', 1)[0]
        elif line.startswith("eventbuffer_mismatches_total"):
            try:
                mismatches += float(line.rsplit(" ", 1)[1])
            except (IndexError, ValueError):
                pass
    return mode, mismatches


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="command", required=True)
    c = sub.add_parser("make-cert")
    c.add_argument("dir")
    g = sub.add_parser("get")
    g.add_argument("url")
    g.add_argument("--token")
    g.add_argument("--ca")
    g.add_argument("--accept")
    g.add_argument("--expect", type=int, help="the status that counts as success (default: any 2xx)")
    s = sub.add_parser("summary")
    s.add_argument("url")
    s.add_argument("--token", required=True)
    s.add_argument("--ca", required=True)
    args = p.parse_args()

    if args.command == "make-cert":
        make_serving_cert(args.dir)
        return 0
    if args.command == "get":
        status, body = https_get(args.url, args.token, args.ca, args.accept)
        sys.stdout.write(body.decode("utf-8", "replace"))
        if (status != args.expect) if args.expect else not 200 <= status < 300:
            sys.stderr.write("GET %s: %s%s\n" % (args.url, "HTTP %d" % status if status else "connection failed",
                                                  ", want %d" % args.expect if args.expect else ""))
            return 1
        return 0
    status, items = list_events(args.url.rstrip("/"), args.token, args.ca)
    if status != 200:
        sys.stderr.write("list events.eventbuffer.dev: %s\n" % ("HTTP %d" % status if status else "connection failed"))
        return 1
    print("%d %d %d" % summarize(items))
    return 0


if __name__ == "__main__":
    sys.exit(main())
