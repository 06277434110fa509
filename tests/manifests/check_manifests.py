#!/usr/bin/env python3
"""Checks of the kustomize manifests in manifests/, run by CTest (label `manifests`).

Each subcommand is one CTest test. Exit codes: 0 pass, 1 fail, 77 skipped because a
required tool is absent (CTest's SKIP_RETURN_CODE). Every failure message names the
overlay, the object and the field.

  overlay NAME --mode M --percent P   render manifests/overlays/NAME with `kubectl kustomize`,
                                      lint it with yamllint, validate it with k8s-validate,
                                      and check the deployment policy and the stage's config
  namespaced-stages                   an overlay of overlays/namespaced with each stage
                                      component renders, validates and keeps its policy
  stages-differ-only-in-config        the stage overlays render the same objects except the
                                      config ConfigMap; stage configs differ from the base's
                                      config only in mode and rolloutPercent
  lint-sources                        yamllint on manifests/ itself
  rules                               promtool check rules on the PrometheusRule's groups
  cert-manager                        base + each stage + components/cert-manager renders,
                                      validates, keeps the policy; the CA chain ends in the
                                      mounted Secret, for the verified names; CA injected
  serving-cert                        scripts/gen-serving-cert.sh --out: openssl verify, SANs,
                                      Secret, caBundle patch, its Component rendered, CA kept on
                                      renewal; --apply against a stand-in kubectl
  policy-catches-breakage             the policy checks reject each of many broken variants of
                                      the shadow, namespaced and persistent overlays (they can fail)
  persistent                          overlays/persistent, and components/persistent with a stage
                                      and with overlays/namespaced: a StatefulSet with a claim per
                                      replica at --data-dir, the Deployment's pod template
                                      otherwise, the same Service; rendered, linted, validated
  check-config BINARY                 BINARY --check-config accepts every stage's config.yaml
                                      as rendered, and rejects broken variants of it
"""

import argparse
import base64
import copy
import json
import os
import shutil
import subprocess
import sys
import tempfile

try:
    import yaml
except ImportError:  # Debian: python3-yaml, a dependency of yamllint
    print("SKIP: the Python yaml module is absent (Debian package python3-yaml)")
    sys.exit(77)

SKIP = 77
KUBECTL = os.environ.get("KUBECTL", "kubectl")  # another kubectl binary, e.g. a newer one
STAGES = {
    "legacy": ("legacy", 0),
    "shadow": ("shadow", 0),
    "canary-1": ("canary", 1),
    "canary-10": ("canary", 10),
    "canary-50": ("canary", 50),
    "atomic": ("atomic", 100),
}
CONFIG_MAP = "kube-eventbuffer-config"
CONFIG_KEY = "config.yaml"
CONFIG_DIR = "/etc/kube-eventbuffer"
EVENT_VERBS = {"get", "list", "watch"}
USER_ID = 65532
# The serving side: what the controller's flags, ports and paths must stay consistent with.
SERVING_SECRET = "kube-eventbuffer-serving-cert"
CERT_DIR = f"{CONFIG_DIR}/serving-cert"
CONTAINER_PORTS = {"https": 8443, "metrics": 8080, "probes": 8081}
SERVICE_PORTS = {"https": (443, "https"), "metrics": (8080, "metrics")}
REQUIRED_ARGS = [
    f"--config={CONFIG_DIR}/{CONFIG_KEY}",
    "--secure-port=8443",
    f"--tls-cert-file={CERT_DIR}/tls.crt",
    f"--tls-private-key-file={CERT_DIR}/tls.key",
    "--metrics-bind-address=:8080",
    "--metrics-secure=true",
    "--health-probe-bind-address=:8081",
]
API_GROUP = "eventbuffer.dev"
APISERVICE = "v1alpha1.eventbuffer.dev"
EVENTS_ROLE = "kube-eventbuffer"
AGGREGATED_READER = "kube-eventbuffer-aggregated-reader"
METRICS_READER = "kube-eventbuffer-metrics-reader"
AUTH_DELEGATOR_BINDING = "kube-eventbuffer:system:auth-delegator"
AUTH_READER_BINDING = "kube-eventbuffer:extension-apiserver-authentication-reader"
CLUSTER_SCOPED = ("Namespace", "ClusterRole", "ClusterRoleBinding", "APIService")
SA_TOKEN_FILE = "/var/run/secrets/kubernetes.io/serviceaccount/token"
NS_NAME_LABEL = "kubernetes.io/metadata.name"
MONITORING_NS = "monitoring"
# Availability and durability (docs/deploy.md, "Replicas, disruptions and shutdown").
WORKLOAD_KINDS = ("Deployment", "StatefulSet")
MIN_REPLICAS = 2
HOSTNAME_KEY = "kubernetes.io/hostname"
ZONE_KEY = "topology.kubernetes.io/zone"
# terminationGracePeriodSeconds must cover --shutdown-delay plus this much for stopping the
# watch and flushing the store (milliseconds in practice) and the kubelet's own lag.
FLUSH_MARGIN_SECONDS = 10
# The data volume holds the database up to --data-max-bytes, possibly one corrupt database
# moved aside (never deleted), and the WAL (truncated to 64 MiB after checkpoints).
DATA_VOLUME_MARGIN = 512 * 1024 * 1024


class Failure(Exception):
    pass


class Checker:
    def __init__(self, args):
        self.source_dir = os.path.abspath(args.source_dir)
        self.manifests = os.path.join(self.source_dir, "manifests")
        self.work_dir = os.path.abspath(args.work_dir)
        self.validator = args.validator
        self.yamllint_config = os.path.join(self.manifests, ".yamllint")
        os.makedirs(self.work_dir, exist_ok=True)
        self.errors = []

    # ---- tools -------------------------------------------------------------------------

    def require(self, tool, package):
        path = shutil.which(tool)
        if not path:
            print(f"SKIP: {tool} is not installed (Debian package {package})")
            sys.exit(SKIP)
        return path

    def run(self, argv, what):
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise Failure(f"{what} failed (exit {proc.returncode}): {' '.join(argv)}\n"
                          f"{proc.stdout}{proc.stderr}")
        return proc.stdout

    def require_validator(self):
        if not self.validator or not os.access(self.validator, os.X_OK):
            print(f"SKIP: k8s-validate not found at '{self.validator}' "
                  "(expected the shared tools folder beside the repository)")
            sys.exit(SKIP)
        self.require("node", "nodejs")

    def require_kustomize(self):
        """kubectl with a kustomize that knows components and replacements (v4.2+, kubectl
        1.22+); Debian 12's own kubernetes-client 1.20 embeds kustomize v2.0.3."""
        self.kubectl = self.require(KUBECTL, "kubectl")
        proc = subprocess.run([self.kubectl, "version", "--client", "-o", "json"],
                              capture_output=True, text=True, timeout=60)
        try:
            info = json.loads(proc.stdout)
        except ValueError:
            info = {}
        # kubectl prints kustomizeVersion from 1.24 on; before, its minor version tells
        # (kubectl 1.21 embeds kustomize v4.0.5, 1.22 v4.2.0).
        version = info.get("kustomizeVersion", "")
        minor = (info.get("clientVersion") or {}).get("minor", "").rstrip("+")
        parts = version.lstrip("v").split(".")
        too_old = False
        if len(parts) >= 2 and parts[0].isdigit() and parts[1].isdigit():
            too_old = (int(parts[0]), int(parts[1])) < (4, 2)
        elif minor.isdigit():
            too_old = int(minor) < 22
            version = f"of kubectl 1.{minor}"
        if too_old:
            print(f"SKIP: kubectl's kustomize {version} is too old for these manifests "
                  "(components, replacements): need v4.2+ (kubectl 1.22+)")
            sys.exit(SKIP)

    def render(self, kustomization_dir, name):
        if not getattr(self, "kustomize_checked", False):
            self.require_kustomize()
            self.kustomize_checked = True
        proc = subprocess.run([self.kubectl, "kustomize", kustomization_dir],
                              capture_output=True, text=True, timeout=300)
        if proc.returncode != 0:
            raise Failure(f"kubectl kustomize {name} failed (exit {proc.returncode}):\n{proc.stderr}")
        out = proc.stdout
        # Deprecated kustomization fields (patchesStrategicMerge, commonLabels, bases, ...)
        # render with a warning today and are due to go: keep the manifests free of them.
        if proc.stderr.strip():
            self.errors.append(f"{name}: kubectl kustomize warns: {proc.stderr.strip()}")
        path = os.path.join(self.work_dir, f"{name}.yaml")
        with open(path, "w") as f:
            f.write(out)
        docs = [d for d in yaml.safe_load_all(out) if d]
        if not docs:
            raise Failure(f"{name}: kubectl kustomize rendered nothing")
        return path, docs

    def yamllint(self, paths, what, rendered=True):
        self.require("yamllint", "yamllint")
        config = self.yamllint_config
        if rendered:
            # Rendered output embeds data verbatim (the dashboard JSON in its ConfigMap has
            # PromQL lines of any length): the project rules apply, except line length.
            config = os.path.join(self.work_dir, f"yamllint-rendered-{os.getpid()}.yaml")
            with open(config, "w") as f:
                f.write(f"extends: {json.dumps(self.yamllint_config)}\n"
                        "rules:\n  line-length: disable\n")
        try:
            self.run(["yamllint", "--strict", "-c", config, *paths], f"yamllint {what}")
        except Failure as e:
            self.errors.append(str(e))
        finally:
            if rendered:
                os.remove(config)

    def validate(self, paths, what):
        self.require_validator()
        try:
            out = self.run([self.validator, "--ignore-missing-schemas", *paths], f"k8s-validate {what}")
            print(out.strip().splitlines()[-1])
        except Failure as e:
            self.errors.append(str(e))

    # ---- assertions --------------------------------------------------------------------

    def expect(self, cond, msg):
        if not cond:
            self.errors.append(msg)

    def finish(self, what):
        if self.errors:
            for e in self.errors:
                print(f"FAIL {what}: {e}")
            raise Failure(f"{len(self.errors)} check(s) failed in {what}")
        print(f"ok {what}")


def find(docs, kind, name=None):
    return [d for d in docs
            if d.get("kind") == kind and (name is None or d["metadata"].get("name") == name)]


def one(docs, kind, name=None):
    found = find(docs, kind, name)
    if len(found) != 1:
        raise Failure(f"expected exactly one {kind}{' ' + name if name else ''}, "
                      f"rendered {len(found)}")
    return found[0]


def rendered_config(docs):
    cm = one(docs, "ConfigMap", CONFIG_MAP)
    text = (cm.get("data") or {}).get(CONFIG_KEY)
    if text is None:
        raise Failure(f"ConfigMap {CONFIG_MAP} has no key {CONFIG_KEY}")
    return text, yaml.safe_load(text)


def workload(docs):
    """The controller's one workload: a Deployment (base) or a StatefulSet (persistent)."""
    found = [d for d in docs if d.get("kind") in WORKLOAD_KINDS]
    if len(found) != 1:
        raise Failure(f"expected exactly one Deployment or StatefulSet, rendered "
                      f"{[(d['kind'], d['metadata'].get('name')) for d in found]}")
    return found[0]


