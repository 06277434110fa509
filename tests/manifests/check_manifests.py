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
  check-config BINARY                 BINARY --check-config accepts every stage's config.yaml
                                      as rendered, and rejects broken variants of it
"""

import argparse
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


def check_policy(c, docs, where, namespaced):
    """The deployment contract of docs/deploy.md, on one rendered overlay."""
    ns_of = {}
    for d in docs:
        meta = d.get("metadata", {})
        if d["kind"] not in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
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

    # Namespace and RBAC
    if namespaced:
        for kind in ("Namespace", "ClusterRole", "ClusterRoleBinding"):
            c.expect(not find(docs, kind), f"{where}: the namespaced variant must not create a {kind}")
        role_kind, binding_kind = "Role", "RoleBinding"
    else:
        c.expect([n["metadata"]["name"] for n in find(docs, "Namespace")] == [namespace],
                 f"{where}: expected the Namespace {namespace}")
        c.expect(not find(docs, "Role") and not find(docs, "RoleBinding"),
                 f"{where}: the cluster-wide variant uses a ClusterRole, not a Role")
        role_kind, binding_kind = "ClusterRole", "ClusterRoleBinding"
    role = one(docs, role_kind)
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
    binding = one(docs, binding_kind)
    c.expect(binding["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": role_kind,
                                    "name": role["metadata"]["name"]},
             f"{where}: {binding_kind} roleRef {binding['roleRef']} does not name the {role_kind}")
    sa = one(docs, "ServiceAccount")
    c.expect({"kind": "ServiceAccount", "name": sa["metadata"]["name"], "namespace": namespace}
             in binding.get("subjects", []),
             f"{where}: {binding_kind} subjects {binding.get('subjects')} miss ServiceAccount "
             f"{namespace}/{sa['metadata']['name']}")

    # Deployment
    dep = one(docs, "Deployment")
    spec = dep["spec"]
    pod = spec["template"]["spec"]
    c.expect(spec.get("replicas") == 1, f"{where}: Deployment replicas must be 1 (state is in memory)")
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
    c.expect(ports == {"metrics": 8080, "api": 8081}, f"{where}: container ports {ports}")
    args = ctr.get("args") or []
    c.expect(f"--config={CONFIG_DIR}/{CONFIG_KEY}" in args, f"{where}: args {args} lack --config")
    c.expect("--metrics-bind-address=:8080" in args and "--health-probe-bind-address=:8081" in args,
             f"{where}: args {args} lack the bind addresses")

    def probe_ok(name, path):
        probe = ctr.get(name) or {}
        get = probe.get("httpGet") or {}
        port = get.get("port")
        port = ports.get(port, port)
        c.expect(get.get("path") == path and port == 8081,
                 f"{where}: {name} must GET {path} on 8081, got {get}")

    probe_ok("livenessProbe", "/healthz")
    probe_ok("readinessProbe", "/readyz")

    mounts = [m for m in ctr.get("volumeMounts") or [] if m.get("mountPath") == CONFIG_DIR]
    c.expect(len(mounts) == 1, f"{where}: no volume mounted at {CONFIG_DIR}")
    if mounts:
        c.expect("subPath" not in mounts[0] and "subPathExpr" not in mounts[0],
                 f"{where}: the config volume must be a directory mount (subPath never sees updates)")
        vols = {v["name"]: v for v in pod.get("volumes") or []}
        vol = vols.get(mounts[0]["name"], {})
        c.expect((vol.get("configMap") or {}).get("name") == CONFIG_MAP,
                 f"{where}: the config volume is not the ConfigMap {CONFIG_MAP}")
        c.expect(not (vol.get("configMap") or {}).get("items"),
                 f"{where}: the config volume must project every key (no items list)")
    env = {e["name"]: e for e in ctr.get("env") or []}
    if namespaced:
        c.expect("--namespace=$(POD_NAMESPACE)" in args, f"{where}: args {args} lack --namespace")
        c.expect(((env.get("POD_NAMESPACE") or {}).get("valueFrom") or {}).get("fieldRef", {})
                 .get("fieldPath") == "metadata.namespace",
                 f"{where}: POD_NAMESPACE must come from the downward API")
    else:
        c.expect(not any(a.startswith("--namespace") for a in args),
                 f"{where}: the cluster-wide variant must watch all namespaces")

    # Service, ServiceMonitor, dashboard
    svc = one(docs, "Service")
    pod_labels = spec["template"]["metadata"].get("labels") or {}
    selector = svc["spec"].get("selector") or {}
    c.expect(selector and all(pod_labels.get(k) == v for k, v in selector.items()),
             f"{where}: Service selector {selector} does not match the pod labels {pod_labels}")
    c.expect(selector == spec["selector"].get("matchLabels"),
             f"{where}: Service selector differs from the Deployment selector")
    svc_ports = {p["name"]: (p["port"], p.get("targetPort")) for p in svc["spec"]["ports"]}
    c.expect(svc_ports == {"metrics": (8080, "metrics"), "api": (8081, "api")},
             f"{where}: Service ports {svc_ports}")
    for sm in find(docs, "ServiceMonitor"):
        match = ((sm.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
        labels = svc["metadata"].get("labels") or {}
        c.expect(match and all(labels.get(k) == v for k, v in match.items()),
                 f"{where}: ServiceMonitor selector {match} does not select the Service {labels}")
        eps = (sm.get("spec") or {}).get("endpoints") or []
        c.expect(any(e.get("port") == "metrics" for e in eps),
                 f"{where}: ServiceMonitor has no endpoint on port 'metrics'")
        c.expect(all(e.get("path", "/metrics") == "/metrics" for e in eps),
                 f"{where}: ServiceMonitor endpoints must scrape /metrics")
    c.expect(len(find(docs, "ServiceMonitor")) == 1, f"{where}: expected one ServiceMonitor")
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


def check_stage_config(c, docs, where, mode, percent):
    _, cfg = rendered_config(docs)
    eb = (cfg or {}).get("eventBuffer") or {}
    c.expect(eb.get("mode") == mode, f"{where}: eventBuffer.mode is {eb.get('mode')!r}, want {mode!r}")
    c.expect(eb.get("rolloutPercent") == percent,
             f"{where}: eventBuffer.rolloutPercent is {eb.get('rolloutPercent')!r}, want {percent}")


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
    c.expect(overlays == sorted([*STAGES, "namespaced"]),
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
            "check-config": cmd_check_config,
        }[args.cmd](c, args)
    except Failure as e:
        print(f"FAIL: {e}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
