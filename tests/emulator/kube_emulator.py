#!/usr/bin/env python3
"""A kube-apiserver emulator for core/v1 Events (Python 3 standard library only).

It serves the real wire format of the Events API (paged EventList, chunked watch streams
with BOOKMARK and ERROR events, Status error bodies), over TLS with a generated CA and a
bearer token read from a file that can be rotated, plus scripted traffic (scenarios) and
scripted faults driven through a small control API under /_emulator/.

See tests/emulator/README.md for the command line, the control API and the fault kinds.
"""

import argparse
import base64
import bisect
import collections
import hashlib
import json
import os
import random
import re
import secrets
import select
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import traceback
import uuid
from array import array
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

EMULATED_VERSION = {
    "major": "1",
    "minor": "32",
    "gitVersion": "v1.32.0-keb-emulator",
    "gitCommit": "0000000000000000000000000000000000000000",
    "gitTreeState": "clean",
    "buildDate": "2026-01-01T00:00:00Z",
    "goVersion": "go1.23.4",
    "compiler": "gc",
    "platform": "linux/amd64",
}

# ---------------------------------------------------------------------------------------
# JSON encoding as the API server does it (Go encoding/json): compact, UTF-8 kept, and
# HTML-sensitive characters and U+2028/U+2029 escaped.
# ---------------------------------------------------------------------------------------

_GO_ESCAPES = (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
               ("\u2029", "\\u2029"))


def go_json(value):
    text = json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    for raw, escaped in _GO_ESCAPES:
        if raw in text:
            text = text.replace(raw, escaped)
    return text.encode("utf-8")


def rfc3339(ts):
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(ts))


def micro_time(ts):
    return "%s.%06dZ" % (time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts)), int((ts % 1) * 1e6))


def status_object(code, reason, message, details=None):
    obj = {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
           "message": message, "reason": reason}
    if details is not None:
        obj["details"] = details
    obj["code"] = code
    return obj


def event_key(body_obj):
    """Buffer key of an Event: involvedObject namespace/kind/name ("" namespace when cluster-scoped)."""
    inv = body_obj.get("involvedObject", {})
    return "%s/%s/%s" % (inv.get("namespace", ""), inv.get("kind", ""), inv.get("name", ""))


# ---------------------------------------------------------------------------------------
# Store: live Events, the global resourceVersion, the retained watch history, list
# snapshots for consistent paging, and the record of every emitted occurrence.
# ---------------------------------------------------------------------------------------


class LiveEvent:
    __slots__ = ("obj", "body", "full")

    def __init__(self, obj):
        self.obj = obj                      # dict without kind/apiVersion (a list item)
        self.body = go_json(obj)            # list-item bytes
        self.full = b'{"kind":"Event","apiVersion":"v1",' + self.body[1:]  # watch object bytes


class FastStream:
    """A pre-built run of watch lines (resourceVersions base+1 .. base+n) served as fast as
    the client reads. Watch-only: lists do not contain these events."""

    def __init__(self, blob, offsets, base_rv, count):
        self.blob = blob
        self.offsets = offsets              # offsets[i] = start of line i; offsets[n] = len
        self.base = base_rv
        self.count = count

    @property
    def end(self):
        return self.base + self.count


class Store:
    def __init__(self, start_rv, window):
        self.cond = threading.Condition()
        self.rv = start_rv
        self.window = max(1, window)
        self.live = {}                       # (namespace, name) -> LiveEvent
        self.by_uid = {}                     # uid -> (namespace, name)
        self.hist = []                       # [(rv, type, namespace, full bytes)]; contiguous rvs
        self.hist_head = 0                   # index of the first retained entry in hist
        self.floor = start_rv                # history covers (floor, rv]
        # Every ADDED/MODIFIED occurrence and every DELETED (dicts), the oldest dropped beyond
        # 2,000,000 so that a demo left running for days stays bounded.
        self.occurrences = collections.deque(maxlen=2000000)
        self.deleted = collections.deque(maxlen=2000000)
        self.events_total = 0
        self.snapshots = collections.OrderedDict()   # (rv, ns, fieldSelector) -> (keys, LiveEvents)
        self.stream = None
        self.closed = False
        # Returns the armed poison_watch_line spec ({"in_list": bool}) when the change being
        # emitted must be poisoned, else None.
        self.take_poison = lambda: None

    # -- mutation (callers hold no lock) ------------------------------------------------
    def _emit(self, wtype, live):
        self.rv += 1
        md = live.obj["metadata"]
        # Every change carries its own resourceVersion; a DELETED carries the object's last
        # state stamped with the deletion's resourceVersion, as etcd-backed watches send it.
        md["resourceVersion"] = str(self.rv)
        live.body = go_json(live.obj)
        live.full = b'{"kind":"Event","apiVersion":"v1",' + live.body[1:]
        hist_full = live.full
        poison = self.take_poison() if wtype != "DELETED" else None
        poisoned = poison is not None
        if poisoned:
            # This revision as the watch history keeps it does not decode: "count" is a
            # string. Every watch from an older resourceVersion replays it; lists and GETs
            # serve the Event's state with a proper integer, unless in_list: then they serve
            # the same bad bytes until the Event's next revision (a revision stored that way,
            # as a real API server would serve it). live.obj stays clean for the next change.
            bad = dict(live.obj)
            bad["count"] = str(bad.get("count", 1))
            bad_body = go_json(bad)
            hist_full = b'{"kind":"Event","apiVersion":"v1",' + bad_body[1:]
            if poison["in_list"]:
                live.body, live.full = bad_body, hist_full
        self.hist.append((self.rv, wtype, md["namespace"], hist_full))
        retained = len(self.hist) - self.hist_head
        if retained > self.window:
            drop = retained - self.window
            self.floor = self.hist[self.hist_head + drop - 1][0]
            self.hist_head += drop
            if self.hist_head > 4096 and self.hist_head * 2 > len(self.hist):
                del self.hist[:self.hist_head]
                self.hist_head = 0
        o = live.obj
        record = {
            "uid": md["uid"], "resourceVersion": md["resourceVersion"], "key": event_key(o),
            "namespace": md["namespace"], "name": md["name"], "watchType": wtype,
            "kind": o["involvedObject"].get("kind", ""),
            "object": o["involvedObject"].get("name", ""),
            "reason": o.get("reason", ""), "type": o.get("type", ""), "count": o.get("count", 0),
            "message": o.get("message", ""), "firstTimestamp": o.get("firstTimestamp"),
            "lastTimestamp": o.get("lastTimestamp"), "eventTime": o.get("eventTime"),
        }
        if poisoned:
            record["poisoned"] = True
        if wtype == "DELETED":
            self.deleted.append(record)
        else:
            self.occurrences.append(record)
            self.events_total += 1
        return record

    def add(self, obj):
        """Creates an Event (obj without kind/apiVersion). Returns the occurrence record."""
        with self.cond:
            md = obj["metadata"]
            key = (md["namespace"], md["name"])
            while key in self.live:          # names must be unique per namespace
                md["name"] += "x"
                key = (md["namespace"], md["name"])
            md.setdefault("uid", str(uuid.uuid4()))
            live = LiveEvent(obj)
            self.live[key] = live
            self.by_uid[md["uid"]] = key
            rec = self._emit("ADDED", live)
            self.cond.notify_all()
            return rec

    def modify(self, uid, mutate):
        """Applies mutate(obj) to the live Event with this uid and emits MODIFIED."""
        with self.cond:
            key = self.by_uid.get(uid)
            if key is None:
                return None
            live = self.live[key]
            obj = json.loads(go_json(live.obj))  # a new revision: never mutate emitted bytes' source
            mutate(obj)
            live.obj = obj
            rec = self._emit("MODIFIED", live)
            self.cond.notify_all()
            return rec

    def delete(self, uid):
        with self.cond:
            key = self.by_uid.pop(uid, None)
            if key is None:
                return None
            live = self.live.pop(key)
            rec = self._emit("DELETED", live)
            self.cond.notify_all()
            return rec

    def compact(self, keep=0):
        """Drops retained history so that only the last `keep` changes can be watched from."""
        with self.cond:
            retained = len(self.hist) - self.hist_head
            drop = max(0, retained - keep)
            if drop:
                self.hist_head += drop
            self.floor = self.rv if self.hist_head >= len(self.hist) else self.hist[self.hist_head][0] - 1
            self.cond.notify_all()

    def uid_of(self, namespace, name):
        with self.cond:
            live = self.live.get((namespace, name))
            return live.obj["metadata"]["uid"] if live else None

    # -- reads (callers hold self.cond) -------------------------------------------------
    def history_after(self, rv, namespace):
        """Watch lines after rv (exclusive) up to self.rv: [(rv, type, full)]."""
        if rv >= self.rv:
            return []
        start = self.hist_head + (rv + 1 - self.hist[self.hist_head][0]) if self.hist_head < len(self.hist) else len(self.hist)
        out = []
        for i in range(max(start, self.hist_head), len(self.hist)):
            h = self.hist[i]
            if namespace is None or h[2] == namespace:
                out.append((h[0], h[1], h[3]))
        return out

    def sorted_live(self, namespace):
        keys = sorted(k for k in self.live if namespace is None or k[0] == namespace)
        return keys, [self.live[k] for k in keys]


# ---------------------------------------------------------------------------------------
# Realistic cluster traffic.
# ---------------------------------------------------------------------------------------

NAMESPACES = ["default", "kube-system", "payments", "checkout", "monitoring", "ingress-nginx"]
APPS = {
    "default": ["web-frontend", "redis-cache"],
    "kube-system": ["coredns", "metrics-server"],
    "payments": ["payments-api", "ledger-worker"],
    "checkout": ["checkout-api", "cart-service"],
    "monitoring": ["prometheus-server", "alertmanager"],
    "ingress-nginx": ["ingress-nginx-controller"],
}
IMAGES = {
    "web-frontend": "registry.example.com/shop/web-frontend:2.14.1",
    "redis-cache": "docker.io/library/redis:7.2.4-alpine",
    "coredns": "registry.k8s.io/coredns/coredns:v1.11.1",
    "metrics-server": "registry.k8s.io/metrics-server/metrics-server:v0.7.0",
    "payments-api": "registry.example.com/payments/payments-api:1.42.0",
    "ledger-worker": "registry.example.com/payments/ledger-worker:0.9.3",
    "checkout-api": "registry.example.com/shop/checkout-api:3.1.0",
    "cart-service": "registry.example.com/shop/cart-service:3.0.7",
    "prometheus-server": "quay.io/prometheus/prometheus:v2.51.2",
    "alertmanager": "quay.io/prometheus/alertmanager:v0.27.0",
    "ingress-nginx-controller": "registry.k8s.io/ingress-nginx/controller:v1.10.1",
}
NODES = ["worker-1", "worker-2", "worker-3", "ip-10-0-12-34.ec2.internal"]
UNICODE_SAMPLES = [
    "Pod \u00abcaf\u00e9-\u00fcber\u00bb f\u00e4llt: \u201cquoted\u201d",
    "\u8282\u70b9\u78c1\u76d8\u538b\u529b \u2014 \u65e5\u672c\u8a9e\u30e1\u30c3\u30bb\u30fc\u30b8",
    "emoji \U0001F680\U0001F525 combining e\u0301 and zero-width\u200bspace",
    "escapes: \"double\" \\back\\slash\\ tab\there newline\nline2 <html> & \u2028sep",
    "\u0645\u0631\u062d\u0628\u0627 \u05e9\u05dc\u05d5\u05dd \u0928\u092e\u0938\u094d\u0924\u0947 \u0440\u0443\u0441\u0441\u043a\u0438\u0439",
]