QUANTITY_UNITS = {"": 1, "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12,
                  "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def parse_bytes(text):
    """A Kubernetes quantity or a --data-max-bytes value (integer with a binary or decimal
    suffix) in bytes; None when it does not parse."""
    text = str(text)
    digits = len(text) - len(text.lstrip("0123456789"))
    unit = text[digits:]
    if digits == 0 or unit not in QUANTITY_UNITS:
        return None
    return int(text[:digits]) * QUANTITY_UNITS[unit]


def parse_go_duration(text):
    """Seconds of a Go duration ("5s", "1m30s", "500ms", "0"); None when it does not parse."""
    if text == "0":
        return 0.0
    units = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}
    total, i = 0.0, 0
    while i < len(text):
        j = i
        while j < len(text) and (text[j].isdigit() or text[j] == "."):
            j += 1
        k = j
        while k < len(text) and text[k].isalpha():
            k += 1
        if j == i or text[j:k] not in units:
            return None
        try:
            total += float(text[i:j]) * units[text[j:k]]
        except ValueError:
            return None
        i = k
    return total if text else None


def flag_value(args, flag):
    """The value of --flag=VALUE in args (the last one), or None."""
    values = [a.split("=", 1)[1] for a in args if a.startswith(flag + "=")]
    return values[-1] if values else None


def check_policy(c, docs, where, namespaced):
    """The deployment contract of docs/deploy.md, on one rendered overlay."""
    ns_of = {}
    for d in docs:
        meta = d.get("metadata", {})
        if d["kind"] in CLUSTER_SCOPED or is_auth_reader_binding(d):
            continue
        ns_of[(d["kind"], meta.get("name"))] = meta.get("namespace")
    namespaces = set(ns_of.values())
    c.expect(len(namespaces) == 1 and None not in namespaces,
             f"{where}: namespaced objects are spread over namespaces {sorted(map(str, namespaces))}")
    namespace = next(iter(namespaces)) if namespaces else None

    # `kubectl apply` (client-side) keeps the whole object in the last-applied-configuration
    # annotation, and all annotations of an object share a 256 KiB limit.
    for d in docs:
        size = len(json.dumps(d, separators=(",", ":")))
        c.expect(size < 200 * 1024, f"{where}: {d['kind']}/{d['metadata'].get('name')} is {size} bytes: "
                 "too large for kubectl apply's last-applied annotation (256 KiB)")

    sa = one(docs, "ServiceAccount")
    sa_subject = {"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
    check_event_rbac(c, docs, where, namespaced, namespace, sa_subject)
    if namespaced:
        # Nothing outside the team's namespace: a team without cluster-wide rights cannot
        # create it, and the APIService belongs to a cluster-wide install.
        for kind in CLUSTER_SCOPED:
            c.expect(not find(docs, kind), f"{where}: the namespaced variant must not create a {kind}")
        for d in find(docs, "RoleBinding"):
            c.expect(d["metadata"].get("namespace") == namespace,
                     f"{where}: the namespaced variant must not bind in namespace "
                     f"{d['metadata'].get('namespace')} ({d['metadata']['name']})")
    else:
        c.expect([n["metadata"]["name"] for n in find(docs, "Namespace")] == [namespace],
                 f"{where}: expected the Namespace {namespace}")
        check_access_rbac(c, docs, where, sa_subject)
    dep = check_deployment(c, docs, where, namespaced, sa)
    check_availability(c, docs, where, dep)
    svc = check_service(c, docs, where, dep)
    if not namespaced:
        check_apiservice(c, docs, where, svc)
    check_service_monitor(c, docs, where, svc)
    check_network_policy(c, docs, where, dep)

    c.expect(len(find(docs, "PrometheusRule")) == 1, f"{where}: expected one PrometheusRule")
    dashboards = [d for d in find(docs, "ConfigMap")
                  if (d["metadata"].get("labels") or {}).get("grafana_dashboard") == "1"]
    c.expect(len(dashboards) == 1, f"{where}: expected one ConfigMap labelled grafana_dashboard: \"1\"")
    for d in dashboards:
        for key, text in (d.get("data") or {}).items():
            try:
                json.loads(text)
            except ValueError as e:
                c.expect(False, f"{where}: dashboard {key} is not JSON: {e}")
    return namespace


def is_auth_reader_binding(d):
    return d.get("kind") == "RoleBinding" and d["metadata"].get("name") == AUTH_READER_BINDING


def rule_is(rule, api_groups=None, resources=None, verbs=None, urls=None):
    """rule grants exactly verbs on exactly these resources (or non-resource URLs)."""
    want = {"verbs": sorted(verbs)}
    if urls is not None:
        want["nonResourceURLs"] = sorted(urls)
    else:
        want["apiGroups"] = sorted(api_groups)
        want["resources"] = sorted(resources)
    got = {k: sorted(v) for k, v in rule.items() if v not in (None, [])}
    return got == want


def check_event_rbac(c, docs, where, namespaced, namespace, sa_subject):
    """The watch's own rights: get/list/watch on core Events, nothing else."""
    role_kind, binding_kind = ("Role", "RoleBinding") if namespaced else ("ClusterRole", "ClusterRoleBinding")
    if not namespaced:
        c.expect(not find(docs, "Role"), f"{where}: the cluster-wide variant uses a ClusterRole, not a Role")
        c.expect([b["metadata"]["name"] for b in find(docs, "RoleBinding")] == [AUTH_READER_BINDING],
                 f"{where}: the cluster-wide variant binds only {AUTH_READER_BINDING} in a namespace")
    role = one(docs, role_kind, EVENTS_ROLE)
    rules = role.get("rules") or []
    c.expect(len(rules) >= 1, f"{where}: {role_kind} has no rules")
    for i, rule in enumerate(rules):
        c.expect(rule.get("apiGroups") == [""], f"{where}: {role_kind} rule {i}: apiGroups must be [\"\"]")
        c.expect(rule.get("resources") == ["events"],
                 f"{where}: {role_kind} rule {i}: resources must be [events], got {rule.get('resources')}")
        c.expect(set(rule.get("verbs") or []) <= EVENT_VERBS and rule.get("verbs"),
                 f"{where}: {role_kind} rule {i}: verbs {rule.get('verbs')} beyond get/list/watch")
        c.expect(not rule.get("resourceNames") and not rule.get("nonResourceURLs"),
                 f"{where}: {role_kind} rule {i}: unexpected resourceNames/nonResourceURLs")
    binding = one(docs, binding_kind, EVENTS_ROLE)
    c.expect(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                    "name": role["metadata"]["name"]},
             f"{where}: {binding_kind} roleRef {binding['roleRef']} does not name the {role_kind}")
    c.expect(sa_subject in binding.get("subjects", []),
             f"{where}: {binding_kind} subjects {binding.get('subjects')} miss ServiceAccount "
             f"{sa_subject['namespace']}/{sa_subject['name']}")