class ClusterSim:
    """Makes realistic core/v1 Event objects and drives ongoing demo traffic."""

    def __init__(self, store, seed, ttl_seconds, managed_fields=True):
        self.store = store
        self.rng = random.Random(seed)
        self.ttl = ttl_seconds
        self.managed_fields = managed_fields
        self.lock = threading.Lock()
        self.pods = []                       # dicts: ns, name, uid, app, node, state
        self.aggregate = {}                  # correlation key -> event uid
        self.pending = collections.deque()   # queued event specs for multi-step stories
        self.pressure = set()
        for ns in NAMESPACES:
            for app in APPS[ns]:
                for _ in range(self.rng.randint(1, 3)):
                    self._new_pod(ns, app, "Running")

    # -- identities ---------------------------------------------------------------------
    def _uid(self):
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    def _suffix(self, n, alphabet="bcdfghjklmnpqrstvwxz2456789"):
        return "".join(self.rng.choice(alphabet) for _ in range(n))

    def _new_pod(self, ns, app, state):
        rs_hash = hashlib.sha1(app.encode()).hexdigest()[:9]
        pod = {"ns": ns, "name": "%s-%s-%s" % (app, rs_hash, self._suffix(5)), "uid": self._uid(),
               "app": app, "node": self.rng.choice(NODES[:3]), "state": state,
               "rv": str(self.rng.randint(100000, 999999)), "rs": "%s-%s" % (app, rs_hash)}
        self.pods.append(pod)
        if len(self.pods) > 60:
            self.pods.pop(0)
        return pod

    # -- Event construction ----------------------------------------------------------
    def pod_ref(self, pod, field_path=None):
        ref = {"kind": "Pod", "namespace": pod["ns"], "name": pod["name"], "uid": pod["uid"],
               "apiVersion": "v1", "resourceVersion": pod["rv"]}
        if field_path:
            ref["fieldPath"] = field_path
        return ref

    @staticmethod
    def node_ref(node):
        # kubelet refers to its Node by name, with the name as uid and no namespace.
        return {"kind": "Node", "name": node, "uid": node}

    def make_event(self, now, inv, reason, message, etype="Normal", component="kubelet", host=None,
                   new_style=False, action=None):
        ns = inv.get("namespace") or "default"
        uid = self._uid()
        md = {"name": "%s.%x" % (inv["name"], int(now * 1e9) + self.rng.randint(0, 999)),
              "namespace": ns, "uid": uid, "resourceVersion": "",
              "creationTimestamp": rfc3339(now)}
        if new_style:
            instance = "%s-control-plane" % component
            if self.managed_fields:
                md["managedFields"] = [{
                    "manager": component, "operation": "Update", "apiVersion": "events.k8s.io/v1",
                    "time": rfc3339(now), "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:action": {}, "f:eventTime": {}, "f:note": {}, "f:reason": {},
                                 "f:regarding": {}, "f:reportingController": {},
                                 "f:reportingInstance": {}, "f:type": {}}}]
            return {"metadata": md, "involvedObject": inv, "reason": reason, "message": message,
                    "source": {}, "firstTimestamp": None, "lastTimestamp": None, "type": etype,
                    "eventTime": micro_time(now), "action": action or reason,
                    "reportingComponent": component, "reportingInstance": instance}
        host = host or ""
        if self.managed_fields:
            md["managedFields"] = [{
                "manager": component, "operation": "Update", "apiVersion": "v1", "time": rfc3339(now),
                "fieldsType": "FieldsV1",
                "fieldsV1": {"f:count": {}, "f:firstTimestamp": {}, "f:involvedObject": {},
                             "f:lastTimestamp": {}, "f:message": {}, "f:reason": {},
                             "f:reportingComponent": {}, "f:reportingInstance": {},
                             "f:source": {"f:component": {}, "f:host": {}}, "f:type": {}}}]
        source = {"component": component}
        if host:
            source["host"] = host
        return {"metadata": md, "involvedObject": inv, "reason": reason, "message": message,
                "source": source, "firstTimestamp": rfc3339(now), "lastTimestamp": rfc3339(now),
                "count": 1, "type": etype, "eventTime": None, "reportingComponent": component,
                "reportingInstance": host}

    def emit(self, obj, correlate=True):
        """Adds the Event, or - when an Event with the same source, object, reason and message
        exists (the kubelet's correlator) - bumps its count as MODIFIED. Returns the record."""
        if not correlate:
            return self.store.add(obj)
        inv = obj["involvedObject"]
        ckey = (inv.get("uid"), obj["reason"], obj["message"], obj.get("reportingComponent"))
        uid = self.aggregate.get(ckey)
        if uid is not None:
            stamp = rfc3339(time.time())
            micro = micro_time(time.time())

            def bump(o):
                if o.get("series") is not None or o.get("eventTime"):
                    series = o.get("series") or {"count": 1}
                    o["series"] = {"count": series["count"] + 1, "lastObservedTime": micro}
                else:
                    o["count"] = o.get("count", 1) + 1
                    o["lastTimestamp"] = stamp
            rec = self.store.modify(uid, bump)
            if rec is not None:
                return rec
        rec = self.store.add(obj)
        self.aggregate[ckey] = rec["uid"]
        return rec

    # -- stories ------------------------------------------------------------------------
    def step(self):
        """Emits one demo event (possibly a repeat). Returns the record."""
        with self.lock:
            now = time.time()
            if self.pending:
                spec = self.pending.popleft()
                return self.emit(self.make_event(now, *spec[0], **spec[1]))
            roll = self.rng.random()
            if roll < 0.20:
                return self._crashloop(now)
            if roll < 0.30:
                return self._rollout(now)
            if roll < 0.40:
                return self._image_pull_failure(now)
            if roll < 0.48:
                return self._failed_scheduling(now)
            if roll < 0.58:
                return self._probe_failure(now)
            if roll < 0.65:
                return self._node_pressure(now)
            if roll < 0.70:
                return self._oom(now)
            if roll < 0.77:
                return self._failed_mount(now)
            if roll < 0.82:
                return self._hpa(now)
            if roll < 0.86:
                return self._leader_election(now)
            return self._crashloop(now)

    def _failed_mount(self, now):
        pod = self._pick_pod("Running")
        msg = 'MountVolume.SetUp failed for volume "config" : configmap "%s-config" not found' % pod["app"]
        return self.emit(self.make_event(now, self.pod_ref(pod), "FailedMount", msg, "Warning", "kubelet",
                                         pod["node"]))

    def _hpa(self, now):
        ns = self.rng.choice(["payments", "checkout", "default"])
        app = self.rng.choice(APPS[ns])
        ref = {"kind": "HorizontalPodAutoscaler", "namespace": ns, "name": app,
               "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "hpa/%s/%s" % (ns, app))),
               "apiVersion": "autoscaling/v2", "resourceVersion": str(self.rng.randint(100000, 999999))}
        old = self.rng.randint(2, 8)
        new = old + self.rng.choice([-1, 1, 2])
        msg = "New size: %d; reason: cpu resource utilization (percentage of request) %s target" % (
            new, "above" if new > old else "below")
        return self.emit(self.make_event(now, ref, "SuccessfulRescale", msg, "Normal",
                                         "horizontal-pod-autoscaler"))

    def _leader_election(self, now):
        name = self.rng.choice(["kube-controller-manager", "kube-scheduler"])
        ref = {"kind": "Lease", "namespace": "kube-system", "name": name,
               "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "lease/" + name)), "apiVersion": "coordination.k8s.io/v1",
               "resourceVersion": str(self.rng.randint(100000, 999999))}
        holder = "control-plane-%d_%s" % (self.rng.randint(1, 3), self._uid())
        return self.emit(self.make_event(now, ref, "LeaderElection", "%s became leader" % holder, "Normal", name))

    def _pick_pod(self, state=None):
        pods = [p for p in self.pods if state is None or p["state"] == state]
        return self.rng.choice(pods) if pods else self.rng.choice(self.pods)

    def _crashloop(self, now):
        pod = self._pick_pod("CrashLoop")
        if pod["state"] != "CrashLoop":
            pod["state"] = "CrashLoop"
        msg = "Back-off restarting failed container app in pod %s_%s(%s)" % (pod["name"], pod["ns"], pod["uid"])
        return self.emit(self.make_event(now, self.pod_ref(pod, "spec.containers{app}"), "BackOff", msg,
                                         "Warning", "kubelet", pod["node"]))

    def _rollout(self, now):
        ns = self.rng.choice(NAMESPACES)
        app = self.rng.choice(APPS[ns])
        pod = self._new_pod(ns, app, "Running")
        rs_ref = {"kind": "ReplicaSet", "namespace": ns, "name": pod["rs"], "uid": self._uid(),
                  "apiVersion": "apps/v1", "resourceVersion": str(self.rng.randint(100000, 999999))}
        image = IMAGES[app]
        fp = "spec.containers{app}"
        ref = self.pod_ref(pod, fp)
        if self.rng.random() < 0.3:
            dep_ref = {"kind": "Deployment", "namespace": ns, "name": app,
                       "uid": str(uuid.uuid5(uuid.NAMESPACE_URL, "deploy/%s/%s" % (ns, app))),
                       "apiVersion": "apps/v1", "resourceVersion": str(self.rng.randint(100000, 999999))}
            self.pending.append(((dep_ref, "ScalingReplicaSet", "Scaled up replica set %s to %d from %d"
                                  % (pod["rs"], 3, 2)), {"component": "deployment-controller"}))
        self.pending.append(((self.pod_ref(pod), "Scheduled",
                              "Successfully assigned %s/%s to %s" % (ns, pod["name"], pod["node"])),
                             {"component": "default-scheduler", "new_style": True, "action": "Binding"}))
        self.pending.append(((ref, "Pulling", 'Pulling image "%s"' % image),
                             {"component": "kubelet", "host": pod["node"]}))
        self.pending.append(((ref, "Pulled",
                              'Successfully pulled image "%s" in 2.318s (2.318s including waiting). '
                              'Image size: 48213377 bytes.' % image), {"component": "kubelet", "host": pod["node"]}))
        self.pending.append(((ref, "Created", "Created container app"), {"component": "kubelet", "host": pod["node"]}))
        self.pending.append(((ref, "Started", "Started container app"), {"component": "kubelet", "host": pod["node"]}))
        return self.emit(self.make_event(now, rs_ref, "SuccessfulCreate", "Created pod: %s" % pod["name"],
                                         "Normal", "replicaset-controller"))

    def _image_pull_failure(self, now):
        pod = self._pick_pod("ImagePull")
        ref = self.pod_ref(pod, "spec.containers{app}")
        image = IMAGES[pod["app"]].rsplit(":", 1)[0] + ":does-not-exist"
        if pod["state"] != "ImagePull":
            pod["state"] = "ImagePull"
            self.pending.append(((ref, "Failed",
                                  'Failed to pull image "%s": rpc error: code = NotFound desc = failed to pull and '
                                  'unpack image "%s": failed to resolve reference "%s": %s: not found'
                                  % (image, image, image, image), "Warning"), {"host": pod["node"]}))
            self.pending.append(((ref, "Failed", "Error: ErrImagePull", "Warning"), {"host": pod["node"]}))
            return self.emit(self.make_event(now, ref, "Pulling", 'Pulling image "%s"' % image, "Normal",
                                             "kubelet", pod["node"]))
        if self.rng.random() < 0.5:
            return self.emit(self.make_event(now, ref, "BackOff", 'Back-off pulling image "%s"' % image,
                                             "Normal", "kubelet", pod["node"]))
        return self.emit(self.make_event(now, ref, "Failed", "Error: ImagePullBackOff", "Warning",
                                         "kubelet", pod["node"]))

    def _failed_scheduling(self, now):
        pod = self._pick_pod("Pending")
        pod["state"] = "Pending"
        msg = ("0/3 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/disk-pressure: }, "
               "2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for "
               "scheduling, 2 No preemption victims found for incoming pod.")
        return self.emit(self.make_event(now, self.pod_ref(pod), "FailedScheduling", msg, "Warning",
                                         "default-scheduler", new_style=True, action="Scheduling"))

    def _probe_failure(self, now):
        pod = self._pick_pod("Running")
        probe = self.rng.choice(["Liveness", "Readiness"])
        msg = ('%s probe failed: Get "http://10.244.%d.%d:8080/healthz": context deadline exceeded '
               '(Client.Timeout exceeded while awaiting headers)'
               % (probe, NODES.index(pod["node"]) + 1, int(pod["uid"][:2], 16)))
        return self.emit(self.make_event(now, self.pod_ref(pod, "spec.containers{app}"), "Unhealthy", msg,
                                         "Warning", "kubelet", pod["node"]))

    def _node_pressure(self, now):
        node = self.rng.choice(NODES)
        ref = self.node_ref(node)
        if node in self.pressure:
            if self.rng.random() < 0.3:
                self.pressure.discard(node)
                return self.emit(self.make_event(now, ref, "NodeHasNoDiskPressure",
                                                 "Node %s status is now: NodeHasNoDiskPressure" % node,
                                                 "Normal", "kubelet", node))
            return self.emit(self.make_event(now, ref, "EvictionThresholdMet",
                                             "Attempting to reclaim ephemeral-storage", "Warning", "kubelet", node))
        self.pressure.add(node)
        return self.emit(self.make_event(now, ref, "NodeHasDiskPressure",
                                         "Node %s status is now: NodeHasDiskPressure" % node, "Normal",
                                         "kubelet", node))

    def _oom(self, now):
        pod = self._pick_pod("Running")
        ref = {"kind": "Node", "name": pod["node"], "uid": pod["node"]}
        msg = "Memory cgroup out of memory: Killed process %d (java) total-vm:%dkB, anon-rss:%dkB" % (
            self.rng.randint(1000, 60000), self.rng.randint(2000000, 9000000), self.rng.randint(500000, 2000000))
        return self.emit(self.make_event(now, ref, "OOMKilling", msg, "Warning", "kernel-monitor", pod["node"]))

    def custom(self, spec, index):
        """An Event from a /_emulator/events request entry."""
        now = time.time()
        with self.lock:
            ns = spec.get("namespace", "default")
            kind = spec.get("kind", "Pod")
            name = spec.get("name") or "%s-%s" % (spec.get("name_prefix", "test-pod"), index)
            if "involvedObject" in spec:
                inv = dict(spec["involvedObject"])
            elif kind == "Node" or spec.get("cluster_scoped"):
                inv = {"kind": kind, "name": name, "uid": spec.get("object_uid", name)}
                if kind != "Node":
                    inv["apiVersion"] = spec.get("apiVersion", "v1")
            else:
                inv = {"kind": kind, "namespace": ns, "name": name,
                       "uid": spec.get("object_uid") or str(uuid.uuid5(uuid.NAMESPACE_URL, "%s/%s/%s" % (ns, kind, name))),
                       "apiVersion": spec.get("apiVersion", "v1"), "resourceVersion": "4242"}
                if spec.get("fieldPath"):
                    inv["fieldPath"] = spec["fieldPath"]
            message = spec.get("message", "Test event %d for %s/%s" % (index, kind, name))
            if spec.get("unicode"):
                message = UNICODE_SAMPLES[index % len(UNICODE_SAMPLES)] + " #%d" % index
            if spec.get("message_bytes"):
                message = sized_message(message, int(spec["message_bytes"]), bool(spec.get("unicode")))
            obj = self.make_event(now, inv, spec.get("reason", "TestReason"), message,
                                  spec.get("type", "Normal"), spec.get("component", "kubelet"),
                                  spec.get("host", "worker-1"), new_style=bool(spec.get("new_style")))
            if spec.get("event_name"):
                obj["metadata"]["name"] = spec["event_name"]
            # Timestamps as the writer sent them (e.g. a skewed clock): RFC 3339 text, or
            # null. eventTime is MicroTime text.
            for key, field in (("first_timestamp", "firstTimestamp"), ("last_timestamp", "lastTimestamp"),
                               ("event_time", "eventTime")):
                if key in spec:
                    obj[field] = spec[key]
            return self.store.add(obj)

    def expire_ttl(self):
        """Deletes Events whose last activity is older than the TTL (the API server's event TTL)."""
        if self.ttl <= 0:
            return 0
        cutoff = rfc3339(time.time() - self.ttl)
        with self.store.cond:
            old = [lv.obj["metadata"]["uid"] for lv in self.store.live.values()
                   if (lv.obj.get("lastTimestamp") or lv.obj.get("series", {}).get("lastObservedTime")
                       or lv.obj.get("eventTime") or lv.obj["metadata"]["creationTimestamp"]) < cutoff]
        for uid in old:
            self.store.delete(uid)
        with self.lock:
            live = set(self.store.by_uid)
            self.aggregate = {k: v for k, v in self.aggregate.items() if v in live}
        return len(old)


def sized_message(prefix, size, unicode_fill):
    """A message of exactly `size` UTF-8 bytes starting with prefix (truncated on a character boundary)."""
    filler = "\u00e9\u4e2d\U0001F600 <&> \"q\" " if unicode_fill else "lorem ipsum dolor sit amet "
    text = prefix + " "
    missing = size - len(text.encode("utf-8"))
    if missing > 0:  # enough whole fillers at once (growing the text step by step is quadratic)
        text += filler * (missing // len(filler.encode("utf-8")) + 1)
    data = text.encode("utf-8")[:size]
    while True:
        try:
            out = data.decode("utf-8")
            break
        except UnicodeDecodeError:
            data = data[:-1]
    return out + "." * (size - len(out.encode("utf-8")))


FAST_STREAM_REVISION_WINDOW = 256


def build_fast_stream(sim, count, base_rv, objects, managed_fields_ratio=0.35, revisions=0):
    """Pre-builds `count` watch lines, ~850-1000 bytes each. Lines are rendered from templates
    so that a million events take seconds, not minutes.

    revisions == 0: ADDED Events and (1 in 5) MODIFIED repeats of recent stream Events.
    revisions == N > 0: every Event arrives as ADDED (count 1) and then exactly N MODIFIED
    revisions (count 2..N+1), each with a new resourceVersion and lastTimestamp and nothing
    else changed, like a kubelet BackOff repeating. FAST_STREAM_REVISION_WINDOW Events are
    in flight at a time and each line's revision goes to one of them picked at random, so an
    Event's revisions are interleaved with other Events' lines; an Event leaves the window
    after its N-th MODIFIED and a new one takes its place. When count is a multiple of N+1,
    every Event gets all its revisions (the window drains at the end of the stream)."""
    rng = random.Random(sim.rng.random())
    objects = max(1, objects)

    def fast_uid():
        h = "%032x" % rng.getrandbits(128)
        return "%s-%s-4%s-%s-%s" % (h[:8], h[8:12], h[13:16], "89ab"[int(h[16], 16) & 3] + h[17:20], h[20:])

    def js(text):
        return go_json(text).decode("utf-8")

    refs = []
    for i in range(objects):
        ns = NAMESPACES[i % len(NAMESPACES)]
        app = APPS[ns][i % len(APPS[ns])]
        name = "%s-%s-%05d" % (app, hashlib.sha1(app.encode()).hexdigest()[:9], i)
        uid = fast_uid()
        ref = {"kind": "Pod", "namespace": ns, "name": name, "uid": uid, "apiVersion": "v1",
               "resourceVersion": str(rng.randint(1000000, 9999999)), "fieldPath": "spec.containers{app}"}
        refs.append((ns, name, uid, go_json(ref).decode("utf-8"), NODES[i % 3]))
    reasons = [
        ("BackOff", "Warning", "Back-off restarting failed container app in pod {name}_{ns}({uid})"),
        ("Unhealthy", "Warning", 'Readiness probe failed: Get "http://10.244.1.17:8080/ready": dial tcp '
                                 '10.244.1.17:8080: connect: connection refused'),
        ("Pulled", "Normal", 'Container image "registry.example.com/shop/app:3.1.0" already present on machine'),
        ("Killing", "Normal", "Stopping container app"),
        ("Failed", "Warning", "Error: ImagePullBackOff"),
    ]
    mf_template = ('"managedFields":[{"manager":"kubelet","operation":"Update","apiVersion":"v1","time":"%s",'
                   '"fieldsType":"FieldsV1","fieldsV1":{"f:count":{},"f:firstTimestamp":{},"f:involvedObject":{},'
                   '"f:lastTimestamp":{},"f:message":{},"f:reason":{},"f:reportingComponent":{},'
                   '"f:reportingInstance":{},"f:source":{"f:component":{},"f:host":{}},"f:type":{}}}]')
    template = ('{"type":"%s","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":"%s.%x",'
                '"namespace":"%s","uid":"%s","resourceVersion":"%d","creationTimestamp":"%s"%s},'
                '"involvedObject":%s,"reason":"%s","message":%s,"source":{"component":"kubelet","host":"%s"},'
                '"firstTimestamp":"%s","lastTimestamp":"%s","count":%d,"type":"%s","eventTime":null,'
                '"reportingComponent":"kubelet","reportingInstance":"%s"}}\n')
    offsets = array("Q")
    parts = []
    pos = 0
    recent = []
    t0 = time.time() - count / 1000.0
    last_second, stamp = None, ""
    messages = {}
    use_mf = sim.managed_fields

    def new_event(now, stamp):
        ri, mi = rng.randrange(objects), rng.randrange(len(reasons))
        ns, name, uid, ref_json, node = refs[ri]
        reason, etype, msg = reasons[mi]
        msg_json = messages.get((ri, mi))
        if msg_json is None:
            msg_json = messages[(ri, mi)] = js(msg.format(name=name, ns=ns, uid=uid))
        mf = "," + mf_template % stamp if use_mf and rng.random() < managed_fields_ratio else ""
        return [name, int(now * 1e9), ns, fast_uid(), stamp, mf, ref_json, reason,
                stamp, 1, etype, node, msg_json]

    window = []  # revisions > 0: [event, revisions still to come]
    pending = 0  # revisions > 0: sum of the window's revisions still to come
    for i in range(count):
        rv = base_rv + 1 + i
        now = t0 + i / 1000.0
        second = int(now)
        if second != last_second:
            last_second, stamp = second, rfc3339(second)
        if revisions > 0:
            left = count - i
            # A new Event while the window has room and the lines left can still hold all
            # its revisions (or nothing else is left to revise: a stream whose length is not
            # a multiple of N+1 ends with an incomplete Event).
            if not window or (len(window) < FAST_STREAM_REVISION_WINDOW and pending + revisions < left):
                ev = new_event(now, stamp)
                wtype = "ADDED"
                window.append([ev, revisions])
                pending += revisions
            else:
                k = rng.randrange(len(window))
                slot = window[k]
                ev = slot[0]
                ev[9] += 1
                ev[8] = stamp
                wtype = "MODIFIED"
                slot[1] -= 1
                pending -= 1
                if slot[1] == 0:
                    window[k] = window[-1]
                    window.pop()
        elif recent and rng.random() < 0.2:
            ev = recent[rng.randrange(len(recent))]
            ev[9] += 1
            ev[8] = stamp
            wtype = "MODIFIED"
        else:
            ev = new_event(now, stamp)
            wtype = "ADDED"
            recent.append(ev)
            if len(recent) > 256:
                recent.pop(0)
        line = (template % (wtype, ev[0], ev[1], ev[2], ev[3], rv, ev[4], ev[5], ev[6], ev[7], ev[12], ev[11],
                            ev[4], ev[8], ev[9], ev[10], ev[11])).encode("utf-8")
        offsets.append(pos)
        parts.append(line)
        pos += len(line)
    offsets.append(pos)
    return FastStream(b"".join(parts), offsets, base_rv, count)


# ---------------------------------------------------------------------------------------
# Faults.
# ---------------------------------------------------------------------------------------

FAULT_KINDS = ("drop_mid_line", "expire_watch", "stale_watch", "status_429", "status_500",
               "status_401", "expire_continue", "compact", "stall_watch", "poison_watch_line",
               "huge_watch_line",
               "review_error", "review_hang", "review_unauthorized", "clear")
REVIEW_FAULT_KINDS = ("review_error", "review_hang", "review_unauthorized")
# The "match" of a review fault: which review endpoints it hits.
REVIEW_MATCH = {
    "reviews": ("tokenreviews", "subjectaccessreviews"), "both": ("tokenreviews", "subjectaccessreviews"),
    "tokenreviews": ("tokenreviews",), "tokenreview": ("tokenreviews",),
    "subjectaccessreviews": ("subjectaccessreviews",), "subjectaccessreview": ("subjectaccessreviews",),
}


class Faults:
    """Armed faults; every method is thread-safe."""

    def __init__(self):
        self.lock = threading.Lock()
        self.drop = []          # [{"after": remaining lines before the cut, "every": N, "times": n}]
        self.expire = []        # [{"after": remaining lines, "times": n, "compact": bool}]
        self.stale = 0
        self.stall = []         # [{"times": n, "seconds": s}]
        self.statuses = []      # [{"code", "times", "match", "retry_after", "reason", "message"}]
        self.expire_continue = 0
        self.poison = []        # [{"in_list": bool}], one per change to poison
        self.huge = []          # [bytes], one per huge watch line still to send
        self.reviews = []       # [{"kind", "match": (resources), "times": n (None: until cleared), "seconds"}]
        self.fired = collections.Counter()

    def arm(self, spec):
        if not isinstance(spec, dict):
            raise ValueError("a fault spec must be an object")
        kind = (spec.get("kind") or "").replace("-", "_")    # review-error and review_error alike
        if kind in REVIEW_FAULT_KINDS:
            return self.arm_review(kind, spec)
        times = int(spec.get("times", 1))
        with self.lock:
            if kind == "drop_mid_line":
                n = int(spec.get("after_events", 0))
                self.drop.append({"after": n, "every": n, "times": times,
                                  "mode": spec.get("mode", "chunk")})
            elif kind == "expire_watch":
                self.expire.append({"after": int(spec.get("after_events", 0)), "times": times,
                                    "compact": bool(spec.get("compact", False)),
                                    "message": spec.get("message")})
            elif kind == "stale_watch":
                self.stale += times
            elif kind == "stall_watch":
                self.stall.append({"times": times, "seconds": float(spec.get("seconds", 30))})
            elif kind in ("status_429", "status_500", "status_401"):
                code = int(kind[-3:])
                self.statuses.append({"code": code, "times": times, "match": spec.get("match", "events"),
                                      "retry_after": int(spec.get("retry_after", 1))})
            elif kind == "expire_continue":
                self.expire_continue += times
            elif kind == "poison_watch_line":
                self.poison += [{"in_list": bool(spec.get("in_list", False))} for _ in range(times)]
            elif kind == "huge_watch_line":
                size = int(spec.get("bytes", 100_000_000))
                if size < 1024:
                    raise ValueError("huge_watch_line: bytes must be at least 1024")
                self.huge += [size] * times
            elif kind == "clear":
                self.drop, self.expire, self.stale, self.stall = [], [], 0, []
                self.statuses, self.expire_continue, self.poison, self.reviews = [], 0, [], []
                self.huge = []
            else:
                raise ValueError("unknown fault kind %r (known: %s)" % (kind, ", ".join(FAULT_KINDS)))

    def arm_review(self, kind, spec):
        """review_error / review_hang / review_unauthorized: "match" tokenreviews,
        subjectaccessreviews or reviews (both, the default); "times" N (default 1), or -1 /
        "forever" for until cleared; review_hang "seconds" (30)."""
        match = REVIEW_MATCH.get(spec.get("match", "reviews"))
        if match is None:
            raise ValueError("%s: match must be one of %s" % (kind, ", ".join(sorted(REVIEW_MATCH))))
        times = spec.get("times", 1)
        times = None if times == "forever" or int(times) < 0 else int(times)
        if times == 0:
            raise ValueError("%s: times must be positive, or -1 / \"forever\" for until cleared" % kind)
        seconds = float(spec.get("seconds", 30))
        with self.lock:
            self.reviews.append({"kind": kind, "match": match, "times": times, "seconds": seconds})

    def take_review(self, resource):
        """The first armed review fault that hits `resource` (tokenreviews or
        subjectaccessreviews), counted as fired, or None."""
        with self.lock:
            for r in self.reviews:
                if resource in r["match"]:
                    if r["times"] is not None:
                        r["times"] -= 1
                        if r["times"] <= 0:
                            self.reviews.remove(r)
                    self.fired[r["kind"]] += 1
                    return r
        return None

    def pending(self):
        with self.lock:
            return {"drop_mid_line": sum(d["times"] for d in self.drop),
                    "expire_watch": sum(e["times"] for e in self.expire),
                    "stale_watch": self.stale, "stall_watch": sum(s["times"] for s in self.stall),
                    "status": sum(s["times"] for s in self.statuses),
                    "expire_continue": self.expire_continue, "poison_watch_line": len(self.poison),
                    "huge_watch_line": len(self.huge),
                    "review_error": self._review_pending("review_error"),
                    "review_hang": self._review_pending("review_hang"),
                    "review_unauthorized": self._review_pending("review_unauthorized"),
                    "review_until_cleared": sum(1 for r in self.reviews if r["times"] is None)}

    def _review_pending(self, kind):
        return sum(r["times"] for r in self.reviews if r["kind"] == kind and r["times"] is not None)

    def take_status(self, category):
        """category: list | watch | get | discovery. Returns the armed status spec or None."""
        with self.lock:
            for s in self.statuses:
                m = s["match"]
                if (m == "any" or m == category or (m == "events" and category in ("list", "watch", "get"))):
                    s["times"] -= 1
                    if s["times"] <= 0:
                        self.statuses.remove(s)
                    self.fired["status_%d" % s["code"]] += 1
                    return s
        return None

    def take_stale(self):
        with self.lock:
            if self.stale > 0:
                self.stale -= 1
                self.fired["stale_watch"] += 1
                return True
        return False

    def take_stall(self):
        with self.lock:
            if self.stall:
                s = self.stall[0]
                s["times"] -= 1
                if s["times"] <= 0:
                    self.stall.pop(0)
                self.fired["stall_watch"] += 1
                return s["seconds"]
        return None

    def take_expire_continue(self):
        with self.lock:
            if self.expire_continue > 0:
                self.expire_continue -= 1
                self.fired["expire_continue"] += 1
                return True
        return False

    def take_poison(self):
        """Returns the spec of the next armed poison_watch_line ({"in_list": bool}) or None."""
        with self.lock:
            if self.poison:
                self.fired["poison_watch_line"] += 1
                return self.poison.pop(0)
        return None

    def take_huge(self):
        """Returns the size in bytes of the next armed huge_watch_line, or None."""
        with self.lock:
            if self.huge:
                self.fired["huge_watch_line"] += 1
                return self.huge.pop(0)
        return None

    def take_expire(self):
        """Returns the expire spec when an armed expire_watch is due now (its after_events
        count reached), else None."""
        with self.lock:
            for e in self.expire:
                if e["after"] <= 0:
                    e["times"] -= 1
                    if e["times"] <= 0:
                        self.expire.remove(e)
                    self.fired["expire_watch"] += 1
                    return e
        return None

    def has_expire_due(self):
        with self.lock:
            return any(e["after"] <= 0 for e in self.expire)

    def line_sent_hooks_armed(self):
        return bool(self.drop or self.expire)

    def before_line(self):
        """Called before a watch line is written. Returns a drop mode ("chunk"/"raw") when this
        line must be cut, or None; counts the line towards after_events otherwise."""
        with self.lock:
            for d in self.drop:
                if d["after"] <= 0:
                    d["times"] -= 1
                    if d["times"] <= 0:
                        self.drop.remove(d)
                    else:
                        d["after"] = d["every"]
                    self.fired["drop_mid_line"] += 1
                    return d["mode"]
            for d in self.drop:
                d["after"] -= 1
            for e in self.expire:
                e["after"] -= 1
        return None


# ---------------------------------------------------------------------------------------
# Delegated authentication and authorization: the API server's side of TokenReview and
# SubjectAccessReview, answered from a policy (tokens -> users, RBAC-style rules).
# ---------------------------------------------------------------------------------------

TOKENREVIEWS_PATH = "/apis/authentication.k8s.io/v1/tokenreviews"
SUBJECTACCESSREVIEWS_PATH = "/apis/authorization.k8s.io/v1/subjectaccessreviews"
REVIEW_KINDS = {"tokenreviews": ("TokenReview", "authentication.k8s.io/v1"),
                "subjectaccessreviews": ("SubjectAccessReview", "authorization.k8s.io/v1")}
AUTH_CONFIGMAP_PATH = "/api/v1/namespaces/kube-system/configmaps/extension-apiserver-authentication"
# What a TokenReview without spec.audiences reports: the API server's own audience.
API_AUDIENCES = ["https://kubernetes.default.svc.cluster.local"]
# Who the emulator's own bearer token (WORKDIR/token, the controller's) is in a TokenReview.
CONTROLLER_USER = {
    "username": "system:serviceaccount:kube-system:eventbuffer-controller",
    "uid": "4d6f6b65-0000-4000-8000-656d756c6174",
    "groups": ["system:serviceaccounts", "system:serviceaccounts:kube-system", "system:authenticated"],
}

# The bootstrap ClusterRoles and bindings every cluster has that a delegating server meets:
# (ClusterRole, groups bound to it, non-resource URLs it may get).
DEFAULT_GRANTS = [
    ("system:discovery", ["system:authenticated"],
     ["/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
      "/version", "/version/"]),
    ("system:public-info-viewer", ["system:authenticated", "system:unauthenticated"],
     ["/healthz", "/livez", "/readyz", "/version", "/version/"]),
]

_RULE_KEYS = {"name", "users", "groups", "verbs", "apiGroups", "resources", "namespaces", "resourceNames",
              "nonResourceURLs"}
_TOKEN_KEYS = {"user", "uid", "groups", "extra"}
_POLICY_KEYS = {"tokens", "rules", "defaults"}


def _string_list(value, what):
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ValueError("%s must be a list of strings" % what)
    return list(value)


class AuthRule:
    """One RBAC-style rule. Resource rules (resources + apiGroups) and non-resource rules
    (nonResourceURLs) are separate, as RBAC requires."""

    def __init__(self, spec, index):
        if not isinstance(spec, dict):
            raise ValueError("rules[%d] must be an object" % index)
        unknown = set(spec) - _RULE_KEYS
        if unknown:
            raise ValueError("rules[%d]: unknown field(s) %s (known: %s)"
                             % (index, ", ".join(sorted(unknown)), ", ".join(sorted(_RULE_KEYS))))
        where = "rules[%d]" % index
        self.index = index
        self.name = spec.get("name") or "rule %d" % index
        self.users = _string_list(spec.get("users"), where + ".users")
        self.groups = _string_list(spec.get("groups"), where + ".groups")
        self.verbs = _string_list(spec.get("verbs"), where + ".verbs")
        self.api_groups = _string_list(spec.get("apiGroups"), where + ".apiGroups")
        self.resources = _string_list(spec.get("resources"), where + ".resources")
        self.namespaces = _string_list(spec.get("namespaces"), where + ".namespaces")
        self.resource_names = _string_list(spec.get("resourceNames"), where + ".resourceNames")
        self.urls = _string_list(spec.get("nonResourceURLs"), where + ".nonResourceURLs")
        if not self.users and not self.groups:
            raise ValueError("%s: a rule needs users or groups" % where)
        if not self.verbs:
            raise ValueError("%s: verbs must not be empty" % where)
        if self.urls and (self.resources or self.api_groups or self.namespaces or self.resource_names):
            raise ValueError("%s: a rule applies either to resources or to nonResourceURLs, not both" % where)
        if not self.urls and not self.resources:
            raise ValueError("%s: a rule needs resources (with apiGroups) or nonResourceURLs" % where)
        if self.resources and not self.api_groups:
            raise ValueError('%s: resource rules need apiGroups ("" is the core group, "*" all)' % where)

    def subject(self, user, groups):
        """The subject this rule matches the request by ("User \"x\"" / "Group \"g\""), or None."""
        if user and user in self.users:
            return 'User "%s"' % user
        for g in groups:
            if g in self.groups:
                return 'Group "%s"' % g
        return None

    def allows_resource(self, ra):
        if not self.resources or not self._verb(ra.get("verb", "")):
            return False
        if "*" not in self.api_groups and ra.get("group", "") not in self.api_groups:
            return False
        resource, sub = ra.get("resource", ""), ra.get("subresource", "")
        combined = resource + "/" + sub if sub else resource
        if not any(r == "*" or r == combined or (sub and r == "*/" + sub) for r in self.resources):
            return False
        if self.resource_names and ra.get("name", "") not in self.resource_names:
            return False
        # namespaces empty or "*": every namespace and the cluster scope (namespace ""), as a
        # ClusterRoleBinding grants; a list: only those namespaces, as RoleBindings grant.
        if self.namespaces and "*" not in self.namespaces:
            return ra.get("namespace", "") in self.namespaces
        return True

    def allows_non_resource(self, nra):
        if not self.urls or not self._verb(nra.get("verb", "")):
            return False
        path = nra.get("path", "")
        return any(u == "*" or u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in self.urls)

    def _verb(self, verb):
        return "*" in self.verbs or verb in self.verbs


class AuthPolicy:
    """Tokens and rules the review endpoints answer from. Immutable once built: replacing the
    policy swaps the whole object, so readers need no lock."""

    def __init__(self, data=None):
        data = {} if data is None else data
        if not isinstance(data, dict):
            raise ValueError("the auth policy must be an object")
        unknown = set(data) - _POLICY_KEYS
        if unknown:
            raise ValueError("auth policy: unknown field(s) %s (known: %s)"
                             % (", ".join(sorted(unknown)), ", ".join(sorted(_POLICY_KEYS))))
        self.source = data
        self.defaults = data.get("defaults", True)
        if not isinstance(self.defaults, bool):
            raise ValueError("defaults must be true or false")
        tokens = data.get("tokens") or {}
        if not isinstance(tokens, dict):
            raise ValueError("tokens must be an object: token -> user")
        self.tokens = {}
        for token, info in tokens.items():
            self.tokens[token] = self._user_info(token, info)
        rules = data.get("rules") or []
        if not isinstance(rules, list):
            raise ValueError("rules must be a list")
        self.rules = [AuthRule(r, i) for i, r in enumerate(rules)]

    @staticmethod
    def _user_info(token, info):
        where = "tokens[%s...]" % token[:6]
        if not token:
            raise ValueError("tokens: the empty token is not a token")
        if not isinstance(info, dict) or not isinstance(info.get("user"), str) or not info["user"]:
            raise ValueError("%s: needs a user name (\"user\")" % where)
        unknown = set(info) - _TOKEN_KEYS
        if unknown:
            raise ValueError("%s: unknown field(s) %s" % (where, ", ".join(sorted(unknown))))
        user = {"username": info["user"]}
        if info.get("uid"):
            user["uid"] = str(info["uid"])
        groups = _string_list(info.get("groups"), where + ".groups")
        if "system:authenticated" not in groups:
            groups.append("system:authenticated")   # the API server adds it to every authenticated user
        user["groups"] = groups
        extra = info.get("extra") or {}
        if not isinstance(extra, dict):
            raise ValueError("%s.extra must be an object: key -> list of strings" % where)
        if extra:
            user["extra"] = {k: [v] if isinstance(v, str) else _string_list(v, where + ".extra." + k)
                             for k, v in extra.items()}
        return user

    def authenticate(self, token):
        """The UserInfo (TokenReview status.user) for a token of the policy, or None."""
        return self.tokens.get(token)

    def authorize(self, spec):
        """(allowed, reason) for a SubjectAccessReview spec, with RBAC semantics."""
        user = spec.get("user") or ""
        groups = spec.get("groups") or []
        ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
        for rule in self.rules:
            subject = rule.subject(user, groups)
            if subject and (rule.allows_resource(ra) if ra is not None else rule.allows_non_resource(nra)):
                return True, 'RBAC: allowed by emulator policy rule %d "%s" to %s' % (rule.index, rule.name,
                                                                                     subject)
        if self.defaults and nra is not None and nra.get("verb") == "get":
            path = nra.get("path", "")
            for role, role_groups, urls in DEFAULT_GRANTS:
                hit = next((g for g in groups if g in role_groups), None)
                if hit and any(u == path or (u.endswith("*") and path.startswith(u[:-1])) for u in urls):
                    return True, ('RBAC: allowed by ClusterRoleBinding "%s" of ClusterRole "%s" to Group "%s"'
                                  % (role, role, hit))
        what = ("%s %s" % (nra.get("verb", ""), nra.get("path", "")) if ra is None else
                "%s %s%s%s%s" % (ra.get("verb", ""), ra.get("resource", ""),
                                 "/" + ra["subresource"] if ra.get("subresource") else "",
                                 "." + ra["group"] if ra.get("group") else "",
                                 " in namespace " + ra["namespace"] if ra.get("namespace") else " (cluster scope)"))
        return False, 'no emulator policy rule allows user "%s" (groups %s) to %s' % (user, json.dumps(groups), what)


def parse_auth_policy(text, source="auth policy"):
    """An AuthPolicy from JSON text (YAML too when PyYAML is importable). Raises ValueError."""
    try:
        data = json.loads(text)
    except ValueError as json_error:
        try:
            import yaml
        except ImportError:
            raise ValueError("%s: not JSON (%s); YAML needs python3-yaml" % (source, json_error))
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise ValueError("%s: neither JSON nor YAML: %s" % (source, e))
    return AuthPolicy(data)


def validate_sar_spec(spec):
    """The API server's validation of a SubjectAccessReview spec: a list of (field, message)."""
    errs = []
    if not isinstance(spec, dict):
        return [("spec", "must be an object")]
    ra, nra = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (ra is None) == (nra is None):
        errs.append(("spec.resourceAttributes",
                     "exactly one of nonResourceAttributes or resourceAttributes must be specified"))
    for field, value in (("spec.resourceAttributes", ra), ("spec.nonResourceAttributes", nra)):
        if value is not None and (not isinstance(value, dict) or
                                  not all(isinstance(v, str) for k, v in value.items()
                                          if k not in ("fieldSelector", "labelSelector"))):
            errs.append((field, "must be an object of strings"))
    if not spec.get("user") and not spec.get("groups"):
        errs.append(("spec.user", "at least one of user or group must be specified"))
    if spec.get("groups") is not None and not (isinstance(spec["groups"], list) and
                                               all(isinstance(g, str) for g in spec["groups"])):
        errs.append(("spec.groups", "must be a list of strings"))
    return errs


class ReviewLog:
    """Counts of answered reviews and the last review requests as received; thread-safe."""

    def __init__(self, keep=500):
        self.lock = threading.Lock()
        self.counts = collections.Counter()
        self.log = collections.deque(maxlen=keep)
        self.seq = 0                # sequence number of the last logged review (never reset)
        self.held_now = 0           # requests a review_hang holds right now

    def record(self, resource, spec, outcome, result=None, held=None):
        """resource: tokenreviews | subjectaccessreviews; outcome: answered, invalid, error,
        unauthorized, caller_unauthorized, status_fault, client_closed."""
        with self.lock:
            self.seq += 1
            self.counts["%s_requests" % resource] += 1
            self.counts["%s_%s" % (resource, outcome)] += 1
            if outcome == "answered":
                self.counts[resource] += 1
            entry = {"seq": self.seq, "time": time.time(), "resource": resource,
                     "kind": REVIEW_KINDS[resource][0], "spec": spec, "outcome": outcome}
            if result is not None:
                entry["status"] = result
            if held is not None:
                entry["held_seconds"] = round(held, 3)
            self.log.append(entry)

    def holding(self, delta):
        with self.lock:
            self.held_now += delta

    def snapshot(self, last=100, since=0):
        with self.lock:
            out = {"tokenreviews": self.counts.get("tokenreviews", 0),
                   "subjectaccessreviews": self.counts.get("subjectaccessreviews", 0),
                   "holding": self.held_now, "counts": dict(self.counts), "seq": self.seq}
            entries = [dict(e) for e in self.log if e["seq"] > since]
        out["reviews"] = entries[-last:] if last > 0 else []
        return out

    def reset(self):
        with self.lock:
            self.counts.clear()
            self.log.clear()


def make_auth_certificates(workdir):
    """The front-proxy CA and its client certificate, and a user client certificate signed by
    the emulator's CA (ca.crt must exist). EC P-256, one openssl run each."""
    def make(name, subject, exts, ca=None):
        cmd = ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
               "-keyout", name + ".key", "-out", name + ".crt", "-days", "30", "-subj", subject]
        if ca:
            cmd += ["-CA", ca + ".crt", "-CAkey", ca + ".key"]
        for e in exts:
            cmd += ["-addext", e]
        run(cmd, workdir)
        os.chmod(os.path.join(workdir, name + ".key"), 0o600)
    client = ["basicConstraints=critical,CA:FALSE", "keyUsage=critical,digitalSignature",
              "extendedKeyUsage=clientAuth"]
    make("front-proxy-ca", "/CN=keb-emulator-front-proxy-ca",
         ["basicConstraints=critical,CA:TRUE", "keyUsage=critical,keyCertSign,cRLSign"])
    make("front-proxy-client", "/CN=front-proxy-client", client, ca="front-proxy-ca")
    make("client-alice", "/O=team-a/CN=alice", client, ca="ca")