def check_access_rbac(c, docs, where, sa_subject):
    """Delegated authentication, the aggregated reader role and the metrics reader role;
    no other ClusterRole or binding (least privilege)."""
    names = lambda kind: sorted(d["metadata"]["name"] for d in find(docs, kind))  # noqa: E731
    c.expect(names("ClusterRole") == sorted([EVENTS_ROLE, AGGREGATED_READER, METRICS_READER]),
             f"{where}: ClusterRoles {names('ClusterRole')}: expected exactly {EVENTS_ROLE}, "
             f"{AGGREGATED_READER}, {METRICS_READER}")
    c.expect(names("ClusterRoleBinding") == sorted([EVENTS_ROLE, AUTH_DELEGATOR_BINDING, METRICS_READER]),
             f"{where}: ClusterRoleBindings {names('ClusterRoleBinding')}: expected exactly "
             f"{EVENTS_ROLE}, {AUTH_DELEGATOR_BINDING}, {METRICS_READER}")

    # The controller's TokenReviews and SubjectAccessReviews.
    for d in find(docs, "ClusterRoleBinding", AUTH_DELEGATOR_BINDING) or [None]:
        c.expect(d is not None, f"{where}: no ClusterRoleBinding {AUTH_DELEGATOR_BINDING}")
        if d:
            c.expect(d["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                                      "name": "system:auth-delegator"},
                     f"{where}: {AUTH_DELEGATOR_BINDING} roleRef {d['roleRef']} is not system:auth-delegator")
            c.expect(d.get("subjects") == [sa_subject],
                     f"{where}: {AUTH_DELEGATOR_BINDING} subjects {d.get('subjects')} are not just {sa_subject}")
    # The front-proxy and client CAs in kube-system/extension-apiserver-authentication.
    readers = [d for d in docs if is_auth_reader_binding(d)]
    c.expect(len(readers) == 1, f"{where}: no RoleBinding {AUTH_READER_BINDING}")
    for d in readers:
        c.expect(d["metadata"].get("namespace") == "kube-system",
                 f"{where}: {AUTH_READER_BINDING} is in namespace {d['metadata'].get('namespace')}, "
                 "not kube-system")
        c.expect(d["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                                  "name": "extension-apiserver-authentication-reader"},
                 f"{where}: {AUTH_READER_BINDING} roleRef {d['roleRef']} is not the Role "
                 "extension-apiserver-authentication-reader")
        c.expect(d.get("subjects") == [sa_subject],
                 f"{where}: {AUTH_READER_BINDING} subjects {d.get('subjects')} are not just {sa_subject}")

    # Viewers of a namespace read its buffered Events: get/list on events.eventbuffer.dev,
    # nothing more, aggregated into view (and edit, admin).
    for d in find(docs, "ClusterRole", AGGREGATED_READER) or [None]:
        c.expect(d is not None, f"{where}: no ClusterRole {AGGREGATED_READER}")
        if not d:
            continue
        labels = d["metadata"].get("labels") or {}
        for to in ("view", "edit", "admin"):
            c.expect(labels.get(f"rbac.authorization.k8s.io/aggregate-to-{to}") == "true",
                     f"{where}: {AGGREGATED_READER} lacks the label aggregate-to-{to}: \"true\"")
        rules = d.get("rules") or []
        c.expect(len(rules) == 1 and rule_is(rules[0], [API_GROUP], ["events"], ["get", "list"]),
                 f"{where}: {AGGREGATED_READER} must grant only get/list on events.{API_GROUP}, got {rules}")
    for d in find(docs, "ClusterRole"):
        if d["metadata"]["name"] != AGGREGATED_READER:
            agg = [k for k in (d["metadata"].get("labels") or {}) if "/aggregate-to-" in k]
            c.expect(not agg, f"{where}: ClusterRole {d['metadata']['name']} is aggregated ({agg})")

    # Prometheus may GET /metrics, nothing else.
    for d in find(docs, "ClusterRole", METRICS_READER) or [None]:
        c.expect(d is not None, f"{where}: no ClusterRole {METRICS_READER}")
        if d:
            rules = d.get("rules") or []
            c.expect(len(rules) == 1 and rule_is(rules[0], verbs=["get"], urls=["/metrics"]),
                     f"{where}: {METRICS_READER} must grant only get on /metrics, got {rules}")
    for d in find(docs, "ClusterRoleBinding", METRICS_READER):
        c.expect(d["roleRef"].get("name") == METRICS_READER and d["roleRef"].get("kind") == "ClusterRole",
                 f"{where}: ClusterRoleBinding {METRICS_READER} roleRef {d['roleRef']}")
        subjects = d.get("subjects") or []
        c.expect(subjects and all(s.get("kind") == "ServiceAccount" and s.get("namespace") for s in subjects),
                 f"{where}: ClusterRoleBinding {METRICS_READER} must bind ServiceAccounts, got {subjects}")
        c.expect(sa_subject not in subjects, f"{where}: the controller itself needs no {METRICS_READER}")


def check_deployment(c, docs, where, namespaced, sa):
    """The controller's workload (Deployment, or StatefulSet in the persistent variant)."""
    dep = workload(docs)
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c.expect(pod.get("serviceAccountName") == sa["metadata"]["name"],
             f"{where}: pod serviceAccountName {pod.get('serviceAccountName')} is not the ServiceAccount")
    c.expect(pod.get("automountServiceAccountToken") is True,
             f"{where}: pod automountServiceAccountToken must be true")
    psc = pod.get("securityContext") or {}
    c.expect(psc.get("runAsNonRoot") is True, f"{where}: pod securityContext.runAsNonRoot must be true")
    c.expect(psc.get("runAsUser") == USER_ID, f"{where}: pod securityContext.runAsUser must be {USER_ID}")
    c.expect((psc.get("seccompProfile") or {}).get("type") == "RuntimeDefault",
             f"{where}: pod seccompProfile must be RuntimeDefault")
    containers = pod.get("containers") or []
    c.expect(len(containers) == 1, f"{where}: expected one container, got {len(containers)}")
    ctr = containers[0]
    sc = ctr.get("securityContext") or {}
    c.expect(sc.get("allowPrivilegeEscalation") is False, f"{where}: allowPrivilegeEscalation must be false")
    c.expect(sc.get("readOnlyRootFilesystem") is True, f"{where}: readOnlyRootFilesystem must be true")
    c.expect((sc.get("capabilities") or {}).get("drop") == ["ALL"], f"{where}: capabilities.drop must be [ALL]")
    c.expect(sc.get("privileged") in (None, False), f"{where}: container must not be privileged")
    for kind in ("requests", "limits"):
        res = (ctr.get("resources") or {}).get(kind) or {}
        c.expect("cpu" in res and "memory" in res, f"{where}: resources.{kind} needs cpu and memory")
    ports = {p["name"]: p["containerPort"] for p in ctr.get("ports") or []}
    c.expect(ports == CONTAINER_PORTS, f"{where}: container ports {ports}, want {CONTAINER_PORTS}")
    args = ctr.get("args") or []
    missing = [a for a in REQUIRED_ARGS if a not in args]
    c.expect(not missing, f"{where}: args lack {missing}")
    flags = [a.split("=", 1)[0] for a in args]
    twice = sorted({f for f in flags if flags.count(f) > 1})
    c.expect(not twice, f"{where}: args repeat {twice}")
    c.expect(not any(a.startswith("--insecure") for a in args), f"{where}: args {args} serve insecurely")

    def probe_ok(name, path):
        probe = ctr.get(name) or {}
        get = probe.get("httpGet") or {}
        port = get.get("port")
        port = ports.get(port, port)
        c.expect(get.get("path") == path and port == 8081 and get.get("scheme", "HTTP") == "HTTP",
                 f"{where}: {name} must GET {path} on 8081 over HTTP, got {get}")

    probe_ok("livenessProbe", "/livez")
    probe_ok("readinessProbe", "/readyz")
    # The probe port opens after the restore from --data-dir: the startup probe holds the
    # liveness probe off meanwhile, long enough for a full database.
    probe_ok("startupProbe", "/livez")
    startup = ctr.get("startupProbe") or {}
    budget = startup.get("periodSeconds", 10) * startup.get("failureThreshold", 3)
    c.expect(budget >= 120, f"{where}: startupProbe allows {budget} s (period x failureThreshold) for the "
             "restore and the first list; give it at least 120 s")

    # One directory mount at /etc/kube-eventbuffer, projecting the whole ConfigMap and the
    # serving certificate's two files at the paths the args name.
    mounts = [m for m in ctr.get("volumeMounts") or [] if m.get("mountPath") == CONFIG_DIR]
    c.expect(len(mounts) == 1, f"{where}: no volume mounted at {CONFIG_DIR}")
    nested = [m["mountPath"] for m in ctr.get("volumeMounts") or []
              if m.get("mountPath", "").startswith(CONFIG_DIR + "/")]
    c.expect(not nested, f"{where}: mounts {nested} inside the read-only config volume cannot be created")
    if mounts:
        c.expect("subPath" not in mounts[0] and "subPathExpr" not in mounts[0],
                 f"{where}: the config volume must be a directory mount (subPath never sees updates)")
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        vol = vols.get(mounts[0]["name"], {})
        sources = (vol.get("projected") or {}).get("sources") or []
        cms = [s["configMap"] for s in sources if "configMap" in s]
        c.expect([cm.get("name") for cm in cms] == [CONFIG_MAP],
                 f"{where}: the config volume does not project the ConfigMap {CONFIG_MAP}")
        c.expect(not any(cm.get("items") for cm in cms),
                 f"{where}: the config volume must project every key of {CONFIG_MAP} (no items list)")
        secrets = [s["secret"] for s in sources if "secret" in s]
        c.expect([s.get("name") for s in secrets] == [SERVING_SECRET],
                 f"{where}: the config volume does not project the Secret {SERVING_SECRET}")
        c.expect(not any(s.get("optional") for s in secrets),
                 f"{where}: the Secret {SERVING_SECRET} must not be optional (the controller needs it)")
        items = {i["key"]: f"{CONFIG_DIR}/{i['path']}" for s in secrets for i in s.get("items") or []}
        for key, flag in (("tls.crt", "--tls-cert-file"), ("tls.key", "--tls-private-key-file")):
            c.expect(f"{flag}={items.get(key)}" in args,
                     f"{where}: {flag} does not name the mounted {SERVING_SECRET} key {key} ({items.get(key)})")
    env = {e["name"]: e for e in ctr.get("env") or []}
    if namespaced:
        c.expect("--namespace=$(POD_NAMESPACE)" in args, f"{where}: args {args} lack --namespace")
        c.expect(((env.get("POD_NAMESPACE") or {}).get("valueFrom") or {}).get("fieldRef", {})
                 .get("fieldPath") == "metadata.namespace",
                 f"{where}: POD_NAMESPACE must come from the downward API")
    else:
        c.expect(not any(a.startswith("--namespace") for a in args),
                 f"{where}: the cluster-wide variant must watch all namespaces")
    return dep


def check_availability(c, docs, where, dep):
    """Replicas, their spread, the PodDisruptionBudget, the data volume at --data-dir and the
    shutdown timing (docs/deploy.md, "Replicas, disruptions and shutdown")."""
    kind = dep["kind"]
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    labels = spec["template"]["metadata"].get("labels") or {}
    replicas = spec.get("replicas", 1)
    c.expect(isinstance(replicas, int) and replicas >= MIN_REPLICAS,
             f"{where}: {kind} replicas {replicas}: need at least {MIN_REPLICAS} (each holds its own copy; "
             "one serves while the other restarts)")
    replicas = replicas if isinstance(replicas, int) else 1

    def selects_pods(selector):
        match = (selector or {}).get("matchLabels") or {}
        return bool(match) and all(labels.get(k) == v for k, v in match.items()) and \
            not (selector or {}).get("matchExpressions")

    # Spread over nodes and zones, as a preference only.
    anti = (pod.get("affinity") or {}).get("podAntiAffinity") or {}
    c.expect(not anti.get("requiredDuringSchedulingIgnoredDuringExecution"),
             f"{where}: pod anti-affinity must be preferred, not required (a one-node cluster, or the "
             "surge pod of a rollout on two nodes, would never be scheduled)")
    terms = [t.get("podAffinityTerm") or {} for t in anti.get("preferredDuringSchedulingIgnoredDuringExecution") or []]
    c.expect(any(t.get("topologyKey") == HOSTNAME_KEY and selects_pods(t.get("labelSelector")) for t in terms),
             f"{where}: no preferred pod anti-affinity by {HOSTNAME_KEY} selecting the pods {labels}")
    spread = [t for t in pod.get("topologySpreadConstraints") or [] if t.get("topologyKey") == ZONE_KEY]
    c.expect(spread, f"{where}: no topologySpreadConstraints over {ZONE_KEY}")
    for t in spread:
        c.expect(t.get("whenUnsatisfiable") == "ScheduleAnyway" and t.get("maxSkew") == 1,
                 f"{where}: the zone spread must be maxSkew 1, ScheduleAnyway (got {t.get('maxSkew')}, "
                 f"{t.get('whenUnsatisfiable')}): a cluster with one zone must still run every replica")
        c.expect(selects_pods(t.get("labelSelector")),
                 f"{where}: the zone spread's labelSelector {t.get('labelSelector')} does not select the pods")

    # Voluntary disruptions take one replica at a time, and can always take one.
    pdbs = find(docs, "PodDisruptionBudget")
    c.expect(len(pdbs) == 1, f"{where}: expected one PodDisruptionBudget, got {len(pdbs)}")
    for pdb in pdbs:
        ps = pdb.get("spec") or {}
        c.expect(pdb["apiVersion"] == "policy/v1", f"{where}: PodDisruptionBudget is {pdb['apiVersion']}")
        c.expect(pdb["metadata"].get("namespace") == dep["metadata"].get("namespace"),
                 f"{where}: the PodDisruptionBudget is not in the {kind}'s namespace")
        c.expect(selects_pods(ps.get("selector")),
                 f"{where}: PodDisruptionBudget selector {ps.get('selector')} does not select the pods {labels}")
        min_available, max_unavailable = ps.get("minAvailable"), ps.get("maxUnavailable")
        keeps = min_available if max_unavailable is None else (
            replicas - max_unavailable if isinstance(max_unavailable, int) else None)
        c.expect((min_available is None) != (max_unavailable is None) and isinstance(keeps, int) and
                 1 <= keeps <= replicas - 1,
                 f"{where}: PodDisruptionBudget minAvailable={min_available} maxUnavailable={max_unavailable} "
                 f"with {replicas} replicas: it must keep at least one and let at least one go (integers)")

    # The history at --data-dir, on a volume sized for --data-max-bytes.
    ctr = (pod.get("containers") or [{}])[0]
    args = ctr.get("args") or []
    data_dir = flag_value(args, "--data-dir")
    c.expect(bool(data_dir), f"{where}: args lack --data-dir (the history would not survive a restart)")
    budget = parse_bytes(flag_value(args, "--data-max-bytes") or "1Gi")  # 1Gi: the default
    c.expect(budget is not None and budget > 0, f"{where}: --data-max-bytes does not parse or is 0 (unlimited)")
    need = 2 * (budget or 0) + DATA_VOLUME_MARGIN
    mounts = [m for m in ctr.get("volumeMounts") or [] if data_dir and m.get("mountPath") == data_dir]
    c.expect(len(mounts) == 1, f"{where}: no volume is mounted at --data-dir {data_dir}")
    volumes = {v["name"]: v for v in pod.get("volumes") or []}
    claims = {t["metadata"]["name"]: t for t in spec.get("volumeClaimTemplates") or []}
    for m in mounts:
        c.expect(not m.get("readOnly") and "subPath" not in m and "subPathExpr" not in m,
                 f"{where}: the data volume must be a writable directory mount")
        name = m.get("name")
        if kind == "StatefulSet":
            claim = claims.get(name)
            c.expect(claim is not None, f"{where}: --data-dir's volume {name} is not a volumeClaimTemplate")
            c.expect(name not in volumes, f"{where}: the pod template also has a volume {name}, which the "
                     "claim of that name would hide")
            if claim:
                cs = claim.get("spec") or {}
                size = parse_bytes(((cs.get("resources") or {}).get("requests") or {}).get("storage", ""))
                c.expect(cs.get("accessModes") == ["ReadWriteOnce"],
                         f"{where}: the data claim's accessModes {cs.get('accessModes')} are not [ReadWriteOnce]")
                c.expect(size is not None and size >= need,
                         f"{where}: the data claim requests {size} bytes: less than 2 x --data-max-bytes + 512Mi "
                         f"({need})")
        else:
            empty_dir = (volumes.get(name) or {}).get("emptyDir")
            c.expect(empty_dir is not None,
                     f"{where}: the {kind}'s --data-dir volume {name} must be an emptyDir (one per pod; kept "
                     "across container restarts); claims per replica need the persistent variant")
            empty_dir = empty_dir or {}
            c.expect(empty_dir.get("medium") != "Memory",
                     f"{where}: the data emptyDir must be on disk, not medium Memory (it counts as memory)")
            size = parse_bytes(empty_dir.get("sizeLimit", ""))
            c.expect(size is not None and size >= need,
                     f"{where}: the data emptyDir's sizeLimit is {empty_dir.get('sizeLimit')}: less than "
                     f"2 x --data-max-bytes + 512Mi ({need} bytes); beyond it the kubelet evicts the pod")
    if kind == "StatefulSet":
        services = [d["metadata"]["name"] for d in find(docs, "Service")]
        c.expect(spec.get("serviceName") in services,
                 f"{where}: StatefulSet serviceName {spec.get('serviceName')} is none of the Services {services}")
        c.expect(spec.get("podManagementPolicy") == "Parallel",
                 f"{where}: StatefulSet podManagementPolicy {spec.get('podManagementPolicy')}: the replicas are "
                 "independent, use Parallel")

    # SIGTERM: readiness fails, serving goes on for --shutdown-delay, then the watch stops
    # and the store flushes; all before the kubelet's SIGKILL.
    delay_text = flag_value(args, "--shutdown-delay")
    delay = parse_go_duration(delay_text) if delay_text is not None else None
    c.expect(delay is not None and delay >= 1,
             f"{where}: --shutdown-delay is {delay_text}: set one of at least 1s, so the endpoints move away "
             "before the ports close")
    grace = pod.get("terminationGracePeriodSeconds", 30)
    c.expect(delay is None or grace >= delay + FLUSH_MARGIN_SECONDS,
             f"{where}: terminationGracePeriodSeconds {grace} is shorter than --shutdown-delay {delay_text} + "
             f"{FLUSH_MARGIN_SECONDS} s for stopping the watch and flushing the store")


def check_service(c, docs, where, dep):
    svc = one(docs, "Service")
    spec = dep["spec"]
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    selector = svc["spec"].get("selector") or {}
    c.expect(selector and all(pod_labels.get(k) == v for k, v in selector.items()),
             f"{where}: Service selector {selector} does not match the pod labels {pod_labels}")
    c.expect(selector == spec["selector"].get("matchLabels"),
             f"{where}: Service selector differs from the {dep['kind']} selector")
    c.expect(not svc["spec"].get("publishNotReadyAddresses"),
             f"{where}: the Service publishes not-ready pods: reads would reach a replica still restoring or "
             "shutting down")
    svc_ports = {p["name"]: (p["port"], p.get("targetPort")) for p in svc["spec"]["ports"]}
    c.expect(svc_ports == SERVICE_PORTS, f"{where}: Service ports {svc_ports}, want {SERVICE_PORTS}")
    return svc


def check_apiservice(c, docs, where, svc):
    """The aggregated API reaches the controller's secure port, verified by a CA bundle."""
    api = find(docs, "APIService", APISERVICE)
    c.expect(len(api) == 1, f"{where}: expected one APIService {APISERVICE}")
    if not api:
        return
    api = api[0]
    c.expect(api["apiVersion"] == "apiregistration.k8s.io/v1", f"{where}: APIService is {api['apiVersion']}")
    s = api.get("spec") or {}
    c.expect(s.get("group") == API_GROUP and s.get("version") == "v1alpha1",
             f"{where}: APIService serves {s.get('group')}/{s.get('version')}, not {API_GROUP}/v1alpha1")
    c.expect(s.get("groupPriorityMinimum") == 100 and s.get("versionPriority") == 100,
             f"{where}: APIService priorities {s.get('groupPriorityMinimum')}/{s.get('versionPriority')}, want 100/100")
    c.expect(s.get("insecureSkipTLSVerify") in (None, False),
             f"{where}: APIService must verify the controller's certificate (insecureSkipTLSVerify)")
    ref = s.get("service") or {}
    c.expect(ref.get("name") == svc["metadata"]["name"] and ref.get("namespace") == svc["metadata"].get("namespace"),
             f"{where}: APIService points at Service {ref.get('namespace')}/{ref.get('name')}, not "
             f"{svc['metadata'].get('namespace')}/{svc['metadata']['name']}")
    port = next((p for p in svc["spec"]["ports"] if p["port"] == ref.get("port", 443)), None)
    c.expect(port is not None and port.get("name") == "https" and port.get("targetPort") == "https",
             f"{where}: APIService port {ref.get('port', 443)} is not the Service's https port (→ 8443)")
    if s.get("caBundle") is not None:
        try:
            pem = base64.b64decode(s["caBundle"], validate=True).decode()
        except ValueError:
            pem = ""
        c.expect("-----BEGIN CERTIFICATE-----" in pem, f"{where}: APIService caBundle is not a PEM certificate")


def check_service_monitor(c, docs, where, svc):
    sms = find(docs, "ServiceMonitor")
    c.expect(len(sms) == 1, f"{where}: expected one ServiceMonitor")
    labels = svc["metadata"].get("labels") or {}
    names = {svc["metadata"]["name"], f"{svc['metadata']['name']}.{svc['metadata'].get('namespace')}.svc"}
    for sm in sms:
        match = ((sm.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        c.expect(match and all(labels.get(k) == v for k, v in match.items()),
                 f"{where}: ServiceMonitor selector {match} does not select the Service {labels}")
        eps = (sm.get("spec") or {}).get("endpoints") or []
        c.expect([e.get("port") for e in eps] == ["metrics"],
                 f"{where}: ServiceMonitor needs one endpoint, on port 'metrics'")
        for e in eps:
            c.expect(e.get("path", "/metrics") == "/metrics", f"{where}: ServiceMonitor must scrape /metrics")
            c.expect(e.get("scheme") == "https", f"{where}: ServiceMonitor must scrape over https")
            c.expect(e.get("bearerTokenFile") == SA_TOKEN_FILE or e.get("authorization"),
                     f"{where}: ServiceMonitor sends no token (bearerTokenFile/authorization)")
            tls = e.get("tlsConfig") or {}
            c.expect(not tls.get("insecureSkipVerify"), f"{where}: ServiceMonitor skips TLS verification")
            c.expect(((tls.get("ca") or {}).get("secret") or {}) == {"name": SERVING_SECRET, "key": "ca.crt"},
                     f"{where}: ServiceMonitor must trust ca.crt of {SERVING_SECRET}, got {tls.get('ca')}")
            c.expect(tls.get("serverName") in names,
                     f"{where}: ServiceMonitor serverName {tls.get('serverName')} is none of {sorted(names)}")


def check_network_policy(c, docs, where, dep):
    """Ingress 8443 from anywhere, 8080 from the monitoring namespace, 8081 (probes); egress
    to the API server (443, 6443) and DNS. Nothing else."""
    nps = find(docs, "NetworkPolicy")
    c.expect(len(nps) == 1, f"{where}: expected one NetworkPolicy, got {len(nps)}")
    pod_labels = dep["spec"]["template"]["metadata"].get("labels") or {}
    for np in nps:
        s = np.get("spec") or {}
        sel = (s.get("podSelector") or {}).get("matchLabels") or {}
        c.expect(sel and all(pod_labels.get(k) == v for k, v in sel.items()) and
                 not (s.get("podSelector") or {}).get("matchExpressions"),
                 f"{where}: NetworkPolicy podSelector {sel} does not select the pod {pod_labels}")
        c.expect(sorted(s.get("policyTypes") or []) == ["Egress", "Ingress"],
                 f"{where}: NetworkPolicy policyTypes {s.get('policyTypes')} must be Ingress and Egress")

        def allowed(rules, peers_key):
            got = set()
            for i, r in enumerate(rules):
                ports = r.get("ports") or []
                c.expect(ports, f"{where}: NetworkPolicy {peers_key} rule {i} allows every port")
                peers = json.dumps(r.get(peers_key) or "anywhere", sort_keys=True)
                for p in ports:
                    c.expect("endPort" not in p, f"{where}: NetworkPolicy {peers_key} rule {i} has a port range")
                    got.add((p.get("port"), p.get("protocol", "TCP"), peers))
            return got

        monitoring = json.dumps([{"namespaceSelector": {"matchLabels": {NS_NAME_LABEL: MONITORING_NS}}}],
                                sort_keys=True)
        want_in = {(8443, "TCP", '"anywhere"'), (8080, "TCP", monitoring), (8081, "TCP", '"anywhere"')}
        got_in = allowed(s.get("ingress") or [], "from")
        c.expect(got_in == want_in, f"{where}: NetworkPolicy ingress allows {sorted(got_in)}, want {sorted(want_in)}")
        want_out = {(443, "TCP", '"anywhere"'), (6443, "TCP", '"anywhere"'),
                    (53, "UDP", '"anywhere"'), (53, "TCP", '"anywhere"')}
        got_out = allowed(s.get("egress") or [], "to")
        c.expect(got_out == want_out, f"{where}: NetworkPolicy egress allows {sorted(got_out)}, want {sorted(want_out)}")


def check_stage_config(c, docs, where, mode, percent):
    _, cfg = rendered_config(docs)
    eb = (cfg or {}).get("eventBuffer") or {}
    c.expect(eb.get("mode") == mode, f"{where}: eventBuffer.mode is {eb.get('mode')!r}, want {mode!r}")
    c.expect(eb.get("rolloutPercent") == percent,
             f"{where}: eventBuffer.rolloutPercent is {eb.get('rolloutPercent')!r}, want {percent}")


# ---- the policy checks can fail -------------------------------------------------------


def _obj(docs, kind, name=None):
    return one(docs, kind, name)


def _pod(docs):
    return workload(docs)["spec"]["template"]["spec"]


def _ctr(docs):
    return _pod(docs)["containers"][0]


def _volume(docs, name):
    return next(v for v in _pod(docs)["volumes"] if v["name"] == name)


def _pdb(docs):
    return _obj(docs, "PodDisruptionBudget")["spec"]


def _required_anti_affinity(docs):
    anti = _pod(docs)["affinity"]["podAntiAffinity"]
    anti["requiredDuringSchedulingIgnoredDuringExecution"] = [
        t["podAffinityTerm"] for t in anti.pop("preferredDuringSchedulingIgnoredDuringExecution")]


def _claim(docs):
    return workload(docs)["spec"]["volumeClaimTemplates"][0]


def _args(docs, fn):
    ctr = _ctr(docs)
    ctr["args"] = fn(ctr["args"])


def _drop(docs, kind, name):
    docs.remove(_obj(docs, kind, name))


def _np(docs):
    return _obj(docs, "NetworkPolicy")["spec"]


def _reader_rule(docs):
    return _obj(docs, "ClusterRole", AGGREGATED_READER)["rules"][0]


def _sm_endpoint(docs):
    return _obj(docs, "ServiceMonitor")["spec"]["endpoints"][0]


def _svc_port(docs, name):
    return next(p for p in _obj(docs, "Service")["spec"]["ports"] if p["name"] == name)


def _secret_source(docs):
    vol = next(v for v in _pod(docs)["volumes"] if "projected" in v)
    return next(s["secret"] for s in vol["projected"]["sources"] if "secret" in s)


# Each breaks one thing the policy guards; check_policy must report it.
BREAKAGES = {
    "apiservice-to-metrics-port": lambda d: _obj(d, "APIService")["spec"]["service"].update(port=8080),
    "apiservice-skips-tls-verify": lambda d: _obj(d, "APIService")["spec"].update(insecureSkipTLSVerify=True),
    "apiservice-other-service": lambda d: _obj(d, "APIService")["spec"]["service"].update(name="other"),
    "apiservice-missing": lambda d: _drop(d, "APIService", APISERVICE),
    "apiservice-bad-cabundle": lambda d: _obj(d, "APIService")["spec"].update(caBundle="bm90IGEgY2VydA=="),
    "reader-can-watch": lambda d: _reader_rule(d)["verbs"].append("watch"),
    "reader-can-delete": lambda d: _reader_rule(d).update(verbs=["get", "list", "delete"]),
    "reader-every-resource": lambda d: _reader_rule(d).update(resources=["*"]),
    "reader-core-group": lambda d: _reader_rule(d).update(apiGroups=[""]),
    "reader-not-aggregated-to-view": lambda d: _obj(d, "ClusterRole", AGGREGATED_READER)["metadata"]["labels"]
    .pop("rbac.authorization.k8s.io/aggregate-to-view"),
    "reader-second-rule": lambda d: _obj(d, "ClusterRole", AGGREGATED_READER)["rules"].append(
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}),
    "other-role-aggregated-to-view": lambda d: _obj(d, "ClusterRole", METRICS_READER)["metadata"]["labels"]
    .update({"rbac.authorization.k8s.io/aggregate-to-view": "true"}),
    "extra-clusterrole": lambda d: d.append({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
                                             "metadata": {"name": "extra"}, "rules": []}),
    "events-role-can-create": lambda d: _obj(d, "ClusterRole", EVENTS_ROLE)["rules"][0]["verbs"].append("create"),
    "auth-delegator-missing": lambda d: _drop(d, "ClusterRoleBinding", AUTH_DELEGATOR_BINDING),
    "auth-delegator-is-cluster-admin": lambda d: _obj(d, "ClusterRoleBinding", AUTH_DELEGATOR_BINDING)["roleRef"]
    .update(name="cluster-admin"),
    "auth-reader-missing": lambda d: _drop(d, "RoleBinding", AUTH_READER_BINDING),
    "auth-reader-outside-kube-system": lambda d: _obj(d, "RoleBinding", AUTH_READER_BINDING)["metadata"]
    .update(namespace="kube-eventbuffer"),
    "auth-reader-other-sa": lambda d: _obj(d, "RoleBinding", AUTH_READER_BINDING)["subjects"][0]
    .update(name="default"),
    "metrics-reader-missing": lambda d: _drop(d, "ClusterRole", METRICS_READER),
    "metrics-reader-every-url": lambda d: _obj(d, "ClusterRole", METRICS_READER)["rules"][0]
    .update(nonResourceURLs=["*"]),
    "metrics-insecure": lambda d: _args(d, lambda a: [x.replace("--metrics-secure=true", "--metrics-secure=false")
                                                      for x in a]),
    "metrics-secure-unset": lambda d: _args(d, lambda a: [x for x in a if not x.startswith("--metrics-secure")]),
    "metrics-secure-twice": lambda d: _args(d, lambda a: a + ["--metrics-secure=false"]),
    "no-tls-cert-file": lambda d: _args(d, lambda a: [x for x in a if not x.startswith("--tls-cert-file")]),
    "tls-key-elsewhere": lambda d: _args(d, lambda a: [x.replace("/serving-cert/tls.key", "/tls.key") for x in a]),
    "secret-not-projected": lambda d: _secret_source(d).update(name="other-secret"),
    "secret-optional": lambda d: _secret_source(d).update(optional=True),
    "nested-secret-mount": lambda d: _ctr(d)["volumeMounts"].append(
        {"name": "cert", "mountPath": f"{CERT_DIR}", "readOnly": True}),
    "liveness-healthz": lambda d: _ctr(d)["livenessProbe"]["httpGet"].update(path="/healthz"),
    "liveness-on-https": lambda d: _ctr(d)["livenessProbe"]["httpGet"].update(port="https"),
    "readiness-on-8080": lambda d: _ctr(d)["readinessProbe"]["httpGet"].update(port=8080),
    "readiness-https-scheme": lambda d: _ctr(d)["readinessProbe"]["httpGet"].update(scheme="HTTPS"),
    "no-https-container-port": lambda d: _ctr(d).update(ports=[p for p in _ctr(d)["ports"] if p["name"] != "https"]),
    "service-https-to-probes": lambda d: _svc_port(d, "https").update(targetPort="probes"),
    "service-exposes-probes": lambda d: _obj(d, "Service")["spec"]["ports"].append(
        {"name": "probes", "port": 8081, "targetPort": "probes"}),
    "servicemonitor-http": lambda d: _sm_endpoint(d).update(scheme="http"),
    "servicemonitor-skips-verify": lambda d: _sm_endpoint(d)["tlsConfig"].update(insecureSkipVerify=True),
    "servicemonitor-no-token": lambda d: _sm_endpoint(d).pop("bearerTokenFile"),
    "servicemonitor-wrong-server-name": lambda d: _sm_endpoint(d)["tlsConfig"].update(serverName="example.com"),
    "netpol-extra-port": lambda d: _np(d)["ingress"].append({"ports": [{"port": 9090}]}),
    "netpol-metrics-from-anywhere": lambda d: _np(d)["ingress"][1].pop("from"),
    "netpol-metrics-other-namespace": lambda d: _np(d)["ingress"][1]["from"][0]["namespaceSelector"]
    .update(matchLabels={NS_NAME_LABEL: "default"}),
    "netpol-ingress-all-ports": lambda d: _np(d)["ingress"].append({}),
    "netpol-no-8443": lambda d: _np(d).update(ingress=_np(d)["ingress"][1:]),
    "netpol-egress-anything": lambda d: _np(d)["egress"].append({}),
    "netpol-ingress-only": lambda d: _np(d).update(policyTypes=["Ingress"]),
    "netpol-other-pods": lambda d: _np(d)["podSelector"].update(matchLabels={"app": "other"}),
    "one-replica": lambda d: workload(d)["spec"].update(replicas=1),
    "pdb-missing": lambda d: _drop(d, "PodDisruptionBudget", "kube-eventbuffer"),
    "pdb-other-pods": lambda d: _pdb(d)["selector"].update(matchLabels={"app": "other"}),
    "pdb-blocks-drains": lambda d: _pdb(d).update(minAvailable=2),
    "pdb-keeps-none": lambda d: _pdb(d).update(minAvailable=0),
    "pdb-percent": lambda d: _pdb(d).update(minAvailable="50%"),
    "no-anti-affinity": lambda d: _pod(d).pop("affinity"),
    "anti-affinity-required": _required_anti_affinity,
    "anti-affinity-other-pods": lambda d: _pod(d)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"]["labelSelector"]
    .update(matchLabels={"app": "other"}),
    "anti-affinity-by-zone-only": lambda d: _pod(d)["affinity"]["podAntiAffinity"][
        "preferredDuringSchedulingIgnoredDuringExecution"][0]["podAffinityTerm"].update(topologyKey=ZONE_KEY),
    "no-zone-spread": lambda d: _pod(d).pop("topologySpreadConstraints"),
    "zone-spread-do-not-schedule": lambda d: _pod(d)["topologySpreadConstraints"][0]
    .update(whenUnsatisfiable="DoNotSchedule"),
    "no-startup-probe": lambda d: _ctr(d).pop("startupProbe"),
    "startup-probe-too-short": lambda d: _ctr(d)["startupProbe"].update(failureThreshold=3),
    "grace-shorter-than-delay": lambda d: _pod(d).update(terminationGracePeriodSeconds=10),
    "grace-default-with-long-delay": lambda d: (_pod(d).pop("terminationGracePeriodSeconds"), _args(
        d, lambda a: [("--shutdown-delay=25s" if x.startswith("--shutdown-delay") else x) for x in a])),
    "no-shutdown-delay": lambda d: _args(d, lambda a: [x for x in a if not x.startswith("--shutdown-delay")]),
    "shutdown-delay-zero": lambda d: _args(d, lambda a: [("--shutdown-delay=0" if x.startswith("--shutdown-delay")
                                                          else x) for x in a]),
    "shutdown-delay-not-a-duration": lambda d: _args(d, lambda a: [("--shutdown-delay=5" if x.startswith(
        "--shutdown-delay") else x) for x in a]),
    "no-data-dir": lambda d: _args(d, lambda a: [x for x in a if not x.startswith("--data-dir")]),
    "data-dir-not-mounted": lambda d: _args(d, lambda a: [("--data-dir=/data" if x.startswith("--data-dir")
                                                           else x) for x in a]),
    "data-volume-too-small": lambda d: _volume(d, "data")["emptyDir"].update(sizeLimit="1Gi"),
    "data-volume-unbounded": lambda d: _volume(d, "data")["emptyDir"].pop("sizeLimit"),
    "data-budget-above-volume": lambda d: _args(d, lambda a: [("--data-max-bytes=2Gi" if x.startswith(
        "--data-max-bytes") else x) for x in a]),
    "data-budget-unlimited": lambda d: _args(d, lambda a: [("--data-max-bytes=0" if x.startswith(
        "--data-max-bytes") else x) for x in a]),
    "data-volume-in-memory": lambda d: _volume(d, "data")["emptyDir"].update(medium="Memory"),
    "data-on-shared-claim": lambda d: (_volume(d, "data").pop("emptyDir"),
                                       _volume(d, "data").update(persistentVolumeClaim={"claimName": "shared"})),
    "data-mount-read-only": lambda d: next(m for m in _ctr(d)["volumeMounts"] if m["name"] == "data")
    .update(readOnly=True),
    "service-publishes-not-ready": lambda d: _obj(d, "Service")["spec"].update(publishNotReadyAddresses=True),
}

NAMESPACED_BREAKAGES = {
    "namespaced-apiservice": lambda d: d.append({"apiVersion": "apiregistration.k8s.io/v1", "kind": "APIService",
                                                 "metadata": {"name": APISERVICE}, "spec": {}}),
    "namespaced-kube-system-binding": lambda d: d.append(
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": AUTH_READER_BINDING, "namespace": "kube-system"},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role",
                     "name": "extension-apiserver-authentication-reader"}, "subjects": []}),
    "namespaced-metrics-insecure": BREAKAGES["metrics-insecure"],
    "namespaced-netpol-extra-port": BREAKAGES["netpol-extra-port"],
    "namespaced-liveness-healthz": BREAKAGES["liveness-healthz"],
    "namespaced-one-replica": BREAKAGES["one-replica"],
    "namespaced-pdb-missing": BREAKAGES["pdb-missing"],
}

PERSISTENT_BREAKAGES = {
    "persistent-one-replica": BREAKAGES["one-replica"],
    "persistent-no-claims": lambda d: workload(d)["spec"].pop("volumeClaimTemplates"),
    "persistent-claim-too-small": lambda d: _claim(d)["spec"]["resources"]["requests"].update(storage="1Gi"),
    "persistent-claim-read-write-many": lambda d: _claim(d)["spec"].update(accessModes=["ReadWriteMany"]),
    "persistent-claim-other-name": lambda d: _claim(d)["metadata"].update(name="history"),
    "persistent-emptydir-beside-claim": lambda d: _pod(d)["volumes"].append({"name": "data", "emptyDir": {}}),
    "persistent-other-service": lambda d: workload(d)["spec"].update(serviceName="kube-eventbuffer-headless"),
    "persistent-ordered-ready": lambda d: workload(d)["spec"].update(podManagementPolicy="OrderedReady"),
    "persistent-and-a-deployment": lambda d: d.append({"apiVersion": "apps/v1", "kind": "Deployment",
                                                       "metadata": {"name": "kube-eventbuffer",
                                                                    "namespace": "kube-eventbuffer"},
                                                       "spec": {}}),
    "persistent-grace-too-short": BREAKAGES["grace-shorter-than-delay"],
    "persistent-pdb-other-pods": BREAKAGES["pdb-other-pods"],
    "persistent-no-anti-affinity": BREAKAGES["no-anti-affinity"],
}


def cmd_policy_catches_breakage(c, args):
    for overlay, namespaced, breakages in (("shadow", False, BREAKAGES),
                                           ("namespaced", True, NAMESPACED_BREAKAGES),
                                           ("persistent", False, PERSISTENT_BREAKAGES)):
        _, docs = c.render(os.path.join(c.manifests, "overlays", overlay), f"breakage-{overlay}")
        for name, breaker in {"(as shipped)": None, **breakages}.items():
            broken = copy.deepcopy(docs)
            if breaker:
                breaker(broken)
            saved, c.errors = c.errors, []
            try:
                check_policy(c, broken, f"{overlay}/{name}", namespaced)
            except (Failure, KeyError, StopIteration) as e:
                c.errors.append(f"raised {type(e).__name__}: {e}")
            found, c.errors = c.errors, saved
            if breaker is None:
                c.expect(not found, f"{overlay} as shipped fails the policy: {found}")
            else:
                c.expect(bool(found), f"{overlay}: the policy does not catch the breakage {name!r}")
                print(f"caught {overlay}/{name}: {found[0][:150]}")
    c.finish(f"the policy checks catch {len(BREAKAGES) + len(NAMESPACED_BREAKAGES) + len(PERSISTENT_BREAKAGES)} "
             "breakages")


# ---- serving certificates ---------------------------------------------------------------

CERT_MANAGER_ANNOTATION = "cert-manager.io/inject-ca-from"

# An overlay of your own with the serving certificate from a component, as docs/deploy.md
# shows it: the base, one rollout stage, and components/cert-manager or the folder
# scripts/gen-serving-cert.sh --out wrote.
CERT_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
components:
  - {stage}
  - {certs}
"""


def render_with_certs(c, stage, certs, name):
    d = tempfile.mkdtemp(prefix=f"{name}-", dir=c.work_dir)
    rel = lambda p: os.path.relpath(p, d)  # noqa: E731
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write(CERT_OVERLAY.format(base=rel(os.path.join(c.manifests, "base")),
                                    stage=rel(os.path.join(c.manifests, "stages", stage)), certs=rel(certs)))
    try:
        return c.render(d, name)
    finally:
        shutil.rmtree(d)


def check_cert_manager(c, docs, where):
    """The self-signed CA chain ends in the Secret the Deployment mounts, for the names the
    aggregator and the ServiceMonitor verify, and its CA is injected into the APIService."""
    svc = one(docs, "Service")
    ns = svc["metadata"].get("namespace")
    name = svc["metadata"]["name"]
    issuers = {d["metadata"]["name"]: d for d in find(docs, "Issuer")}
    certs = {d["metadata"]["name"]: d for d in find(docs, "Certificate")}
    for d in [*issuers.values(), *certs.values()]:
        c.expect(d["apiVersion"] == "cert-manager.io/v1", f"{where}: {d['kind']} {d['metadata']['name']} "
                 f"is {d['apiVersion']}, not cert-manager.io/v1")
        c.expect(d["metadata"].get("namespace") == ns,
                 f"{where}: {d['kind']} {d['metadata']['name']} is not in the Service's namespace {ns}")

    def issuer_of(cert):
        ref = (cert.get("spec") or {}).get("issuerRef") or {}
        c.expect(ref.get("kind", "Issuer") == "Issuer" and ref.get("name") in issuers,
                 f"{where}: Certificate {cert['metadata']['name']} names no Issuer of this folder: {ref}")
        return issuers.get(ref.get("name"), {}).get("spec") or {}

    serving = [d for d in certs.values() if (d.get("spec") or {}).get("secretName") == SERVING_SECRET]
    c.expect(len(serving) == 1, f"{where}: expected one Certificate with secretName {SERVING_SECRET}")
    for cert in serving:
        s = cert["spec"]
        c.expect(not s.get("isCA"), f"{where}: the serving Certificate must not be a CA")
        dns = set(s.get("dnsNames") or [])
        server_names = {((e.get("tlsConfig") or {}).get("serverName"))
                        for sm in find(docs, "ServiceMonitor") for e in sm["spec"].get("endpoints") or []}
        want = {f"{name}.{ns}.svc", f"{name}.{ns}.svc.cluster.local"} | (server_names - {None})
        c.expect(want <= dns, f"{where}: the serving Certificate's dnsNames {sorted(dns)} lack {sorted(want - dns)}")
        c.expect("server auth" in (s.get("usages") or ["server auth"]),
                 f"{where}: the serving Certificate's usages {s.get('usages')} lack server auth")
        ca_secret = (issuer_of(cert).get("ca") or {}).get("secretName")
        c.expect(ca_secret, f"{where}: the serving Certificate's Issuer is not a CA Issuer")
        ca_certs = [d for d in certs.values() if (d.get("spec") or {}).get("secretName") == ca_secret]
        c.expect(len(ca_certs) == 1 and ca_certs[0]["spec"].get("isCA") is True,
                 f"{where}: no CA Certificate (isCA) makes the CA Issuer's Secret {ca_secret}")
        for ca in ca_certs:
            c.expect("selfSigned" in issuer_of(ca), f"{where}: the CA Certificate's Issuer is not selfSigned")
        api = find(docs, "APIService", APISERVICE)
        for a in api:
            got = (a["metadata"].get("annotations") or {}).get(CERT_MANAGER_ANNOTATION)
            c.expect(got == f"{ns}/{cert['metadata']['name']}",
                     f"{where}: APIService {CERT_MANAGER_ANNOTATION} is {got!r}, not {ns}/{cert['metadata']['name']}")
            c.expect("caBundle" not in a["spec"], f"{where}: the cainjector owns the caBundle; leave it unset")
        c.expect(len(api) == 1, f"{where}: no APIService {APISERVICE}")


CERT_MANAGER_BREAKAGES = {
    "annotation-other-certificate": lambda d: _obj(d, "APIService", APISERVICE)["metadata"]["annotations"]
    .update({CERT_MANAGER_ANNOTATION: "kube-eventbuffer/kube-eventbuffer-ca"}),
    "no-svc-dns-name": lambda d: _obj(d, "Certificate", SERVING_SECRET)["spec"]["dnsNames"]
    .remove("kube-eventbuffer.kube-eventbuffer.svc"),
    "no-server-name": lambda d: _obj(d, "Certificate", SERVING_SECRET)["spec"]["dnsNames"].remove("kube-eventbuffer"),
    "other-secret": lambda d: _obj(d, "Certificate", SERVING_SECRET)["spec"].update(secretName="other"),
    "signed-by-selfsigned": lambda d: _obj(d, "Certificate", SERVING_SECRET)["spec"]["issuerRef"]
    .update(name="kube-eventbuffer-selfsigned"),
    "ca-not-ca": lambda d: _obj(d, "Certificate", "kube-eventbuffer-ca")["spec"].pop("isCA"),
    "other-namespace": lambda d: _obj(d, "Issuer", "kube-eventbuffer-ca")["metadata"].update(namespace="default"),
}


def cmd_cert_manager(c, args):
    component = os.path.join(c.manifests, "components", "cert-manager")
    paths = []
    for stage, (mode, percent) in STAGES.items():
        name = f"cert-manager-{stage}"
        path, docs = render_with_certs(c, stage, component, name)
        paths.append(path)
        check_policy(c, docs, name, namespaced=False)
        check_stage_config(c, docs, name, mode, percent)
        check_cert_manager(c, docs, name)
    for bname, breaker in CERT_MANAGER_BREAKAGES.items():
        broken = copy.deepcopy(docs)
        breaker(broken)
        saved, c.errors = c.errors, []
        check_cert_manager(c, broken, bname)
        found, c.errors = c.errors, saved
        c.expect(bool(found), f"the cert-manager checks do not catch the breakage {bname!r}")
    c.yamllint(paths, "rendered cert-manager overlays")
    c.validate(paths, "cert-manager overlays")
    c.finish("components/cert-manager with every stage")


def cmd_serving_cert(c, args):
    """scripts/gen-serving-cert.sh, offline: the certificate verifies against the CA for the
    Service's names, the Secret and the caBundle patch carry exactly those files, the
    Component renders into a valid overlay, a renewal keeps the CA, and --apply calls kubectl
    as documented."""
    openssl = c.require("openssl", "openssl")
    script = os.path.join(c.source_dir, "scripts", "gen-serving-cert.sh")
    tmp = tempfile.mkdtemp(prefix="serving-cert-", dir=c.work_dir)

    def gen(*argv, env=None, ok=True):
        proc = subprocess.run(["bash", script, *argv], capture_output=True, text=True, timeout=120,
                              env={**os.environ, **(env or {})})
        c.expect((proc.returncode == 0) == ok, f"gen-serving-cert.sh {' '.join(argv)} exited {proc.returncode}"
                 f" (want {'0' if ok else 'non-zero'}): {proc.stderr.strip()}")
        return proc

    def read(d, f, mode="r"):
        with open(os.path.join(d, f), mode) as fh:
            return fh.read()

    def verify(ca_dir, cert_dir):
        return subprocess.run([openssl, "verify", "-CAfile", os.path.join(ca_dir, "ca.crt"),
                               os.path.join(cert_dir, "tls.crt")], capture_output=True, text=True).returncode == 0

    def text(d, f, *opts):
        return c.run([openssl, "x509", "-in", os.path.join(d, f), "-noout", *opts], f"openssl x509 {f}")

    def check_dir(d, ns, svc="kube-eventbuffer"):
        c.expect(verify(d, d), f"openssl verify: {d}/tls.crt is not signed by {d}/ca.crt")
        sans = text(d, "tls.crt", "-ext", "subjectAltName").split("\n", 1)[-1]
        got = sorted(x.strip().removeprefix("DNS:") for x in sans.split(","))
        want = sorted([svc, f"{svc}.{ns}", f"{svc}.{ns}.svc", f"{svc}.{ns}.svc.cluster.local"])
        c.expect(got == want, f"{d}/tls.crt names {got}, want {want}")
        c.expect("TLS Web Server Authentication" in text(d, "tls.crt", "-ext", "extendedKeyUsage"),
                 f"{d}/tls.crt is not for server authentication")
        c.expect("CA:TRUE" in text(d, "ca.crt", "-ext", "basicConstraints"), f"{d}/ca.crt is not a CA")
        c.expect("CA:TRUE" not in text(d, "tls.crt", "-ext", "basicConstraints"), f"{d}/tls.crt is a CA")
        pub = c.run([openssl, "pkey", "-in", os.path.join(d, "tls.key"), "-pubout"], "openssl pkey")
        c.expect(pub == text(d, "tls.crt", "-pubkey"), f"{d}/tls.key does not belong to tls.crt")
        for f in ("tls.key", "ca.key"):
            mode = os.stat(os.path.join(d, f)).st_mode & 0o777
            c.expect(mode & 0o077 == 0, f"{d}/{f} is readable by others (mode {mode:o})")
        secret = yaml.safe_load(read(d, "secret.yaml"))
        c.expect(secret.get("kind") == "Secret" and secret.get("type") == "kubernetes.io/tls" and
                 secret["metadata"] .get("name") == SERVING_SECRET and secret["metadata"].get("namespace") == ns,
                 f"{d}/secret.yaml is not the kubernetes.io/tls Secret {ns}/{SERVING_SECRET}")
        for key in ("tls.crt", "tls.key", "ca.crt"):
            c.expect(base64.b64decode((secret.get("data") or {}).get(key, "")) == read(d, key, "rb"),
                     f"{d}/secret.yaml {key} is not {key}")
        patch = yaml.safe_load(read(d, "apiservice-cabundle.yaml"))
        c.expect(patch["metadata"]["name"] == APISERVICE and
                 base64.b64decode(patch["spec"]["caBundle"]) == read(d, "ca.crt", "rb"),
                 f"{d}/apiservice-cabundle.yaml does not set {APISERVICE}'s caBundle to ca.crt")

    try:
        one_dir, other_dir = os.path.join(tmp, "one"), os.path.join(tmp, "other")
        gen("--out", one_dir)
        check_dir(one_dir, "kube-eventbuffer")
        first_ca, first_cert = read(one_dir, "ca.crt"), read(one_dir, "tls.crt")
        # A renewal into the same folder keeps the CA (and so the caBundle).
        gen("--out", one_dir, "--days", "30")
        check_dir(one_dir, "kube-eventbuffer")
        c.expect(read(one_dir, "ca.crt") == first_ca, "a renewal into the same --out folder replaced the CA")
        c.expect(read(one_dir, "tls.crt") != first_cert, "a renewal did not issue a new certificate")
        # Another folder has another CA, which must not verify this certificate.
        gen("--out", other_dir, "--namespace", "team-a")
        check_dir(other_dir, "team-a")
        c.expect(not verify(other_dir, one_dir), "openssl verify accepts a certificate signed by another CA")
        # A CA key that does not belong to the CA certificate is refused.
        shutil.copy(os.path.join(other_dir, "ca.key"), os.path.join(one_dir, "ca.key"))
        gen("--out", one_dir, ok=False)
        shutil.rmtree(one_dir)
        gen("--out", one_dir)
        gen("--namespace", "Not_A_Label", "--out", os.path.join(tmp, "bad"), ok=False)
        gen("--days", "0", "--out", os.path.join(tmp, "bad"), ok=False)
        # Without --out and --apply: the Secret on stdout.
        printed = yaml.safe_load(gen().stdout)
        c.expect(printed.get("kind") == "Secret" and printed["metadata"]["name"] == SERVING_SECRET,
                 "without --out/--apply the script does not print the Secret")

        # The Component it writes, with a stage: the Secret and the APIService's caBundle.
        path, docs = render_with_certs(c, "shadow", one_dir, "serving-cert-component")
        check_policy(c, docs, "serving-cert-component", namespaced=False)
        api = one(docs, "APIService", APISERVICE)
        c.expect(base64.b64decode(api["spec"].get("caBundle", "")) == read(one_dir, "ca.crt", "rb"),
                 "the rendered APIService's caBundle is not the generated CA")
        secret = one(docs, "Secret", SERVING_SECRET)
        c.expect(secret["metadata"].get("namespace") == one(docs, "Deployment")["metadata"].get("namespace"),
                 "the generated Secret is not in the Deployment's namespace")
        c.yamllint([path], "rendered serving-cert component")
        c.validate([path], "serving-cert component")

        # --apply: a stand-in kubectl records its calls; `get apiservice` fails once it is gone.
        log = os.path.join(tmp, "kubectl.log")
        fake = os.path.join(tmp, "kubectl")
        with open(fake, "w") as f:
            f.write("#!/bin/sh\nprintf '%s\\n' \"$*\" >>\"$FAKE_LOG\"\n"
                    "[ \"$1 $2\" = 'get apiservice' ] && [ -n \"$FAKE_NO_APISERVICE\" ] && exit 1\nexit 0\n")
        os.chmod(fake, 0o755)
        applied = os.path.join(tmp, "applied")
        gen("--apply", "--out", applied, env={"KUBECTL": fake, "FAKE_LOG": log})
        ca_b64 = base64.b64encode(read(applied, "ca.crt", "rb")).decode()
        calls = read(tmp, "kubectl.log").splitlines()
        want = [
            "get namespace kube-eventbuffer",
            f"apply --server-side --force-conflicts --field-manager=gen-serving-cert -f {applied}/secret.yaml",
            f"get apiservice {APISERVICE}",
            f"patch apiservice {APISERVICE} --type=merge -p {json.dumps({'spec': {'caBundle': ca_b64}})}"
            .replace(": ", ":"),
        ]
        c.expect(calls == want, f"--apply called kubectl with\n  {calls}\nwant\n  {want}")
        os.remove(log)
        proc = gen("--apply", env={"KUBECTL": fake, "FAKE_LOG": log, "FAKE_NO_APISERVICE": "1"})
        calls = read(tmp, "kubectl.log").splitlines()
        c.expect(not any(x.startswith("patch") for x in calls) and "kubectl patch" not in calls,
                 f"--apply patched an APIService that does not exist: {calls}")
        c.expect("patch apiservice" in proc.stderr, "--apply without the APIService does not say how to patch it")
        # --no-apiservice (overlays/namespaced): the Secret only.
        os.remove(log)
        only = os.path.join(tmp, "secret-only")
        gen("--apply", "--no-apiservice", "--namespace", "team-a", "--out", only,
            env={"KUBECTL": fake, "FAKE_LOG": log})
        calls = read(tmp, "kubectl.log").splitlines()
        c.expect(len(calls) == 2 and calls[1].startswith("apply ") and not any("apiservice" in x for x in calls),
                 f"--no-apiservice --apply called kubectl with {calls}")
        c.expect(not os.path.exists(os.path.join(only, "apiservice-cabundle.yaml")) and
                 "apiservice" not in read(only, "kustomization.yaml"),
                 "--no-apiservice still writes the caBundle patch")
        check_dir_secret_only = yaml.safe_load(read(only, "secret.yaml"))
        c.expect(check_dir_secret_only["metadata"]["namespace"] == "team-a",
                 "--namespace team-a does not put the Secret into team-a")
    finally:
        shutil.rmtree(tmp)
    c.finish("scripts/gen-serving-cert.sh")


# ---- subcommands -----------------------------------------------------------------------


def cmd_overlay(c, args):
    name = args.name
    path, docs = c.render(os.path.join(c.manifests, "overlays", name), name)
    check_policy(c, docs, name, namespaced=(name == "namespaced"))
    if args.mode is not None:
        check_stage_config(c, docs, name, args.mode, args.percent)
    c.yamllint([path], f"rendered {name}")
    c.validate([path], name)
    c.finish(f"overlay {name}")


# A team's own overlay as docs/deploy.md shows it: the namespaced variant in the team's
# namespace at one rollout stage. The namespace transformer leaves RoleBinding subjects alone,
# so the overlay that sets the namespace also copies it into the subject.
TEAM_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
namespace: team-a
resources:
  - {namespaced}
components:
  - {stage}
replacements:
  - source:
      kind: ServiceAccount
      name: kube-eventbuffer
      fieldPath: metadata.namespace
    targets:
      - select:
          kind: RoleBinding
          name: kube-eventbuffer
        fieldPaths:
          - subjects.[name=kube-eventbuffer].namespace
"""


def cmd_namespaced_stages(c, args):
    paths = []
    for stage, (mode, percent) in STAGES.items():
        # A team's own overlay, as docs/deploy.md describes it, in a scratch folder.
        d = tempfile.mkdtemp(prefix=f"namespaced-{stage}-", dir=c.work_dir)
        rel = lambda p: os.path.relpath(p, d)  # noqa: E731
        with open(os.path.join(d, "kustomization.yaml"), "w") as f:
            f.write(TEAM_OVERLAY.format(
                namespaced=rel(os.path.join(c.manifests, "overlays", "namespaced")),
                stage=rel(os.path.join(c.manifests, "stages", stage))))
        name = f"namespaced-{stage}"
        try:
            path, docs = c.render(d, name)
        finally:
            shutil.rmtree(d)
        paths.append(path)
        ns = check_policy(c, docs, name, namespaced=True)
        c.expect(ns == "team-a", f"{name}: objects are in namespace {ns}, not the overlay's team-a")
        check_stage_config(c, docs, name, mode, percent)
    c.yamllint(paths, "rendered namespaced stages")
    c.validate(paths, "namespaced stages")
    c.finish("namespaced variant x every stage")


# An overlay of your own with the persistent variant: a base (manifests/base or
# overlays/namespaced), a stage, and components/persistent.
PERSISTENT_OVERLAY = """\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {base}
components:
  - {stage}
  - {persistent}
"""


def render_kustomization(c, text, name, **paths):
    """Renders a scratch kustomization.yaml made of text, with paths made relative to it."""
    d = tempfile.mkdtemp(prefix=f"{name}-", dir=c.work_dir)
    with open(os.path.join(d, "kustomization.yaml"), "w") as f:
        f.write(text.format(**{k: os.path.relpath(v, d) for k, v in paths.items()}))
    try:
        return c.render(d, name)
    finally:
        shutil.rmtree(d)


def check_persistent_against(c, docs, reference, where):
    """docs is reference with its Deployment turned into a StatefulSet: the same pod template
    except the data volume (a claim instead of the emptyDir) and fsGroupChangePolicy, the
    same selector and replicas, and every other object unchanged."""
    c.expect(not find(docs, "Deployment"), f"{where}: the persistent variant still renders a Deployment")
    sts = find(docs, "StatefulSet")
    c.expect(len(sts) == 1, f"{where}: expected one StatefulSet, got {len(sts)}")
    dep = find(reference, "Deployment")
    if len(sts) != 1 or len(dep) != 1:
        return
    sts, dep = sts[0], dep[0]
    want = copy.deepcopy(dep["spec"]["template"])
    data_mount = next((m["name"] for m in want["spec"]["containers"][0].get("volumeMounts") or []
                       if m.get("mountPath") == flag_value(want["spec"]["containers"][0].get("args") or [],
                                                           "--data-dir")), None)
    want["spec"]["volumes"] = [v for v in want["spec"]["volumes"] if v["name"] != data_mount]
    want["spec"]["securityContext"]["fsGroupChangePolicy"] = "OnRootMismatch"
    c.expect(sts["spec"]["template"] == want,
             f"{where}: the StatefulSet's pod template is not the Deployment's (less the data emptyDir):\n"
             f"  got  {json.dumps(sts['spec']['template'], sort_keys=True)}\n"
             f"  want {json.dumps(want, sort_keys=True)}")
    for key in ("selector", "replicas"):
        c.expect(sts["spec"].get(key) == dep["spec"].get(key),
                 f"{where}: StatefulSet {key} {sts['spec'].get(key)} is not the Deployment's {dep['spec'].get(key)}")
    c.expect(sts["metadata"].get("namespace") == dep["metadata"].get("namespace"),
             f"{where}: the StatefulSet is in {sts['metadata'].get('namespace')}, the Deployment was in "
             f"{dep['metadata'].get('namespace')}")
    rest = lambda ds: sorted(json.dumps(d, sort_keys=True) for d in ds  # noqa: E731
                             if d["kind"] not in WORKLOAD_KINDS)
    c.expect(rest(docs) == rest(reference),
             f"{where}: besides the workload, the persistent variant renders other objects than without it")


def cmd_persistent(c, args):
    component = os.path.join(c.manifests, "components", "persistent")
    base = os.path.join(c.manifests, "base")
    paths = []
    # overlays/persistent: the base and the component.
    path, docs = c.render(os.path.join(c.manifests, "overlays", "persistent"), "persistent")
    _, reference = c.render(base, "persistent-reference-base")
    check_policy(c, docs, "persistent", namespaced=False)
    check_persistent_against(c, docs, reference, "persistent")
    paths.append(path)
    # With a stage, as docs/deploy.md shows it.
    path, docs = render_kustomization(c, PERSISTENT_OVERLAY, "persistent-atomic", base=base,
                                      stage=os.path.join(c.manifests, "stages", "atomic"), persistent=component)
    _, reference = c.render(os.path.join(c.manifests, "overlays", "atomic"), "persistent-reference-atomic")
    check_policy(c, docs, "persistent-atomic", namespaced=False)
    check_stage_config(c, docs, "persistent-atomic", "atomic", 100)
    check_persistent_against(c, docs, reference, "persistent-atomic")
    paths.append(path)
    # A team's namespaced variant in its own namespace, with a stage and the component.
    team = TEAM_OVERLAY.replace("  - {stage}\n", "  - {stage}\n  - {persistent}\n")
    namespaced = os.path.join(c.manifests, "overlays", "namespaced")
    stage = os.path.join(c.manifests, "stages", "canary-10")
    path, docs = render_kustomization(c, team, "persistent-namespaced", namespaced=namespaced, stage=stage,
                                      persistent=component)
    _, reference = render_kustomization(c, TEAM_OVERLAY, "persistent-reference-namespaced",
                                        namespaced=namespaced, stage=stage)
    ns = check_policy(c, docs, "persistent-namespaced", namespaced=True)
    c.expect(ns == "team-a", f"persistent-namespaced: objects are in namespace {ns}, not team-a")
    check_stage_config(c, docs, "persistent-namespaced", "canary", 10)
    check_persistent_against(c, docs, reference, "persistent-namespaced")
    paths.append(path)
    c.yamllint(paths, "rendered persistent variants")
    c.validate(paths, "persistent variants")
    c.finish("the persistent variant (StatefulSet, a claim per replica)")


def strip_config(docs):
    rest = [d for d in docs if not (d["kind"] == "ConfigMap" and d["metadata"]["name"] == CONFIG_MAP)]
    return sorted((json.dumps(d, sort_keys=True) for d in rest))


def cmd_stages_differ_only_in_config(c, args):
    reference = None
    for stage in STAGES:
        _, docs = c.render(os.path.join(c.manifests, "overlays", stage), stage)
        objs = strip_config(docs)
        if reference is None:
            reference = (stage, objs)
        else:
            c.expect(objs == reference[1],
                     f"{stage} renders other objects than {reference[0]} besides the ConfigMap "
                     "(a stage may only change the config)")
    # The stage configs are the base config with another mode and rolloutPercent.
    with open(os.path.join(c.manifests, "base", CONFIG_KEY)) as f:
        base = yaml.safe_load(f)
    for stage, (mode, percent) in STAGES.items():
        with open(os.path.join(c.manifests, "stages", stage, CONFIG_KEY)) as f:
            cfg = yaml.safe_load(f)
        expected = copy.deepcopy(base)
        expected["eventBuffer"]["mode"] = mode
        expected["eventBuffer"]["rolloutPercent"] = percent
        c.expect(cfg == expected, f"stages/{stage}/{CONFIG_KEY} differs from base/{CONFIG_KEY} in more "
                 f"than mode/rolloutPercent:\n  got  {cfg}\n  want {expected}")
    overlays = sorted(os.listdir(os.path.join(c.manifests, "overlays")))
    c.expect(overlays == sorted([*STAGES, "namespaced", "persistent"]),
             f"manifests/overlays holds {overlays}: every overlay needs a test here")
    c.finish("stages differ only in mode and rolloutPercent")


def cmd_lint_sources(c, args):
    c.yamllint([c.manifests], "manifests/", rendered=False)
    c.finish("yamllint manifests/")


def cmd_rules(c, args):
    promtool = c.require("promtool", "prometheus")
    _, docs = c.render(os.path.join(c.manifests, "overlays", "shadow"), "rules-source")
    rules = one(docs, "PrometheusRule")
    groups = (rules.get("spec") or {}).get("groups")
    c.expect(bool(groups), "PrometheusRule has no spec.groups")
    path = os.path.join(c.work_dir, "prometheusrule-groups.yaml")
    with open(path, "w") as f:
        yaml.safe_dump({"groups": groups or []}, f, sort_keys=False)
    print(c.run([promtool, "check", "rules", path], "promtool check rules").strip())
    c.finish("promtool check rules on the PrometheusRule")


def cmd_check_config(c, args):
    binary = args.binary
    for stage in STAGES:
        _, docs = c.render(os.path.join(c.manifests, "overlays", stage), f"config-{stage}")
        text, _ = rendered_config(docs)
        path = os.path.join(c.work_dir, f"config-{stage}.yaml")
        with open(path, "w") as f:
            f.write(text)
        proc = subprocess.run([binary, "--check-config", path], capture_output=True, text=True, timeout=60)
        c.expect(proc.returncode == 0,
                 f"--check-config rejects the {stage} config (exit {proc.returncode}): "
                 f"{proc.stdout}{proc.stderr}")
    # The check must be able to fail: broken variants of a shipped config are rejected.
    _, shipped = rendered_config(c.render(os.path.join(c.manifests, "overlays", "canary-10"),
                                          "config-broken-source")[1])
    broken = {
        "unknown-mode": ("mode", "blue-green"),
        "percent-above-100": ("rolloutPercent", 150),
        "negative-sample-rate": ("verify", {"sampleRate": -0.5}),
        "bad-duration": ("retention", {**shipped["eventBuffer"]["retention"], "maxAge": "one hour"}),
    }
    for name, (key, value) in broken.items():
        cfg = copy.deepcopy(shipped)
        cfg["eventBuffer"][key] = value
        path = os.path.join(c.work_dir, f"config-broken-{name}.yaml")
        with open(path, "w") as f:
            yaml.safe_dump(cfg, f, sort_keys=False)
        proc = subprocess.run([binary, "--check-config", path], capture_output=True, text=True, timeout=60)
        c.expect(proc.returncode != 0, f"--check-config accepts a broken config ({name}): {path}")
    c.finish("--check-config on every stage's config")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--source-dir", required=True, help="repository root")
    p.add_argument("--work-dir", required=True, help="where rendered files go")
    p.add_argument("--validator", default=os.environ.get("K8S_VALIDATE", ""),
                   help="path of shared/tools/k8s-validate/run")
    sub = p.add_subparsers(dest="cmd", required=True)
    o = sub.add_parser("overlay")
    o.add_argument("name")
    o.add_argument("--mode")
    o.add_argument("--percent", type=float)
    sub.add_parser("namespaced-stages")
    sub.add_parser("stages-differ-only-in-config")
    sub.add_parser("lint-sources")
    sub.add_parser("rules")
    sub.add_parser("policy-catches-breakage")
    sub.add_parser("cert-manager")
    sub.add_parser("serving-cert")
    sub.add_parser("persistent")
    cc = sub.add_parser("check-config")
    cc.add_argument("binary")
    args = p.parse_args()
    c = Checker(args)
    try:
        {
            "overlay": cmd_overlay,
            "namespaced-stages": cmd_namespaced_stages,
            "stages-differ-only-in-config": cmd_stages_differ_only_in_config,
            "lint-sources": cmd_lint_sources,
            "rules": cmd_rules,
            "policy-catches-breakage": cmd_policy_catches_breakage,
            "cert-manager": cmd_cert_manager,
            "serving-cert": cmd_serving_cert,
            "persistent": cmd_persistent,
            "check-config": cmd_check_config,
        }[args.cmd](c, args)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