def auth_configmap_data(workdir):
    """The data of kube-system/extension-apiserver-authentication as kube-apiserver writes it."""
    def read(name):
        with open(os.path.join(workdir, name)) as f:
            return f.read()
    return {
        "client-ca-file": read("ca.crt"),
        "requestheader-allowed-names": '["front-proxy-client"]',
        "requestheader-client-ca-file": read("front-proxy-ca.crt"),
        "requestheader-extra-headers-prefix": '["X-Remote-Extra-"]',
        "requestheader-group-headers": '["X-Remote-Group"]',
        "requestheader-username-headers": '["X-Remote-User"]',
    }


# ---------------------------------------------------------------------------------------
# Table output (for kubectl's `Accept: application/json;as=Table;...`).
# ---------------------------------------------------------------------------------------

TABLE_COLUMNS = [
    ("Last Seen", "string", 0, "Time when this Event was last observed."),
    ("Type", "string", 0, "Type of this event (Normal, Warning), new types could be added in the future"),
    ("Reason", "string", 0, "This should be a short, machine understandable string that gives the reason for the "
                            "transition into the object's current status."),
    ("Object", "string", 0, "The object that this event is about."),
    ("Subobject", "string", 1, "FieldPath of the object that this event is about."),
    ("Source", "string", 1, "The component reporting this event. Should be a short machine understandable string."),
    ("Message", "string", 0, "A human-readable description of the status of this operation."),
    ("First Seen", "string", 1, "The time at which the event was first recorded. (Time of server receipt is in "
                                "TypeMeta.)"),
    ("Count", "string", 1, "The number of times this event has occurred."),
    ("Name", "string", 1, "Name must be unique within a namespace."),
]


def human_duration(seconds):
    s = int(seconds)
    if s < 0:
        return "0s"
    if s < 120:
        return "%ds" % s
    m = s // 60
    if m < 10:
        return "%dm%ds" % (m, s % 60) if s % 60 else "%dm" % m
    if m < 180:
        return "%dm" % m
    h = m // 60
    if h < 48:
        return "%dh" % h
    return "%dd" % (h // 24)


def _parse_time(value):
    if not value:
        return None
    try:
        return time.mktime(time.strptime(value[:19], "%Y-%m-%dT%H:%M:%S")) - time.timezone
    except ValueError:
        return None


def table_row(obj, include_object):
    now = time.time()
    last = _parse_time(obj.get("lastTimestamp")) or _parse_time(
        (obj.get("series") or {}).get("lastObservedTime")) or _parse_time(obj.get("eventTime"))
    first = _parse_time(obj.get("firstTimestamp")) or _parse_time(obj.get("eventTime"))
    inv = obj.get("involvedObject", {})
    src = obj.get("source", {})
    source = ", ".join(x for x in (src.get("component") or obj.get("reportingComponent", ""),
                                   src.get("host", "")) if x)
    cells = [human_duration(now - last) if last else "<unknown>", obj.get("type", ""), obj.get("reason", ""),
             "%s/%s" % (inv.get("kind", "").lower(), inv.get("name", "")), inv.get("fieldPath", ""),
             source, obj.get("message", "").strip(), human_duration(now - first) if first else "<unknown>",
             obj.get("count", 1), obj["metadata"]["name"]]
    row = {"cells": cells}
    if include_object == "Object":
        full = {"kind": "Event", "apiVersion": "v1"}
        full.update(obj)
        row["object"] = full
    elif include_object != "None":
        md = {k: v for k, v in obj["metadata"].items() if k != "managedFields"}
        row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": md}
    return row


def table_object(objs, rv, cont, include_object, api_version, columns=True):
    t = {"kind": "Table", "apiVersion": api_version, "metadata": {"resourceVersion": str(rv)}}
    if cont:
        t["metadata"]["continue"] = cont
    t["columnDefinitions"] = [{"name": n, "type": ty, "format": "name" if n == "Name" else "",
                               "description": d, "priority": p} for n, ty, p, d in TABLE_COLUMNS] if columns else []
    t["rows"] = [table_row(o, include_object) for o in objs]
    return t


def wants_table(accept):
    """Returns the Table apiVersion the client accepts first, or None."""
    for part in (accept or "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return "meta.k8s.io/" + params.get("v", "v1")
        if part.split(";")[0].strip() in ("application/json", "*/*", "application/*"):
            if not params:
                return None
    return None


# ---------------------------------------------------------------------------------------
# HTTP.
# ---------------------------------------------------------------------------------------

API_RESOURCES = {
    "kind": "APIResourceList", "groupVersion": "v1",
    "resources": [{"name": "events", "singularName": "event", "namespaced": True, "kind": "Event",
                   "verbs": ["create", "delete", "deletecollection", "get", "list", "patch", "update", "watch"],
                   "shortNames": ["ev"], "storageVersionHash": "r2yiGXH7wu8="}],
}


class DropConnection(Exception):
    pass


def parse_field_selector(text):
    out = []
    for term in filter(None, (text or "").split(",")):
        neg = "!=" in term
        path, _, value = term.partition("!=" if neg else ("==" if "==" in term else "="))
        out.append((path.strip().split("."), value.strip(), neg))
    return out


def matches_selector(obj, selector):
    for path, value, neg in selector:
        cur = obj
        for p in path:
            cur = cur.get(p, "") if isinstance(cur, dict) else ""
        if (str(cur) == value) == neg:
            return False
    return True


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "keb-emulator"
    sys_version = ""
    timeout = 600

    # -- plumbing -----------------------------------------------------------------------
    def log_message(self, fmt, *args):
        if self.server.emu.verbose:
            sys.stderr.write("emulator: %s %s\n" % (self.address_string(), fmt % args))

    @property
    def emu(self):
        return self.server.emu

    def send_bytes(self, code, body, content_type="application/json", headers=None):
        self.emu.count_status(code, self.category)
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, code, obj, headers=None):
        self.send_bytes(code, go_json(obj) + b"\n", headers=headers)

    def send_status(self, code, reason, message, details=None, headers=None):
        self.send_json(code, status_object(code, reason, message, details), headers)

    def do_GET(self):
        self.dispatch("GET")

    def do_POST(self):
        self.dispatch("POST")

    def do_PUT(self):
        self.dispatch("PUT")

    def do_DELETE(self):
        self.dispatch("DELETE")

    def read_body(self):
        n = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(n) if n else b""

    def dispatch(self, method):
        self.category = "other"
        url = urlsplit(self.path)
        path = url.path.rstrip("/") or "/"
        query = {k: v[-1] for k, v in parse_qs(url.query, keep_blank_values=True).items()}
        try:
            if path.startswith("/_emulator/"):
                self.category = "control"
                self.emu.count_request("control")
                body = self.read_body()
                return self.control(method, path, query, body)
            self.body = self.read_body()
            if path in ("/healthz", "/livez", "/readyz"):
                self.emu.count_request("health")
                return self.send_bytes(200, b"ok", "text/plain; charset=utf-8")
            if self.emu.ssl_ctx is not None and not isinstance(self.connection, ssl.SSLSocket):
                self.close_connection = True
                return self.send_bytes(400, b"Client sent an HTTP request to an HTTPS server.\n",
                                       "text/plain; charset=utf-8")
            self.api(method, path, query)
        except (OSError, ssl.SSLError, DropConnection):
            self.close_connection = True          # the client went away, or a fault cut it
        except Exception:                         # an emulator bug: say so loudly, keep serving
            self.close_connection = True
            sys.stderr.write("emulator: internal error on %s %s\n%s" % (method, self.path, traceback.format_exc()))

    # -- the Kubernetes API -------------------------------------------------------------
    def api(self, method, path, query):
        parts = path.strip("/").split("/")
        if parts[:3] == ["api", "v1", "watch"]:
            # The deprecated watch paths: /api/v1/watch/events, /api/v1/watch/namespaces/NS/events.
            parts = parts[:2] + parts[3:]
            path = "/" + "/".join(parts)
            query = dict(query, watch="true")
        namespace = None
        name = None
        if path in ("/api", "/apis", "/api/v1", "/version"):
            self.category = "discovery"
        elif parts[:3] == ["api", "v1", "events"] and len(parts) == 3:
            self.category = "list"
        elif parts[:3] == ["api", "v1", "namespaces"] and len(parts) >= 5 and parts[4] == "events" and len(parts) <= 6:
            namespace = parts[3]
            name = parts[5] if len(parts) == 6 else None
            self.category = "get" if name else "list"
        elif path in (TOKENREVIEWS_PATH, SUBJECTACCESSREVIEWS_PATH):
            self.category = "review"
        elif parts[:5] == ["api", "v1", "namespaces", "kube-system", "configmaps"] and len(parts) == 6:
            self.category = "configmap"
        if self.category == "list" and query.get("watch") in ("1", "true", "True"):
            self.category = "watch"
        self.emu.count_request(self.category)
        if path == "/version":
            return self.send_json(200, EMULATED_VERSION)
        if self.category == "review":
            return self.review(method, path)
        if not self.emu.authorized(self.headers.get("Authorization", "")):
            return self.send_status(401, "Unauthorized", "Unauthorized")
        fault = self.emu.faults.take_status(self.category)
        if fault is not None:
            return self.fault_status(fault)
        if self.category == "other":
            return self.send_status(404, "NotFound", "the server could not find the requested resource",
                                    {"causes": [{"reason": "UnexpectedServerResponse", "message": "404 page not found"}]})
        if method != "GET":
            return self.send_status(405, "MethodNotAllowed", "the server does not allow this method on the "
                                                              "requested resource")
        if path == "/api":
            return self.send_json(200, {"kind": "APIVersions", "versions": ["v1"],
                                        "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0",
                                                                        "serverAddress": self.emu.address}]})
        if path == "/apis":
            return self.send_json(200, {"kind": "APIGroupList", "apiVersion": "v1", "groups": []})
        if path == "/api/v1":
            return self.send_json(200, API_RESOURCES)
        if self.category == "configmap":
            return self.get_configmap(parts[5])
        table = wants_table(self.headers.get("Accept"))
        if self.category == "get":
            return self.get_one(namespace, name, table, query)
        if self.category == "watch":
            return self.watch(namespace, query, table)
        return self.list(namespace, query, table)

    def fault_status(self, fault):
        code = fault["code"]
        if code == 429:
            ra = fault["retry_after"]
            return self.send_status(429, "TooManyRequests", "Too many requests, please try again later.",
                                    {"causes": [{"reason": "UnexpectedServerResponse",
                                                 "message": "Too many requests, please try again later."}],
                                     "retryAfterSeconds": ra}, headers={"Retry-After": str(ra)})
        if code == 401:
            return self.send_status(401, "Unauthorized", "Unauthorized")
        return self.send_status(500, "InternalError", "Internal error occurred: etcdserver: request timed out",
                                {"causes": [{"message": "etcdserver: request timed out"}]})

    # -- delegated authentication and authorization -------------------------------------
    def review(self, method, path):
        """POST tokenreviews / subjectaccessreviews. The caller authenticates with the
        emulator's bearer token; its own RBAC is not checked (any authenticated caller may
        create reviews)."""
        emu = self.emu
        resource = "tokenreviews" if path == TOKENREVIEWS_PATH else "subjectaccessreviews"
        kind, api_version = REVIEW_KINDS[resource]
        if not emu.authorized(self.headers.get("Authorization", "")):
            emu.reviews.record(resource, None, "caller_unauthorized")
            return self.send_status(401, "Unauthorized", "Unauthorized")
        fault = emu.faults.take_status("review")
        if fault is not None:
            emu.reviews.record(resource, None, "status_fault")
            return self.fault_status(fault)
        if method != "POST":
            return self.send_status(405, "MethodNotAllowed",
                                    "the server does not allow this method on the requested resource")
        ctype = (self.headers.get("Content-Type") or "application/json").split(";")[0].strip().lower()
        if ctype not in ("application/json", "*/*"):
            emu.reviews.record(resource, None, "invalid")
            return self.send_status(415, "UnsupportedMediaType",
                                    'the body of the request was in an unknown format - accepted media types '
                                    'include: application/json', {})
        try:
            body = json.loads(self.body or b"{}")
            if not isinstance(body, dict):
                raise ValueError("not an object")
        except ValueError as e:
            emu.reviews.record(resource, None, "invalid")
            return self.send_status(400, "BadRequest", "the body of the request could not be decoded: %s" % e)
        if body.get("kind", kind) != kind or body.get("apiVersion", api_version) != api_version:
            emu.reviews.record(resource, body.get("spec"), "invalid")
            return self.send_status(400, "BadRequest", "the API version in the data (%s) does not match the "
                                    "expected API version (%s)" % (body.get("apiVersion"), api_version))
        spec = body.get("spec")
        if spec is None:
            spec = {}
        review_fault = emu.faults.take_review(resource)
        held = None
        if review_fault is not None:
            if review_fault["kind"] == "review_unauthorized":
                emu.reviews.record(resource, spec, "unauthorized")
                return self.send_status(401, "Unauthorized", "Unauthorized")
            if review_fault["kind"] == "review_error":
                emu.reviews.record(resource, spec, "error")
                return self.send_status(500, "InternalError", "Internal error occurred: %s review failed "
                                        "(emulator fault review_error)" % kind,
                                        {"causes": [{"message": "emulator fault review_error"}]})
            started = time.time()
            answered = self.hold(review_fault["seconds"])
            held = time.time() - started
            if not answered:
                emu.reviews.record(resource, spec, "client_closed", held=held)
                self.close_connection = True
                return None
        if resource == "tokenreviews":
            token = spec.get("token") if isinstance(spec, dict) else None
            if not isinstance(token, str) or not token:
                emu.reviews.record(resource, spec, "invalid", held=held)
                return self.send_status(400, "BadRequest", "token is required for TokenReview in authentication")
            status = emu.token_review(token, spec.get("audiences"))
        else:
            errs = validate_sar_spec(spec)
            if errs:
                emu.reviews.record(resource, spec, "invalid", held=held)
                message = "%s.authorization.k8s.io \"\" is invalid: %s" % (
                    kind, ", ".join("%s: Invalid value: %s" % (f, m) for f, m in errs))
                return self.send_status(422, "Invalid", message, {
                    "group": "authorization.k8s.io", "kind": kind,
                    "causes": [{"reason": "FieldValueInvalid", "message": "Invalid value: " + m, "field": f}
                               for f, m in errs]})
            allowed, reason = emu.policy.authorize(spec)
            status = {"allowed": allowed}
            if reason:
                status["reason"] = reason
        emu.reviews.record(resource, spec, "answered", status, held=held)
        # The API server answers a create with 201 and the object with its status filled in.
        return self.send_json(201, {"kind": kind, "apiVersion": api_version, "metadata": {"creationTimestamp": None},
                                    "spec": spec, "status": status})

    def hold(self, seconds):
        """Holds the request for up to `seconds` without answering. Returns False when the
        client closed the connection first (or the emulator is stopping), True after the time."""
        emu = self.emu
        end = time.time() + seconds
        poller = select.poll()
        poller.register(self.connection.fileno(), select.POLLRDHUP | select.POLLHUP | select.POLLERR)
        emu.reviews.holding(1)
        try:
            while not emu.stop_event.is_set():
                left = end - time.time()
                if left <= 0:
                    return True
                if poller.poll(max(1, int(min(left, 0.2) * 1000))):
                    return False
            return False
        finally:
            emu.reviews.holding(-1)

    def get_configmap(self, name):
        cm = self.emu.auth_configmap() if name == "extension-apiserver-authentication" else None
        if cm is None:
            return self.send_status(404, "NotFound", 'configmaps "%s" not found' % name,
                                    {"name": name, "kind": "configmaps"})
        return self.send_json(200, cm)

    def get_one(self, namespace, name, table, query):
        store = self.emu.store
        with store.cond:
            live = store.live.get((namespace, name))
            rv = store.rv
        if live is None:
            return self.send_status(404, "NotFound", 'events "%s" not found' % name,
                                    {"name": name, "kind": "events"})
        if table:
            return self.send_json(200, table_object([live.obj], rv, "", query.get("includeObject", "Metadata"), table))
        return self.send_bytes(200, live.full + b"\n")

    def list(self, namespace, query, table):
        store = self.emu.store
        limit = int(query.get("limit") or 0)
        cont = query.get("continue", "")
        selector = parse_field_selector(query.get("fieldSelector"))
        if cont:
            try:
                tok = json.loads(base64.urlsafe_b64decode(cont + "=" * (-len(cont) % 4)))
                snap_rv, start = int(tok["rv"]), tok["start"]
            except (ValueError, KeyError, TypeError):
                return self.send_status(400, "BadRequest", "continue key is not valid: incorrect encoded start "
                                                           "resourceVersion (version meta.k8s.io/v1)")
            with store.cond:
                snap = store.snapshots.get((snap_rv, namespace, query.get("fieldSelector", "")))
                expired = snap is None or snap_rv < store.floor or self.emu.faults.take_expire_continue()
            if expired:
                return self.send_status(
                    410, "Expired",
                    "The provided continue parameter is too old to display a consistent list result. You can "
                    "start a new list without the continue parameter, or use the continue token in this response "
                    "to retrieve the remainder of the results. Continuing with the provided token results in an "
                    "inconsistent list - objects that were created, modified, or deleted between the time the "
                    "first chunk was returned and now may show up in the list.")
            keys, items = snap
            index = bisect.bisect_left(keys, start)
            rv = snap_rv
        else:
            self.emu.count_request("list_first")
            if not limit:
                self.emu.count_request("list_unpaged")
            with store.cond:
                rv = store.rv
                if store.stream is not None and namespace is None:
                    # fast-stream: the list answers at the stream's start, so that a list+watch
                    # client receives the whole pre-built stream on its watch.
                    rv = store.stream.base
                key_tuples, lives = store.sorted_live(namespace)
                keys = ["%s/%s" % k for k in key_tuples]
                items = lives
                if selector:
                    pairs = [(k, lv) for k, lv in zip(keys, lives) if matches_selector(lv.obj, selector)]
                    keys, items = [p[0] for p in pairs], [p[1] for p in pairs]
                if limit and len(items) > limit:
                    store.snapshots[(rv, namespace, query.get("fieldSelector", ""))] = (keys, items)
                    while len(store.snapshots) > 64:
                        store.snapshots.popitem(last=False)
            index = 0
        end = index + limit if limit else len(items)
        page = items[index:end]
        next_token = ""
        md = {"resourceVersion": str(rv)}
        if end < len(items):
            next_token = base64.urlsafe_b64encode(go_json({"v": "meta.k8s.io/v1", "rv": rv,
                                                           "start": keys[end - 1] + "\u0000"})).decode().rstrip("=")
            md["continue"] = next_token
            md["remainingItemCount"] = len(items) - end
        if table:
            return self.send_json(200, table_object([lv.obj for lv in page], rv, next_token,
                                                    query.get("includeObject", "Metadata"), table))
        head = b'{"kind":"EventList","apiVersion":"v1","metadata":' + go_json(md) + b',"items":['
        body = head + b",".join(lv.body for lv in page) + b"]}\n"
        self.send_bytes(200, body)

    # -- watch --------------------------------------------------------------------------
    def start_chunked(self):
        self.emu.count_status(200, "watch")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.send_header("Cache-Control", "no-cache, private")
        self.send_header("Audit-Id", str(uuid.uuid4()))
        self.end_headers()
        self.wfile.flush()

    def write_chunks(self, lines):
        if lines:
            self.wfile.write(b"".join(b"%x\r\n%s\r\n" % (len(x), x) for x in lines))

    def end_chunked(self):
        self.wfile.write(b"0\r\n\r\n")

    def drop_now(self, line, mode):
        """Cuts the connection in the middle of `line`."""
        half = line[: max(1, len(line) // 2)]
        try:
            if mode == "raw":
                # The chunk header announces the whole line; only half of it arrives.
                self.wfile.write(b"%x\r\n%s" % (len(line), half))
            else:
                # A complete chunk that holds half a JSON line, then the connection dies.
                self.wfile.write(b"%x\r\n%s\r\n" % (len(half), half))
            self.wfile.flush()
        finally:
            try:
                raw = self.connection
                raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
                raw.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        raise DropConnection()

    def send_lines(self, entries, table, watch_info):
        """entries: [(watch type, full object bytes)]. Applies the per-line fault hooks: may cut
        the connection (raises DropConnection). Returns an expire_watch spec when one became due
        (the caller then ends the watch with ERROR 410), else None."""
        faults = self.emu.faults
        out = []
        for wtype, full in entries:
            if isinstance(wtype, bytes):
                wtype = wtype.decode()
            if table:
                obj = json.loads(full)
                line = go_json({"type": wtype, "object": table_object([obj], obj["metadata"]["resourceVersion"], "",
                                                                      self.include_object, table)}) + b"\n"
            else:
                line = b'{"type":"%s","object":%s}\n' % (wtype.encode(), full)
            if faults.huge and wtype != "BOOKMARK":
                size = faults.take_huge()
                if size is not None:
                    self.write_chunks(out)
                    out = []
                    self.send_huge_line(full, size)
                    watch_info["lines"] += 1
            if faults.drop or faults.expire:
                spec = faults.take_expire() if faults.has_expire_due() else None
                if spec is not None:
                    self.write_chunks(out)
                    return spec
                mode = faults.before_line()
                if mode:
                    self.write_chunks(out)
                    watch_info["outcome"] = "dropped"
                    self.drop_now(line, mode)
            out.append(line)
            watch_info["lines"] += 1
        self.write_chunks(out)
        return None

    def send_huge_line(self, next_full, size):
        """Writes one watch line of exactly `size` bytes before the line of `next_full`: an
        ADDED Event whose message is `size` - overhead bytes of "x", streamed in 1 MiB chunks
        (never built whole). Its resourceVersion is one below the next line's, a version the
        client already has, so a client that skips the line and resumes from it loses
        nothing."""
        m = re.search(rb'"resourceVersion":"(\d+)"', next_full)
        rv = max(1, int(m.group(1)) - 1) if m else 1
        head = (b'{"type":"ADDED","object":{"kind":"Event","apiVersion":"v1","metadata":{"name":'
                b'"huge-watch-line.%x","namespace":"default","uid":"%s","resourceVersion":"%d"},'
                b'"involvedObject":{"kind":"Pod","namespace":"default","name":"huge"},'
                b'"reason":"Huge","message":"' % (random.getrandbits(48), str(uuid.uuid4()).encode(), rv))
        tail = b'","type":"Warning","count":1}}'
        left = max(0, size - len(head) - len(tail))
        self.write_chunks([head])
        piece = b"x" * (1 << 20)
        while left > 0:
            n = min(left, len(piece))
            self.write_chunks([piece[:n]] if n < len(piece) else [piece])
            left -= n
        self.write_chunks([tail + b"\n"])
        self.wfile.flush()

    def send_error_410(self, rv, oldest, watch_info, message=None):
        obj = status_object(410, "Expired", message or "too old resource version: %d (%d)" % (rv, oldest))
        watch_info["outcome"] = "expired"
        self.write_chunks([b'{"type":"ERROR","object":' + go_json(obj) + b"}\n"])
        self.end_chunked()

    def expire_with(self, spec, pos, info):
        if spec.get("compact"):
            self.emu.store.compact(0)
        self.send_error_410(pos, max(pos + 1, self.emu.store.floor), info, spec.get("message"))

    def watch(self, namespace, query, table):
        emu = self.emu
        faults = emu.faults
        self.include_object = query.get("includeObject", "Metadata")
        rv_param = query.get("resourceVersion", "")
        bookmarks = query.get("allowWatchBookmarks") in ("true", "1", "True") and not table
        try:
            timeout = float(query.get("timeoutSeconds") or 0)
        except ValueError:
            return self.send_status(400, "BadRequest", "invalid timeoutSeconds")
        if timeout <= 0:
            timeout = 1800 * (1 + random.random())
        selector = parse_field_selector(query.get("fieldSelector"))
        if rv_param not in ("", "0"):
            try:
                int(rv_param)
            except ValueError:
                return self.send_status(400, "BadRequest", 'resourceVersion: Invalid value: "%s": must be an integer'
                                        % rv_param)
        # Every key is there from the start: stats() copies this dict while the watch runs.
        info = {"resourceVersion": rv_param, "namespace": namespace or "", "start": time.time(), "end": None,
                "lines": 0, "outcome": "open", "bookmarks": 0}
        emu.watch_started(info)
        try:
            self.start_chunked()
            if faults.take_stale():
                info["outcome"] = "stale"
                self.end_chunked()
                return
            stall = faults.take_stall()
            if stall is not None:
                info["outcome"] = "stalled"
                end = time.time() + min(stall, timeout)
                while time.time() < end and not emu.store.closed:
                    time.sleep(0.1)
                self.end_chunked()
                return
            self.watch_loop(namespace, rv_param, bookmarks, timeout, table, selector, info)
        finally:
            info["end"] = time.time()
            emu.watch_ended(info)

    def watch_loop(self, namespace, rv_param, bookmarks, timeout, table, selector, info):
        emu = self.emu
        store = emu.store
        faults = emu.faults
        deadline = time.time() + timeout
        initial = []
        stream = store.stream
        stream_from = None
        with store.cond:
            if rv_param in ("", "0"):
                # No resourceVersion: the current state as synthetic ADDED events, then changes.
                pos = store.rv
                _, lives = store.sorted_live(namespace)
                initial = [("ADDED", lv.full) for lv in lives]
                if stream is not None and namespace is None:
                    stream_from = stream.base
            else:
                pos = int(rv_param)
                if stream is not None and namespace is None and stream.base <= pos < stream.end:
                    stream_from = pos
                    pos = stream.end
                elif pos < store.floor:
                    floor = store.floor
                    self.send_error_410(pos, floor, info)
                    return
        if stream_from is not None:
            spec = self.send_stream(stream, stream_from, table, info)
            if spec is not None:
                return self.expire_with(spec, pos, info)
        if selector:
            initial = [e for e in initial if matches_selector(json.loads(e[1]), selector)]
        if initial:
            spec = self.send_lines(initial, table, info)
            if spec is not None:
                return self.expire_with(spec, pos, info)
        if stream_from is not None and bookmarks:
            self.write_chunks([self.bookmark_line(pos)])
            info["bookmarks"] += 1
        next_bookmark = time.time() + emu.bookmark_interval
        while True:
            now = time.time()
            if now >= deadline or store.closed:
                # The outcome is set before the terminating chunk: a client that has read the end sees it in stats.
                info["outcome"] = "timeout" if now >= deadline else "shutdown"
                self.end_chunked()
                return
            entries = []
            with store.cond:
                if store.rv <= pos and not faults.has_expire_due() and not store.closed:
                    wait = min(deadline, next_bookmark if bookmarks else deadline) - now
                    store.cond.wait(max(0.0, min(wait, 1.0)))
                floor = store.floor
                if pos >= floor:
                    entries = store.history_after(pos, namespace)
                    new_pos = store.rv
            if faults.has_expire_due():
                spec = faults.take_expire()
                if spec is not None:
                    return self.expire_with(spec, pos, info)
            if pos < floor:
                # The history this watch still needed was compacted away.
                self.send_error_410(pos, floor, info)
                return
            if entries:
                pairs = [(e[1], e[2]) for e in entries]
                if selector:
                    pairs = [p for p in pairs if matches_selector(json.loads(p[1]), selector)]
                spec = self.send_lines(pairs, table, info)
                if spec is not None:
                    return self.expire_with(spec, pos, info)
            pos = max(pos, new_pos) if pos >= floor else pos
            if bookmarks and time.time() >= next_bookmark:
                self.write_chunks([self.bookmark_line(pos)])
                info["bookmarks"] += 1
                next_bookmark = time.time() + emu.bookmark_interval

    def bookmark_line(self, rv):
        return (b'{"type":"BOOKMARK","object":{"kind":"Event","apiVersion":"v1","metadata":{"resourceVersion":"%d",'
                b'"creationTimestamp":null},"involvedObject":{},"source":{},"firstTimestamp":null,'
                b'"lastTimestamp":null,"eventTime":null,"reportingComponent":"","reportingInstance":""}}\n' % rv)

    def send_stream(self, stream, from_rv, table, info):
        """Serves the pre-built lines after from_rv in large chunks."""
        start = stream.offsets[from_rv - stream.base]
        end = stream.offsets[stream.count]
        faults = self.emu.faults
        if table or faults.drop or faults.expire or faults.huge:
            # Slow path: line by line so that the fault hooks apply.
            pairs = []
            for i in range(from_rv - stream.base, stream.count):
                line = stream.blob[stream.offsets[i]:stream.offsets[i + 1]]
                wtype, _, rest = line.partition(b'","object":')
                pairs.append((wtype[9:].decode(), rest[:-2]))
            return self.send_lines(pairs, table, info)
        view = memoryview(stream.blob)
        step = 1 << 20
        pos = start
        while pos < end:
            n = min(step, end - pos)
            self.wfile.write(b"%x\r\n" % n)
            self.wfile.write(view[pos:pos + n])
            self.wfile.write(b"\r\n")
            pos += n
        info["lines"] += stream.count - (from_rv - stream.base)
        return None

    # -- control API --------------------------------------------------------------------
    def control(self, method, path, query, body):
        emu = self.emu
        try:
            data = json.loads(body) if body.strip() else {}
        except ValueError as e:
            return self.send_json(400, {"error": "bad JSON body: %s" % e})
        try:
            if path == "/_emulator/stats" and method == "GET":
                return self.send_json(200, emu.stats())
            if path == "/_emulator/events-snapshot" and method == "GET":
                since = int(query.get("since_rv") or 0)
                with emu.store.cond:
                    occ = [o for o in emu.store.occurrences if int(o["resourceVersion"]) > since] if since \
                        else list(emu.store.occurrences)
                    if query.get("include_deleted") in ("1", "true"):
                        occ += list(emu.store.deleted)
                return self.send_json(200, occ)
            if path == "/_emulator/events" and method == "POST":
                return self.send_json(200, emu.post_events(data))
            if path == "/_emulator/faults" and method == "POST":
                specs = emu.arm_faults(data)
                return self.send_json(200, {"armed": specs, "pending": emu.faults.pending()})
            if path == "/_emulator/faults" and method == "GET":
                return self.send_json(200, {"pending": emu.faults.pending(), "fired": dict(emu.faults.fired)})
            if path == "/_emulator/rotate-token" and method == "POST":
                token = emu.rotate_token(data.get("token"))
                return self.send_json(200, {"token_file": emu.token_path, "rotated": True,
                                            "token_sha256": hashlib.sha256(token.encode()).hexdigest()})
            if path == "/_emulator/traffic" and method == "POST":
                emu.set_rate(float(data.get("events_per_second", emu.rate)))
                return self.send_json(200, {"events_per_second": emu.rate})
            if path == "/_emulator/auth-policy" and method == "POST":
                return self.send_json(200, emu.set_auth_policy(data))
            if path == "/_emulator/auth-policy" and method == "GET":
                p = emu.policy
                return self.send_json(200, {"policy": p.source, "tokens": len(p.tokens), "rules": len(p.rules),
                                            "defaults": p.defaults})
            if path == "/_emulator/auth-stats" and method == "GET":
                return self.send_json(200, emu.reviews.snapshot(int(query.get("last") or 100),
                                                                int(query.get("since") or 0)))
            if path == "/_emulator/auth-stats/reset" and method == "POST":
                emu.reviews.reset()
                return self.send_json(200, emu.reviews.snapshot(0))
            if path == "/_emulator/auth-configmap" and method == "POST":
                return self.send_json(200, emu.configure_configmap(data))
            if path == "/_emulator/shutdown" and method == "POST":
                self.send_json(200, {"shutdown": True})
                threading.Thread(target=emu.stop, daemon=True).start()
                return None
        except (ValueError, KeyError, TypeError) as e:
            return self.send_json(400, {"error": str(e)})
        return self.send_json(404, {"error": "unknown control endpoint %s %s" % (method, path)})


class Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address, emu):
        self.emu = emu
        super().__init__(address, Handler)

    def finish_request(self, request, client_address):
        """Runs in the connection's thread: TLS handshake here (never in the accept loop), and
        plain HTTP is still accepted on the same port for the control API."""
        conn = request
        if self.emu.ssl_ctx is not None:
            try:
                request.settimeout(10)
                first = request.recv(1, socket.MSG_PEEK)
                if not first:
                    return
                if first[0] == 0x16:
                    conn = self.emu.ssl_ctx.wrap_socket(request, server_side=True)
                conn.settimeout(None)
            except (OSError, ssl.SSLError):
                return
        try:
            self.RequestHandlerClass(conn, client_address, self)
        finally:
            if conn is not request:
                try:
                    conn.close()
                except OSError:
                    pass

    def handle_error(self, request, client_address):
        if self.emu.verbose:
            super().handle_error(request, client_address)


# ---------------------------------------------------------------------------------------
# The emulator process.
# ---------------------------------------------------------------------------------------


def run(cmd, cwd):
    subprocess.run(cmd, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def make_certificates(workdir):
    """CA + server certificate for 127.0.0.1 / localhost / ::1, with the openssl CLI."""
    ext = os.path.join(workdir, "server.ext")
    with open(ext, "w") as f:
        f.write("basicConstraints=critical,CA:FALSE\n"
                "keyUsage=critical,digitalSignature,keyEncipherment\n"
                "extendedKeyUsage=serverAuth\n"
                "subjectAltName=IP:127.0.0.1,IP:::1,DNS:localhost\n")
    run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "ca.key", "-out", "ca.crt", "-days", "30", "-subj", "/CN=keb-emulator-ca",
         "-addext", "basicConstraints=critical,CA:TRUE", "-addext", "keyUsage=critical,keyCertSign,cRLSign"],
        workdir)
    run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=127.0.0.1"], workdir)
    run(["openssl", "x509", "-req", "-in", "server.csr", "-CA", "ca.crt", "-CAkey", "ca.key",
         "-CAcreateserial", "-out", "server.crt", "-days", "30", "-extfile", "server.ext"], workdir)
    for name in ("ca.key", "server.key"):
        os.chmod(os.path.join(workdir, name), 0o600)


def write_atomic(path, data, mode=0o644):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


class Emulator:
    def __init__(self, args):
        self.args = args
        self.verbose = args.verbose
        self.workdir = os.path.abspath(args.workdir)
        os.makedirs(self.workdir, exist_ok=True)
        self.token_path = os.path.join(self.workdir, "token")
        self.store = Store(args.start_rv, args.window)
        self.faults = Faults()
        self.store.take_poison = self.faults.take_poison
        if args.ttl is None:
            args.ttl = 600.0 if args.scenario == "demo" else 3600.0
        self.sim = ClusterSim(self.store, args.seed, args.ttl, not args.no_managed_fields)
        self.bookmark_interval = args.bookmark_interval
        self.rate = args.events_per_second
        self.stats_lock = threading.Lock()
        self.requests = collections.Counter()
        self.status_codes = collections.Counter()
        self.watch_log = collections.deque(maxlen=500)
        self.active_watches = 0
        self.stop_event = threading.Event()
        self.ssl_ctx = None
        self.valid_tokens = {}
        self.policy = AuthPolicy()           # replaced whole, never mutated
        self.reviews = ReviewLog()
        self.cm_lock = threading.Lock()
        self.cm_data = None                  # extension-apiserver-authentication data (set at start)
        self.cm_exists = True
        self.cm_rv = args.start_rv
        self.cm_created = rfc3339(time.time())

    # -- auth ---------------------------------------------------------------------------
    def current_token(self):
        try:
            with open(self.token_path) as f:
                return f.read().strip()
        except OSError:
            return None

    def authorized(self, header):
        if self.args.no_auth:
            return True
        if not header.startswith("Bearer "):
            return False
        token = self.current_token()
        return bool(token) and secrets.compare_digest(header[7:].strip(), token)

    def rotate_token(self, token=None):
        token = token or secrets.token_hex(24)
        write_atomic(self.token_path, token + "\n", 0o600)
        self.write_kubeconfigs()
        return token

    def set_auth_policy(self, data):
        """Replaces the policy (a dict as in --auth-policy). Raises ValueError, keeping the old one."""
        policy = data if isinstance(data, AuthPolicy) else AuthPolicy(data)
        self.policy = policy
        return {"tokens": len(policy.tokens), "rules": len(policy.rules), "defaults": policy.defaults}

    def token_review(self, token, audiences):
        """TokenReview status for a token: a policy token's user, the emulator's own token as
        the controller's service account, anything else unauthenticated."""
        user = self.policy.authenticate(token)
        if user is None:
            own = self.current_token()
            if own and secrets.compare_digest(token, own):
                user = CONTROLLER_USER
        if user is None:
            # As the API server: "authenticated" false is omitted (omitempty), user is {}.
            return {"user": {}, "error": "invalid bearer token"}
        auds = audiences if isinstance(audiences, list) and audiences else API_AUDIENCES
        return {"authenticated": True, "user": user, "audiences": auds}

    def auth_configmap(self):
        """kube-system/extension-apiserver-authentication, or None when made absent."""
        with self.cm_lock:
            if not self.cm_exists or self.cm_data is None:
                return None
            return {"kind": "ConfigMap", "apiVersion": "v1",
                    "metadata": {"name": "extension-apiserver-authentication", "namespace": "kube-system",
                                 "uid": "5e1c7a3b-0d2f-4c6e-9a8b-6578742d6175",
                                 "resourceVersion": str(self.cm_rv), "creationTimestamp": self.cm_created},
                    "data": dict(self.cm_data)}

    def configure_configmap(self, data):
        """{"data": {key: value or null}} changes keys (null removes one), {"reset": true}
        restores what start-up wrote, {"exists": false|true} removes or restores the ConfigMap."""
        with self.cm_lock:
            if data.get("reset"):
                self.cm_data = auth_configmap_data(self.workdir)
                self.cm_exists = True
            changes = data.get("data") or {}
            if not isinstance(changes, dict):
                raise ValueError("data must be an object: key -> string or null")
            for k, v in changes.items():
                if v is None:
                    self.cm_data.pop(k, None)
                elif isinstance(v, str):
                    self.cm_data[k] = v
                else:
                    raise ValueError("data.%s must be a string or null" % k)
            if "exists" in data:
                self.cm_exists = bool(data["exists"])
            self.cm_rv += 1
            return {"exists": self.cm_exists, "resourceVersion": str(self.cm_rv), "keys": sorted(self.cm_data)}

    # -- stats --------------------------------------------------------------------------
    def count_request(self, category):
        with self.stats_lock:
            self.requests[category] += 1

    def count_status(self, code, category):
        if category == "control":
            return
        with self.stats_lock:
            self.status_codes[str(code)] += 1

    def watch_started(self, info):
        # The log is in the order watches started; an open watch shows outcome "open" and end null.
        with self.stats_lock:
            self.active_watches += 1
            self.watch_log.append(info)

    def watch_ended(self, info):
        with self.stats_lock:
            self.active_watches -= 1

    def stats(self):
        with self.store.cond:
            rv, live, total, floor = self.store.rv, len(self.store.live), self.store.events_total, self.store.floor
            deleted = len(self.store.deleted)
        with self.stats_lock:
            out = {"requests": {k: self.requests.get(k, 0) for k in
                                ("list", "list_first", "watch", "get", "discovery", "control", "health", "other",
                                 "review", "configmap")},
                   "status_codes": dict(self.status_codes), "events_total": total, "deleted_total": deleted,
                   "resource_version": str(rv), "oldest_watchable_resource_version": str(floor),
                   "live_events": live, "active_watches": self.active_watches,
                   "watches": [dict(w) for w in list(self.watch_log)[-50:]]}
        out["faults_pending"] = self.faults.pending()
        out["faults_fired"] = dict(self.faults.fired)
        reviews = self.reviews.snapshot(last=0)
        out["reviews"] = {"tokenreviews": reviews["tokenreviews"],
                          "subjectaccessreviews": reviews["subjectaccessreviews"]}
        if self.store.stream is not None:
            out["stream"] = {"events": self.store.stream.count, "bytes": len(self.store.stream.blob),
                             "first_resource_version": str(self.store.stream.base + 1),
                             "last_resource_version": str(self.store.stream.end)}
        return out

    # -- traffic ------------------------------------------------------------------------
    def post_events(self, data):
        out = []
        specs = data.get("events")
        if specs is None:
            count = int(data.get("count", 1 if not any(k in data for k in ("modify", "delete", "demo")) else 0))
            specs = [data] * count
        base = self.store.events_total
        for i, spec in enumerate(specs):
            rec = self.sim.custom(spec, base + i)
            out.append(rec)
            for _ in range(int(spec.get("repeat", 0))):
                out.append(self.modify(rec["uid"], spec))
        mod = data.get("modify")
        if mod:
            for uid in mod.get("uids", []):
                for _ in range(int(mod.get("times", 1))):
                    rec = self.modify(uid, mod)
                    if rec is None:
                        raise ValueError("no live event with uid %s" % uid)
                    out.append(rec)
        for _ in range(int(data.get("demo", 0))):
            out.append(self.sim.step())
        dele = data.get("delete")
        if dele:
            for uid in dele.get("uids", []):
                rec = self.store.delete(uid)
                if rec is None:
                    raise ValueError("no live event with uid %s" % uid)
                out.append(rec)
        if data.get("summary"):
            # Bulk creation: counts only, not one entry per Event.
            return {"resource_version": str(self.store.rv), "created": len(out)}
        brief = [{k: r[k] for k in ("uid", "resourceVersion", "key", "namespace", "name", "watchType", "count")}
                 for r in out]
        return {"resource_version": str(self.store.rv), "events": brief}

    def modify(self, uid, spec):
        stamp = rfc3339(time.time())

        def bump(o):
            o["count"] = o.get("count", 1) + 1
            o["lastTimestamp"] = stamp
            if "message" in spec and "events" not in spec and spec.get("message") is not None:
                o["message"] = spec["message"]
        return self.store.modify(uid, bump)

    def set_rate(self, rate):
        self.rate = max(0.0, rate)
        with self.store.cond:
            self.store.cond.notify_all()

    def arm_faults(self, data):
        """Arms one fault spec or a list of them (see Faults.arm; "compact" acts at once)."""
        specs = data if isinstance(data, list) else [data]
        for spec in specs:
            if spec.get("kind") == "compact":
                self.store.compact(int(spec.get("keep", 0)))
                self.faults.fired["compact"] += 1
            else:
                self.faults.arm(spec)
        with self.store.cond:
            self.store.cond.notify_all()      # open watches re-check due faults now
        return specs

    def apply_step(self, step):
        """One step of a fault script: any of "fault", "events", "rotate_token", "traffic",
        "auth_policy"."""
        if "auth_policy" in step:
            self.set_auth_policy(step["auth_policy"])
        if "fault" in step:
            self.arm_faults(step["fault"])
        if "events" in step:
            self.post_events(step["events"])
        if step.get("rotate_token"):
            self.rotate_token()
        if "traffic" in step:
            self.set_rate(float(step["traffic"]))

    def script_loop(self, steps):
        """Runs fault-script steps at their "at" offsets (seconds after start); a step with
        "every": S repeats every S seconds, "times": n of them (default: forever)."""
        start = time.time()
        queue = [(float(s.get("at", 0)), i, s, int(s.get("times", 0))) for i, s in enumerate(steps)]
        while queue and not self.stop_event.is_set():
            queue.sort(key=lambda q: (q[0], q[1]))
            at, i, step, left = queue.pop(0)
            if self.stop_event.wait(max(0.0, start + at - time.time())):
                return
            try:
                self.apply_step(step)
                sys.stderr.write("emulator: script step %d at %.1fs: %s\n" % (i, at, json.dumps(step)))
            except (ValueError, KeyError, TypeError, AttributeError) as e:
                sys.stderr.write("emulator: script step %d failed: %s\n" % (i, e))
            if step.get("every") and left != 1:
                queue.append((at + float(step["every"]), i, step, left - 1 if left else 0))

    def chaos_steps(self, interval):
        """An endless fault script for the demo: one random fault every `interval` seconds."""
        rng = random.Random(self.args.seed + 1)
        menu = [
            {"fault": {"kind": "drop_mid_line", "after_events": 2}},
            {"fault": {"kind": "expire_watch"}},
            {"fault": [{"kind": "expire_watch"}, {"kind": "stale_watch", "times": 2}]},
            {"fault": {"kind": "status_429", "match": "watch", "retry_after": 2}},
            {"fault": {"kind": "status_500", "match": "list"}},
            {"rotate_token": True},
        ]
        return [dict(rng.choice(menu), at=interval * (k + 1)) for k in range(10000)]

    def traffic_loop(self):
        next_ttl = time.time() + 1
        credit = 0.0
        last = time.time()
        while not self.stop_event.is_set():
            now = time.time()
            credit = min(credit + (now - last) * self.rate, max(1.0, self.rate))
            last = now
            while credit >= 1.0:
                self.sim.step()
                credit -= 1.0
            if now >= next_ttl:
                self.sim.expire_ttl()
                next_ttl = now + 1
            self.stop_event.wait(0.05 if self.rate > 0 else 0.5)

    # -- lifecycle ----------------------------------------------------------------------
    def write_kubeconfigs(self):
        a = self.args
        scheme = "http" if a.no_tls else "https"
        server = "%s://%s:%d" % (scheme, "127.0.0.1" if a.host in ("0.0.0.0", "") else a.host, self.port)
        ca = os.path.join(self.workdir, "ca.crt")
        cluster = "    server: %s\n" % server
        cluster_inline = cluster
        if not a.no_tls:
            cluster += "    certificate-authority: %s\n" % ca
            with open(ca, "rb") as f:
                cluster_inline += "    certificate-authority-data: %s\n" % base64.b64encode(f.read()).decode()
        head = "apiVersion: v1\nkind: Config\nclusters:\n- name: emulator\n  cluster:\n"
        ctx = ("contexts:\n- name: emulator\n  context:\n    cluster: emulator\n    user: emulator\n"
               "    namespace: default\ncurrent-context: emulator\npreferences: {}\nusers:\n- name: emulator\n"
               "  user:\n")
        write_atomic(os.path.join(self.workdir, "kubeconfig"),
                     head + cluster + ctx + "    tokenFile: %s\n" % self.token_path, 0o600)
        write_atomic(os.path.join(self.workdir, "kubeconfig-inline"),
                     head + cluster_inline + ctx + "    token: %s\n" % (self.current_token() or ""), 0o600)
        self.server_url = server

    def start(self):
        a = self.args
        if a.auth_policy:
            with open(a.auth_policy) as f:
                self.policy = parse_auth_policy(f.read(), a.auth_policy)
        # The CA exists in --no-tls mode too: it signs the client certificates that the
        # extension-apiserver-authentication ConfigMap's client-ca-file vouches for.
        make_certificates(self.workdir)
        make_auth_certificates(self.workdir)
        self.cm_data = auth_configmap_data(self.workdir)
        if not a.no_tls:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(os.path.join(self.workdir, "server.crt"), os.path.join(self.workdir, "server.key"))
            ctx.set_alpn_protocols(["http/1.1"])
            self.ssl_ctx = ctx
        if not os.path.exists(self.token_path) or not a.keep_token:
            write_atomic(self.token_path, (a.token or secrets.token_hex(24)) + "\n", 0o600)
        if a.scenario == "demo":
            for _ in range(a.initial_events if a.initial_events >= 0 else 40):
                self.sim.step()
        elif a.initial_events > 0:
            for _ in range(a.initial_events):
                self.sim.step()
        if a.scenario == "fast-stream":
            n = a.stream_events
            stream = build_fast_stream(self.sim, n, self.store.rv, a.stream_objects or max(1, n // 8),
                                       revisions=a.stream_revisions)
            with self.store.cond:
                self.store.stream = stream
                self.store.rv = stream.end
                self.store.floor = stream.end
        self.httpd = Server((a.host, a.port), self)
        self.port = self.httpd.server_address[1]
        self.address = "%s:%d" % (a.host, self.port)
        self.write_kubeconfigs()
        if a.scenario == "demo" and a.events_per_second is None:
            self.rate = 5.0
        self.rate = self.rate or 0.0
        threading.Thread(target=self.traffic_loop, daemon=True, name="traffic").start()
        steps = []
        if a.fault_script:
            with open(a.fault_script) as f:
                steps = json.load(f)
        if a.chaos_interval > 0:
            steps += self.chaos_steps(a.chaos_interval)
        if steps:
            threading.Thread(target=self.script_loop, args=(steps,), daemon=True, name="script").start()
        write_atomic(os.path.join(self.workdir, "port"), "%d\n" % self.port)
        print("kube-emulator ready: url=%s port=%d workdir=%s kubeconfig=%s control=http://127.0.0.1:%d/_emulator/"
              % (self.server_url, self.port, self.workdir, os.path.join(self.workdir, "kubeconfig"), self.port),
              flush=True)

    def serve(self):
        self.httpd.serve_forever(poll_interval=0.2)

    def stop(self):
        """Ends open watches cleanly (terminating chunk), then stops the server."""
        self.stop_event.set()
        with self.store.cond:
            self.store.closed = True
            self.store.cond.notify_all()
        deadline = time.time() + 2
        while self.active_watches > 0 and time.time() < deadline:
            time.sleep(0.02)
        self.httpd.shutdown()


def parse_args(argv):
    p = argparse.ArgumentParser(description="kube-apiserver emulator for core/v1 Events")
    p.add_argument("--workdir", required=True, help="directory for certificates, token, kubeconfig, port")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port (written to WORKDIR/port)")
    p.add_argument("--no-tls", action="store_true", help="serve plain HTTP")
    p.add_argument("--no-auth", action="store_true", help="accept requests without a bearer token")
    p.add_argument("--token", help="initial bearer token (default: random)")
    p.add_argument("--keep-token", action="store_true", help="keep an existing WORKDIR/token")
    p.add_argument("--scenario", choices=["demo", "idle", "fast-stream"], default="idle")
    p.add_argument("--events-per-second", type=float, default=None,
                   help="ongoing demo traffic rate (default 5 for demo, 0 otherwise)")
    p.add_argument("--initial-events", type=int, default=-1,
                   help="demo events created before start (default 40 for demo, 0 otherwise)")
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--window", type=int, default=10000,
                   help="changes retained for watches; older resourceVersions get 410 Expired")
    p.add_argument("--start-rv", type=int, default=1000000, help="initial resourceVersion")
    p.add_argument("--bookmark-interval", type=float, default=15.0, help="seconds between BOOKMARKs")
    p.add_argument("--ttl", type=float, default=None,
                   help="event TTL in seconds (0: never delete; default 600 for demo, else 3600)")
    p.add_argument("--stream-events", type=int, default=200000, help="fast-stream: number of pre-built events")
    p.add_argument("--stream-objects", type=int, default=0, help="fast-stream: distinct involved objects")
    p.add_argument("--stream-revisions", type=int, default=0,
                   help="fast-stream: 0 (default): ADDED Events, 1 in 5 lines a MODIFIED repeat of a recent one; "
                        "N > 0: each Event as ADDED then exactly N MODIFIED revisions (count 1..N+1), the "
                        "revisions of a few hundred Events in flight interleaved")
    p.add_argument("--no-managed-fields", action="store_true", help="omit metadata.managedFields")
    p.add_argument("--fault-script", help="JSON file: a list of timed steps (faults, events, token rotation, "
                                          "traffic rate), see README")
    p.add_argument("--auth-policy", help="JSON (or YAML with python3-yaml) file: tokens and RBAC-style rules the "
                                         "TokenReview and SubjectAccessReview endpoints answer from, see README")
    p.add_argument("--chaos-interval", type=float, default=0,
                   help="arm a random fault (or rotate the token) every this many seconds (0: off)")
    p.add_argument("--max-lifetime", type=float, default=0, help="exit after this many seconds (0: never)")
    p.add_argument("--exit-with-parent", action="store_true", help="exit when the parent process goes away")
    p.add_argument("--verbose", action="store_true", help="log every request to stderr")
    return p.parse_args(argv)


def main(argv=None):
    args = parse_args(argv if argv is not None else sys.argv[1:])
    emu = Emulator(args)
    try:
        emu.start()
    except ValueError as e:              # a bad --auth-policy file
        sys.stderr.write("emulator: %s\n" % e)
        return 2

    def on_signal(signum, frame):
        threading.Thread(target=emu.stop, daemon=True).start()
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    parent = os.getppid()

    def watchdog():
        started = time.time()
        while not emu.stop_event.wait(0.5):
            if args.max_lifetime and time.time() - started > args.max_lifetime:
                sys.stderr.write("emulator: --max-lifetime reached, exiting\n")
                emu.stop()
            elif args.exit_with_parent and os.getppid() != parent:
                emu.stop()
    threading.Thread(target=watchdog, daemon=True).start()
    emu.serve()
    return 0


if __name__ == "__main__":
    sys.exit(main())
