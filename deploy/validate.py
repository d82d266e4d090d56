#!/usr/bin/env python3
"""Offline checks of the deployment files: no cluster, no Docker daemon, no network.

Kubernetes manifests (deploy/k8s/*.yaml) are checked against schemas written below for the
kinds we use (v1 Pod, v1 PersistentVolumeClaim, kubeflow.org/v2beta1 MPIJob): known
apiVersion/kind, required fields, value types, unknown fields (a typo such as `volumeMount`
is an error, not silently dropped), enums, quantities, DNS names, volume references, and the
rules the API server or the MPI Operator would only apply at `kubectl apply` time or later.
Dockerfiles (deploy/Dockerfile.*) are checked for a build stage running scripts/setup, a
final stage copying from it and running as a non-root USER, and COPY sources that exist in
the build context and are not excluded by the .dockerignore.

The schemas cover the fields these manifests use and the common ones around them; a field
Kubernetes has but the schema lacks is reported as unknown: add it here.

  python3 deploy/validate.py            every manifest and Dockerfile under deploy/
  python3 deploy/validate.py PATH...    these files (or folders)
Exit status 0 when all are valid, 1 with one line per problem (file, document, field path).
Needs Python 3 and PyYAML (Debian: python3-yaml).
"""

from __future__ import annotations

import argparse
import difflib
import json
import posixpath
import re
import sys
from decimal import Decimal
from pathlib import Path

import yaml

DEPLOY = Path(__file__).resolve().parent
ROOT = DEPLOY.parent

# --- names and values ---------------------------------------------------------------------

_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_QUALIFIED_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_IMAGE = re.compile(
    r"(?:[A-Za-z0-9.-]+(?::[0-9]+)?/)?"            # registry host[:port]/
    r"[a-z0-9]+(?:[._-]+[a-z0-9]+)*"               # repository path ...
    r"(?:/[a-z0-9]+(?:[._-]+[a-z0-9]+)*)*"
    r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?"     # :tag
    r"(?:@sha256:[0-9a-f]{64})?")                  # @digest


def dns1123_label(value):
    if len(value) > 63 or not re.fullmatch(_LABEL, value):
        return "not a DNS-1123 label (lowercase letters, digits and '-', at most 63)"
    return None


def dns1123_subdomain(value):
    if len(value) > 253 or not re.fullmatch(rf"{_LABEL}(\.{_LABEL})*", value):
        return "not a DNS-1123 subdomain (lowercase letters, digits, '-' and '.', at most 253)"
    return None


def dns1035_label(value):
    if len(value) > 63 or not re.fullmatch(r"[a-z]([-a-z0-9]*[a-z0-9])?", value):
        return "not a DNS-1035 label (a lowercase letter, then letters, digits and '-', at most 63)"
    return None


def port_name(value):
    if (len(value) > 15 or not re.fullmatch(_LABEL, value) or "--" in value
            or not re.search("[a-z]", value)):
        return "not a port name (IANA_SVC_NAME: at most 15 lowercase letters, digits and '-')"
    return None


def qualified_key(value):
    """A label, annotation or node-selector key: [prefix/]name."""
    prefix, _, name = value.rpartition("/")
    if prefix and dns1123_subdomain(prefix):
        return f"key prefix {prefix!r} is not a DNS-1123 subdomain"
    if len(name) > 63 or not _QUALIFIED_NAME.fullmatch(name):
        return "not a qualified name ([prefix/]name, name: at most 63 letters, digits, '-_.')"
    return None


def label_value(value):
    if value and (len(value) > 63 or not _QUALIFIED_NAME.fullmatch(value)):
        return ("not a label value (at most 63 letters, digits, '-_.', starting and ending "
                "alphanumeric)")
    return None


def env_name(value):
    if not re.fullmatch(r"[-._a-zA-Z][-._a-zA-Z0-9]*", value):
        return "not a valid environment variable name"
    return None


def absolute_path(value):
    return None if value.startswith("/") else "must be an absolute path"


def image_reference(value):
    if not value.strip():
        return "must not be empty"
    if not _IMAGE.fullmatch(value):
        return "not an image reference ([registry/]repository[:tag][@sha256:digest])"
    return None


# Kubernetes resource quantities: a decimal number with a binary (Ki..Ei), decimal (n..E)
# or exponent suffix.
_QUANTITY = re.compile(r"([+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
                       r"([eE][+-]?[0-9]+|Ki|Mi|Gi|Ti|Pi|Ei|n|u|m|k|M|G|T|P|E)?")
_SUFFIX = {None: 1, "n": Decimal("1e-9"), "u": Decimal("1e-6"), "m": Decimal("1e-3"),
           "k": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "P": 10**15, "E": 10**18,
           "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}


def parse_quantity(value):
    """Decimal value of a quantity (YAML number or string), or None when malformed."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return Decimal(str(value))
    if not isinstance(value, str):
        return None
    m = _QUANTITY.fullmatch(value)
    if not m:
        return None
    number, suffix = Decimal(m.group(1)), m.group(2)
    if suffix and suffix[0] in "eE" and len(suffix) > 1:
        return number * Decimal(10) ** int(suffix[1:])
    return number * Decimal(_SUFFIX[suffix])


def describe(value):
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


def key_path(base, key):
    part = f".{key}" if re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", key) else f"[{json.dumps(key)}]"
    return (base + part) if base else part.lstrip(".")


# --- problems -----------------------------------------------------------------------------

_NO_VALUE = object()


class Reporter:
    """Collects one line per problem, prefixed with the file and document."""

    def __init__(self, prefix, problems, image_files=None):
        self.prefix = prefix
        self.problems = problems
        self.image_files = image_files or {}

    def add(self, path, message, value=_NO_VALUE):
        shown = "" if value is _NO_VALUE else " " + json.dumps(value, default=str)
        where = f"{path}{shown}: " if path or shown else ""
        self.problems.append(f"{self.prefix}{where}{message}")


# --- schema engine ------------------------------------------------------------------------

class Str:
    def __init__(self, enum=None, check=None):
        self.enum, self.check = enum, check

    def validate(self, node, path, r):
        if not isinstance(node, str):
            hint = f" (quote it: \"{node}\")" if isinstance(node, (int, float)) else ""
            if isinstance(node, bool):
                hint = " (YAML reads unquoted true/false/yes/no/on/off as booleans: quote it)"
            r.add(path, f"expected a string, got {describe(node)}{hint}", node)
            return
        if self.enum is not None and node not in self.enum:
            r.add(path, "must be one of " + ", ".join(repr(e) for e in self.enum), node)
        elif self.check and (error := self.check(node)):
            r.add(path, error, node)


class Int:
    def __init__(self, minimum=None, maximum=None):
        self.minimum, self.maximum = minimum, maximum

    def validate(self, node, path, r):
        if isinstance(node, bool) or not isinstance(node, int):
            hint = " (unquote it)" if isinstance(node, str) and node.isdigit() else ""
            r.add(path, f"expected an integer, got {describe(node)}{hint}", node)
        elif self.minimum is not None and node < self.minimum:
            r.add(path, f"must be at least {self.minimum}", node)
        elif self.maximum is not None and node > self.maximum:
            r.add(path, f"must be at most {self.maximum}", node)


class Bool:
    def validate(self, node, path, r):
        if not isinstance(node, bool):
            r.add(path, f"expected a boolean, got {describe(node)}", node)


class IntOrStr:
    def validate(self, node, path, r):
        if isinstance(node, bool) or not isinstance(node, (int, str)):
            r.add(path, f"expected an integer or a string, got {describe(node)}", node)


class Quantity:
    def validate(self, node, path, r):
        q = parse_quantity(node)
        if q is None:
            r.add(path, "not a quantity (e.g. 2, 500m, 8Gi, 1.5G)", node)
        elif q < 0:
            r.add(path, "must not be negative", node)


class List:
    def __init__(self, item, min_items=0):
        self.item, self.min_items = item, min_items

    def validate(self, node, path, r):
        if not isinstance(node, list):
            r.add(path, f"expected a list, got {describe(node)}")
            return
        if len(node) < self.min_items:
            r.add(path, f"needs at least {self.min_items} item(s)")
        for i, item in enumerate(node):
            self.item.validate(item, f"{path}[{i}]", r)


def mapping_items(node, path, r):
    """(key, value, key path) of a mapping with string keys; reports anything else."""
    if not isinstance(node, dict):
        r.add(path, f"expected a mapping, got {describe(node)}")
        return []
    items = []
    for key, value in node.items():
        if not isinstance(key, str):
            r.add(path, f"key {key!r} must be a string")
            continue
        items.append((key, value, key_path(path, key)))
    return items


class Map:
    def __init__(self, value, key_check=None):
        self.value, self.key_check = value, key_check

    def validate(self, node, path, r):
        for key, value, sub in mapping_items(node, path, r):
            if self.key_check and (error := self.key_check(key)):
                r.add(sub, error)
            self.value.validate(value, sub, r)


class Obj:
    """A mapping with known fields. `check(node, path, r)` adds rules across fields."""

    def __init__(self, fields, required=(), check=None):
        self.fields, self.required, self.check = fields, tuple(required), check

    def validate(self, node, path, r):
        if not isinstance(node, dict):
            mapping_items(node, path, r)
            return
        for key, value, sub in mapping_items(node, path, r):
            schema = self.fields.get(key)
            if schema is None:
                close = difflib.get_close_matches(key, list(self.fields), n=1)
                hint = f" (did you mean {close[0]}?)" if close else ""
                r.add(sub, f"unknown field{hint}")
            else:
                schema.validate(value, sub, r)
        for key in self.required:
            if key not in node:
                r.add(key_path(path, key), "required field missing")
        if self.check:
            self.check(node, path, r)


def _dict(node, key):
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, dict) else {}


def _list(node, key):
    value = node.get(key) if isinstance(node, dict) else None
    return value if isinstance(value, list) else []


# --- Kubernetes core/v1 -------------------------------------------------------------------

def _exactly_one(names, what):
    def check(node, path, r):
        present = [n for n in names if n in node]
        if len(present) != 1:
            found = ", ".join(present) if present else "none"
            r.add(path, f"needs exactly one {what} ({', '.join(names)}); found {found}")
    return check


LABELS = Map(Str(check=label_value), key_check=qualified_key)
ANNOTATIONS = Map(Str(), key_check=qualified_key)
LABEL_SELECTOR = Obj({
    "matchLabels": LABELS,
    "matchExpressions": List(Obj({
        "key": Str(check=qualified_key),
        "operator": Str(enum=("In", "NotIn", "Exists", "DoesNotExist")),
        "values": List(Str()),
    }, required=("key", "operator"))),
})
OBJECT_META = Obj({
    "name": Str(check=dns1123_subdomain),
    "namespace": Str(check=dns1123_label),
    "labels": LABELS,
    "annotations": ANNOTATIONS,
}, required=("name",))
TEMPLATE_META = Obj({"name": Str(check=dns1123_subdomain), "labels": LABELS,
                     "annotations": ANNOTATIONS})

_STANDARD_RESOURCES = {"cpu", "memory", "ephemeral-storage"}


def resource_name(name):
    if name in _STANDARD_RESOURCES or re.fullmatch(r"hugepages-.+", name):
        return None
    if "/" in name and not qualified_key(name):
        return None  # extended resource, e.g. nvidia.com/gpu
    hint = " (GPUs are nvidia.com/gpu)" if "gpu" in name.lower() else ""
    return ("unknown resource name: cpu, memory, ephemeral-storage, hugepages-<size> or "
            "domain/name" + hint)


def check_resources(node, path, r):
    requests, limits = _dict(node, "requests"), _dict(node, "limits")
    for kind, values in (("requests", requests), ("limits", limits)):
        for name, value in values.items():
            q = parse_quantity(value)
            sub = key_path(key_path(path, kind), str(name))
            if q is None:
                continue
            if name == "memory" and isinstance(value, str) and value.endswith("m"):
                r.add(sub, "millibytes: did you mean Mi?", value)
            if "/" in str(name) and q != q.to_integral_value():
                r.add(sub, "an extended resource (a device count) must be a whole number", value)
    for name, value in requests.items():
        q = parse_quantity(value)
        sub = key_path(key_path(path, "requests"), str(name))
        if q is None:
            continue
        if "/" in str(name):
            if name not in limits:
                r.add(sub, "an extended resource requested must also be in limits, "
                      "with the same value")
            elif parse_quantity(limits[name]) != q:
                r.add(sub, "an extended resource's request must equal its limit", value)
        elif name in limits and (lim := parse_quantity(limits[name])) is not None and q > lim:
            r.add(sub, f"request exceeds the limit {limits[name]}", value)


RESOURCES = Obj({
    "requests": Map(Quantity(), key_check=resource_name),
    "limits": Map(Quantity(), key_check=resource_name),
}, check=check_resources)

ENV_VAR = Obj({
    "name": Str(check=env_name),
    "value": Str(),
    "valueFrom": Obj({
        "fieldRef": Obj({"fieldPath": Str(), "apiVersion": Str()}, required=("fieldPath",)),
        "resourceFieldRef": Obj({"resource": Str(), "containerName": Str(),
                                 "divisor": Quantity()}, required=("resource",)),
        "configMapKeyRef": Obj({"name": Str(), "key": Str(), "optional": Bool()},
                               required=("key",)),
        "secretKeyRef": Obj({"name": Str(), "key": Str(), "optional": Bool()},
                            required=("key",)),
    }, check=_exactly_one(("fieldRef", "resourceFieldRef", "configMapKeyRef", "secretKeyRef"),
                          "source")),
}, required=("name",), check=lambda n, p, r: (
    r.add(p, "set value or valueFrom, not both") if "value" in n and "valueFrom" in n else None))

ENV_FROM = Obj({
    "prefix": Str(),
    "configMapRef": Obj({"name": Str(), "optional": Bool()}),
    "secretRef": Obj({"name": Str(), "optional": Bool()}),
}, check=_exactly_one(("configMapRef", "secretRef"), "source"))

PORT = Obj({
    "name": Str(check=port_name),
    "containerPort": Int(1, 65535),
    "hostPort": Int(1, 65535),
    "hostIP": Str(),
    "protocol": Str(enum=("TCP", "UDP", "SCTP")),
}, required=("containerPort",))

_HANDLERS = ("exec", "httpGet", "tcpSocket", "grpc")
PROBE = Obj({
    "exec": Obj({"command": List(Str(), min_items=1)}, required=("command",)),
    "httpGet": Obj({"path": Str(), "port": IntOrStr(), "host": Str(),
                    "scheme": Str(enum=("HTTP", "HTTPS")),
                    "httpHeaders": List(Obj({"name": Str(), "value": Str()},
                                            required=("name", "value")))},
                   required=("port",)),
    "tcpSocket": Obj({"port": IntOrStr(), "host": Str()}, required=("port",)),
    "grpc": Obj({"port": Int(1, 65535), "service": Str()}, required=("port",)),
    "initialDelaySeconds": Int(0),
    "periodSeconds": Int(1),
    "timeoutSeconds": Int(1),
    "successThreshold": Int(1),
    "failureThreshold": Int(1),
    "terminationGracePeriodSeconds": Int(1),
}, check=_exactly_one(_HANDLERS, "handler"))

CAPABILITIES = Obj({"add": List(Str()), "drop": List(Str())})
SECCOMP = Obj({"type": Str(enum=("RuntimeDefault", "Unconfined", "Localhost")),
               "localhostProfile": Str()}, required=("type",))
CONTAINER_SECURITY = Obj({
    "runAsUser": Int(0), "runAsGroup": Int(0), "runAsNonRoot": Bool(),
    "allowPrivilegeEscalation": Bool(), "privileged": Bool(),
    "readOnlyRootFilesystem": Bool(), "capabilities": CAPABILITIES,
    "seccompProfile": SECCOMP,
})
POD_SECURITY = Obj({
    "runAsUser": Int(0), "runAsGroup": Int(0), "runAsNonRoot": Bool(), "fsGroup": Int(0),
    "fsGroupChangePolicy": Str(enum=("OnRootMismatch", "Always")),
    "supplementalGroups": List(Int(0)), "seccompProfile": SECCOMP,
})

VOLUME_MOUNT = Obj({
    "name": Str(),
    "mountPath": Str(check=absolute_path),
    "readOnly": Bool(),
    "subPath": Str(),
    "subPathExpr": Str(),
    "mountPropagation": Str(enum=("None", "HostToContainer", "Bidirectional")),
}, required=("name", "mountPath"))


def check_container(node, path, r):
    ports = {p.get("name") for p in _list(node, "ports") if isinstance(p, dict)}
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        for handler in ("httpGet", "tcpSocket"):
            port = _dict(_dict(node, probe), handler).get("port")
            if isinstance(port, str) and port not in ports:
                r.add(f"{path}.{probe}.{handler}.port", "names no port of this container", port)
    seen = {}
    for i, mount in enumerate(_list(node, "volumeMounts")):
        mount_path = mount.get("mountPath") if isinstance(mount, dict) else None
        if isinstance(mount_path, str):
            if mount_path in seen:
                r.add(f"{path}.volumeMounts[{i}].mountPath",
                      f"already mounted by volumeMounts[{seen[mount_path]}]", mount_path)
            seen.setdefault(mount_path, i)
    names = {}
    for i, env in enumerate(_list(node, "env")):
        name = env.get("name") if isinstance(env, dict) else None
        if isinstance(name, str):
            if name in names:
                r.add(f"{path}.env[{i}].name", f"already set by env[{names[name]}]", name)
            names.setdefault(name, i)
    # Files the command names inside our image must be files the Dockerfiles copy in.
    for key in ("command", "args"):
        for i, word in enumerate(_list(node, key)):
            for dest, source in r.image_files.items():
                inside = isinstance(word, str) and (
                    word == dest or (dest.endswith("/") and word.startswith(dest)))
                if inside and not (ROOT / (source + word[len(dest):])).exists():
                    r.add(f"{path}.{key}[{i}]", "not in the image: "
                          f"{source + word[len(dest):]} does not exist", word)


CONTAINER = Obj({
    "name": Str(check=dns1123_label),
    "image": Str(check=image_reference),
    "imagePullPolicy": Str(enum=("Always", "IfNotPresent", "Never")),
    "command": List(Str()),
    "args": List(Str()),
    "workingDir": Str(check=absolute_path),
    "env": List(ENV_VAR),
    "envFrom": List(ENV_FROM),
    "ports": List(PORT),
    "resources": RESOURCES,
    "volumeMounts": List(VOLUME_MOUNT),
    "livenessProbe": PROBE,
    "readinessProbe": PROBE,
    "startupProbe": PROBE,
    "securityContext": CONTAINER_SECURITY,
    "stdin": Bool(),
    "tty": Bool(),
    "terminationMessagePolicy": Str(enum=("File", "FallbackToLogsOnError")),
}, required=("name", "image"), check=check_container)

KEY_TO_PATH = Obj({"key": Str(), "path": Str(), "mode": Int(0, 0o777)}, required=("key", "path"))
VOLUME = Obj({
    "name": Str(check=dns1123_label),
    "persistentVolumeClaim": Obj({"claimName": Str(check=dns1123_subdomain),
                                  "readOnly": Bool()}, required=("claimName",)),
    "emptyDir": Obj({"medium": Str(enum=("", "Memory", "HugePages")), "sizeLimit": Quantity()}),
    "configMap": Obj({"name": Str(check=dns1123_subdomain), "items": List(KEY_TO_PATH),
                      "defaultMode": Int(0, 0o777), "optional": Bool()}),
    "secret": Obj({"secretName": Str(check=dns1123_subdomain), "items": List(KEY_TO_PATH),
                   "defaultMode": Int(0, 0o777), "optional": Bool()}),
    "hostPath": Obj({"path": Str(check=absolute_path),
                     "type": Str(enum=("", "DirectoryOrCreate", "Directory", "FileOrCreate",
                                       "File", "Socket", "CharDevice", "BlockDevice"))},
                    required=("path",)),
    "nfs": Obj({"server": Str(), "path": Str(check=absolute_path), "readOnly": Bool()},
               required=("server", "path")),
}, required=("name",), check=_exactly_one(
    ("persistentVolumeClaim", "emptyDir", "configMap", "secret", "hostPath", "nfs"),
    "volume source"))


def check_toleration(node, path, r):
    operator = node.get("operator", "Equal")
    if operator == "Exists" and node.get("value"):
        r.add(f"{path}.value", "must be empty with operator Exists", node.get("value"))
    if not node.get("key") and operator != "Exists":
        r.add(f"{path}.operator", "an empty key matches all taints only with operator Exists",
              operator)
    if "tolerationSeconds" in node and node.get("effect") != "NoExecute":
        r.add(f"{path}.tolerationSeconds", "only applies to effect NoExecute")


TOLERATION = Obj({
    "key": Str(check=qualified_key),
    "operator": Str(enum=("Exists", "Equal")),
    "value": Str(check=label_value),
    "effect": Str(enum=("", "NoSchedule", "PreferNoSchedule", "NoExecute")),
    "tolerationSeconds": Int(),
}, check=check_toleration)


def _env_int(container, name):
    """(index, value) of a literal integer env value, or None."""
    for i, env in enumerate(_list(container, "env")):
        if isinstance(env, dict) and env.get("name") == name and isinstance(env.get("value"), str):
            if re.fullmatch(r"[0-9]+", env["value"]):
                return i, int(env["value"])
    return None


def _gpus(container):
    limit = _dict(_dict(container, "resources"), "limits").get("nvidia.com/gpu")
    q = parse_quantity(limit) if limit is not None else None
    return int(q) if q is not None else 0


def check_ranks(container, path, r, processes=None):
    """llama-lora's launch settings (deploy/scripts/1-train.sh): LL_NPROC ranks in groups of
    LL_TP, one rank per GPU."""
    nproc, tp = _env_int(container, "LL_NPROC"), _env_int(container, "LL_TP")
    if nproc and tp and tp[1] and nproc[1] % tp[1]:
        r.add(f"{path}.env[{tp[0]}].value",
              f"LL_TP must divide LL_NPROC ({nproc[1]}) into whole data-parallel replicas",
              str(tp[1]))
    if nproc and processes is not None and nproc[1] != processes[0]:
        r.add(f"{path}.env[{nproc[0]}].value", processes[1], str(nproc[1]))


def check_pod_spec(node, path, r):
    volumes = {}
    for i, volume in enumerate(_list(node, "volumes")):
        name = volume.get("name") if isinstance(volume, dict) else None
        if isinstance(name, str):
            if name in volumes:
                r.add(f"{path}.volumes[{i}].name", f"already used by volumes[{volumes[name]}]",
                      name)
            volumes.setdefault(name, i)
    containers = {}
    for group in ("initContainers", "containers"):
        for i, container in enumerate(_list(node, group)):
            if not isinstance(container, dict):
                continue
            cpath = f"{path}.{group}[{i}]"
            name = container.get("name")
            if isinstance(name, str):
                if name in containers:
                    r.add(f"{cpath}.name", f"already used by {containers[name]}", name)
                containers.setdefault(name, f"{group}[{i}]")
            for j, mount in enumerate(_list(container, "volumeMounts")):
                ref = mount.get("name") if isinstance(mount, dict) else None
                if isinstance(ref, str) and ref not in volumes:
                    r.add(f"{cpath}.volumeMounts[{j}].name", "no such volume", ref)
            gpus = _gpus(container)
            check_ranks(container, cpath, r, (gpus, f"one rank per GPU: {gpus} GPUs in limits")
                        if gpus else None)


POD_SPEC = Obj({
    "containers": List(CONTAINER, min_items=1),
    "initContainers": List(CONTAINER),
    "volumes": List(VOLUME),
    "restartPolicy": Str(enum=("Always", "OnFailure", "Never")),
    "nodeSelector": Map(Str(check=label_value), key_check=qualified_key),
    "tolerations": List(TOLERATION),
    "securityContext": POD_SECURITY,
    "serviceAccountName": Str(check=dns1123_subdomain),
    "automountServiceAccountToken": Bool(),
    "imagePullSecrets": List(Obj({"name": Str(check=dns1123_subdomain)}, required=("name",))),
    "terminationGracePeriodSeconds": Int(0),
    "activeDeadlineSeconds": Int(1),
    "priorityClassName": Str(check=dns1123_subdomain),
    "schedulerName": Str(),
    "hostNetwork": Bool(),
    "hostIPC": Bool(),
    "dnsPolicy": Str(enum=("ClusterFirst", "ClusterFirstWithHostNet", "Default", "None")),
    "enableServiceLinks": Bool(),
    "shareProcessNamespace": Bool(),
}, required=("containers",), check=check_pod_spec)

POD_TEMPLATE = Obj({"metadata": TEMPLATE_META, "spec": POD_SPEC}, required=("spec",))

PVC_SPEC = Obj({
    "accessModes": List(Str(enum=("ReadWriteOnce", "ReadOnlyMany", "ReadWriteMany",
                                  "ReadWriteOncePod")), min_items=1),
    "resources": Obj({
        "requests": Map(Quantity(), key_check=lambda k: None if k == "storage"
                        else "only storage can be requested"),
        "limits": Map(Quantity(), key_check=lambda k: None if k == "storage"
                      else "only storage can be limited"),
    }, required=("requests",), check=lambda n, p, r: None if "storage" in _dict(n, "requests")
        else r.add(f"{p}.requests.storage", "required field missing")),
    "storageClassName": Str(),
    "volumeMode": Str(enum=("Filesystem", "Block")),
    "volumeName": Str(check=dns1123_subdomain),
    "selector": LABEL_SELECTOR,
}, required=("accessModes", "resources"))

# --- Kubeflow MPI Operator, kubeflow.org/v2beta1 ------------------------------------------

REPLICA_SPEC = Obj({
    "replicas": Int(0),
    "template": POD_TEMPLATE,
    "restartPolicy": Str(enum=("Always", "OnFailure", "Never", "ExitCode")),
}, required=("template",))

RUN_POLICY = Obj({
    "cleanPodPolicy": Str(enum=("None", "Running", "All")),
    "ttlSecondsAfterFinished": Int(0),
    "activeDeadlineSeconds": Int(1),
    "backoffLimit": Int(0),
    "schedulingPolicy": Obj({
        "minAvailable": Int(1),
        "queue": Str(),
        "minResources": Map(Quantity(), key_check=resource_name),
        "priorityClass": Str(),
        "scheduleTimeoutSeconds": Int(1),
    }),
    "suspend": Bool(),
    "managedBy": Str(enum=("kubeflow.org/mpi-operator", "kueue.x-k8s.io/multikueue")),
})

MPIJOB_SPEC = Obj({
    "slotsPerWorker": Int(1),
    "runLauncherAsWorker": Bool(),
    "runPolicy": RUN_POLICY,
    "mpiReplicaSpecs": Map(REPLICA_SPEC, key_check=lambda k: None if k in ("Launcher", "Worker")
                           else "must be Launcher or Worker"),
    "sshAuthMountPath": Str(check=absolute_path),
    "launcherCreationPolicy": Str(enum=("AtStartup", "WaitForWorkersReady")),
    "mpiImplementation": Str(enum=("OpenMPI", "Intel", "MPICH")),
}, required=("mpiReplicaSpecs",))


def check_mpijob(doc, r):
    spec = _dict(doc, "spec")
    replica_specs = _dict(spec, "mpiReplicaSpecs")
    base = "spec.mpiReplicaSpecs"
    launcher, worker = _dict(replica_specs, "Launcher"), _dict(replica_specs, "Worker")
    if "mpiReplicaSpecs" in spec and not launcher:
        r.add(f"{base}.Launcher", "required: the pod that runs mpirun")
    if launcher.get("replicas", 1) != 1 and isinstance(launcher.get("replicas"), int):
        r.add(f"{base}.Launcher.replicas", "must be 1", launcher["replicas"])
    if "mpiReplicaSpecs" in spec and not worker and not spec.get("runLauncherAsWorker"):
        r.add(f"{base}.Worker", "required unless runLauncherAsWorker is true")
    for role, replica in (("Launcher", launcher), ("Worker", worker)):
        template_spec = _dict(_dict(replica, "template"), "spec")
        if "restartPolicy" in template_spec:
            r.add(f"{base}.{role}.template.spec.restartPolicy",
                  f"the operator overrides it: set {base}.{role}.restartPolicy instead")
    # Pod names the operator derives: <name>-launcher, <name>-worker-<i> (DNS-1035 labels).
    name = _dict(doc, "metadata").get("name")
    workers = worker.get("replicas", 1) if isinstance(worker.get("replicas", 1), int) else 1
    if isinstance(name, str) and not dns1123_subdomain(name):
        for derived in (f"{name}-launcher", f"{name}-worker-{max(workers - 1, 0)}"):
            if error := dns1035_label(derived):
                r.add("metadata.name", f"derived pod name {derived!r} is {error}", name)
                break
    # llama-lora's launch settings against the job's shape.
    slots = spec.get("slotsPerWorker", 1)
    if not isinstance(slots, int) or isinstance(slots, bool):
        return
    ranks = slots * (workers + (1 if spec.get("runLauncherAsWorker") is True else 0))
    containers = _list(_dict(_dict(launcher, "template"), "spec"), "containers")
    if containers and isinstance(containers[0], dict):
        cpath = f"{base}.Launcher.template.spec.containers[0]"
        check_ranks(containers[0], cpath, r,
                    (ranks, f"the job has {ranks} slots (slotsPerWorker {slots} x workers)"))
        tp = _env_int(containers[0], "LL_TP")
        if tp and tp[1] and slots % tp[1]:
            r.add(f"{cpath}.env[{tp[0]}].value", f"a tensor-parallel group must fit in one "
                  f"worker: LL_TP must divide slotsPerWorker ({slots})", str(tp[1]))
    for i, container in enumerate(_list(_dict(_dict(worker, "template"), "spec"), "containers")):
        gpus = _gpus(container)
        if gpus and gpus != slots:
            r.add(f"{base}.Worker.template.spec.containers[{i}].resources.limits"
                  '["nvidia.com/gpu"]', f"one rank per GPU: slotsPerWorker is {slots}", gpus)


# --- documents ----------------------------------------------------------------------------

def _top(spec_schema, spec_required=True):
    return Obj({"apiVersion": Str(), "kind": Str(), "metadata": OBJECT_META,
                "spec": spec_schema},
               required=("apiVersion", "kind", "metadata") + (("spec",) if spec_required else ()))


KINDS = {
    ("v1", "Pod"): (_top(POD_SPEC), None),
    ("v1", "PersistentVolumeClaim"): (_top(PVC_SPEC), None),
    ("kubeflow.org/v2beta1", "MPIJob"): (_top(MPIJOB_SPEC), check_mpijob),
}


class _Loader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML keeps the last one silently)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def validate_manifest(path, shown, problems, image_files):
    try:
        docs = list(yaml.load_all(path.read_text(encoding="utf-8"), Loader=_Loader))
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{shown}: cannot read: {error}")
        return
    except yaml.YAMLError as error:
        problems.append(f"{shown}: invalid YAML: {' '.join(str(error).split())}")
        return
    docs = [d for d in docs if d is not None]
    if not docs:
        problems.append(f"{shown}: no Kubernetes object in the file")
    for index, doc in enumerate(docs):
        r = Reporter(f"{shown}: doc {index}: ", problems, image_files)
        if not isinstance(doc, dict):
            r.add("", f"expected a mapping (a Kubernetes object), got {describe(doc)}")
            continue
        api, kind = doc.get("apiVersion"), doc.get("kind")
        entry = KINDS.get((api, kind))
        if entry is None:
            known = ", ".join(f"{a} {k}" for a, k in KINDS)
            r.add("apiVersion/kind", f"not a kind this validator knows ({known})",
                  f"{api} {kind}")
            continue
        schema, check = entry
        schema.validate(doc, "", r)
        if check:
            check(doc, r)


# --- Dockerfiles --------------------------------------------------------------------------

def dockerfile_instructions(text):
    """(line, INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, current, start = [], "", 0
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if current and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if not current:
            start = number
        if stripped.endswith("\\"):
            current += stripped[:-1] + " "
            continue
        current += stripped
        word, _, rest = current.partition(" ")
        out.append((start, word.upper(), rest.strip()))
        current = ""
    if current:
        word, _, rest = current.partition(" ")
        out.append((start, word.upper(), rest.strip()))
    return out


def _copy_parts(arguments):
    """(flags, sources, destination) of a COPY/ADD."""
    words = arguments.split()
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags[key] = value
    rest = " ".join(words)
    if rest.startswith("["):
        try:
            words = json.loads(rest)
        except ValueError:
            words = rest.split()
    return flags, words[:-1], (words[-1] if words else "")


def _ignore_regex(pattern):
    out, i = "", 0
    while i < len(pattern):
        if pattern.startswith("**", i):
            out += ".*"
            i += 2
        elif pattern[i] == "*":
            out += "[^/]*"
            i += 1
        elif pattern[i] == "?":
            out += "[^/]"
            i += 1
        else:
            out += re.escape(pattern[i])
            i += 1
    return re.compile(out)


def read_dockerignore(path):
    rules = []
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        pattern = posixpath.normpath(line.lstrip("!").strip().lstrip("/"))
        rules.append((negate, _ignore_regex(pattern)))
    return rules


def ignored(rules, relative):
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = relative.split("/")
    prefixes = ["/".join(parts[:n]) for n in range(1, len(parts) + 1)]
    excluded = False
    for negate, regex in rules:
        if any(regex.fullmatch(p) for p in prefixes):
            excluded = not negate
    return excluded


def _sent(rules, context, source):
    """Whether the build context holds `source` after the .dockerignore."""
    relative = posixpath.normpath(source.lstrip("/"))
    matches = sorted(context.glob(relative)) if any(c in relative for c in "*?[") else \
        [context / relative]
    matches = [m for m in matches if m.exists()]
    if not matches:
        return False, "no such file in the build context"
    for match in matches:
        files = [match] if match.is_file() else (f for f in match.rglob("*") if f.is_file())
        if any(not ignored(rules, f.relative_to(context).as_posix()) for f in files):
            return True, ""
    return False, "excluded from the build context by the .dockerignore"


def validate_dockerfile(path, shown, problems, context):
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        problems.append(f"{shown}: cannot read: {error}")
        return
    ignore_file = path.with_name(path.name + ".dockerignore")
    if not ignore_file.exists():
        ignore_file = context / ".dockerignore"
    rules = read_dockerignore(ignore_file) if ignore_file.exists() else []

    def add(line, message):
        problems.append(f"{shown}: line {line}: {message}")

    stages = []  # {"name", "line", "instructions"}
    for line, word, args in dockerfile_instructions(text):
        if word == "FROM":
            m = re.fullmatch(r"(?:--\S+\s+)*(\S+)(?:\s+[Aa][Ss]\s+(\S+))?", args)
            name = m.group(2).lower() if m and m.group(2) else None
            if name and any(s["name"] == name for s in stages):
                add(line, f"FROM ... AS {name}: a stage of that name already exists")
            stages.append({"name": name, "line": line, "instructions": []})
        elif stages:
            stages[-1]["instructions"].append((line, word, args))
    if len(stages) < 2:
        problems.append(f"{shown}: needs a multi-stage build (a build stage and a runtime "
                        f"stage), found {len(stages)} FROM")
        if not stages:
            return

    def runs_setup(stage, full_build):
        for _, word, args in stage["instructions"]:
            m = re.search(r"(?:^|[\s;&|(])(?:\./)?scripts/setup(?=$|[\s;&|)])(.*)", args)
            deps_only = m is not None and m.group(1).strip().startswith("--deps")
            if word == "RUN" and m and not (full_build and deps_only):
                return True
        return False

    final = stages[-1]
    build = [i for i, s in enumerate(stages[:-1]) if runs_setup(s, True)]
    if not build:
        problems.append(f"{shown}: no build stage runs scripts/setup (the README's set-up)")
    if runs_setup(final, False):
        add(final["line"], "the final stage runs scripts/setup: build tools belong in the "
            "build stage")
    names = {s["name"]: i for i, s in enumerate(stages) if s["name"]}
    copies_build = False
    for index, stage in enumerate(stages):
        for line, word, args in stage["instructions"]:
            if word not in ("COPY", "ADD"):
                continue
            flags, sources, _ = _copy_parts(args)
            if "from" in flags:
                ref = flags["from"].lower()
                origin = names.get(ref, int(ref) if ref.isdigit() else None)
                if origin is None and not re.search(r"[:/]", ref):
                    add(line, f"{word} --from={flags['from']}: no such stage")
                elif origin is not None and origin >= index:
                    add(line, f"{word} --from={flags['from']}: not an earlier stage")
                elif origin in build and stage is final:
                    copies_build = True
                continue
            for source in sources:
                if "$" in source or re.match(r"[a-z]+://", source):
                    continue
                ok, why = _sent(rules, context, source)
                if not ok:
                    add(line, f"{word} {source}: {why}")
    if build and not copies_build:
        add(final["line"], "the final stage copies nothing from the build stage")
    users = [(line, args) for line, word, args in final["instructions"] if word == "USER"]
    if not users:
        add(final["line"], "the final stage has no USER: the image would run as root")
    else:
        line, user = users[-1]
        if user.split(":")[0] in ("root", "0"):
            add(line, f"USER {user}: the final stage must run as a non-root user")
    if not any(word in ("ENTRYPOINT", "CMD") for _, word, _ in final["instructions"]):
        add(final["line"], "the final stage has no ENTRYPOINT or CMD")


def image_files(dockerfiles):
    """Destination -> source (relative to the repository) of what the final stages COPY
    from the build context; a destination ending in / maps a folder."""
    files = {}
    for path in dockerfiles:
        try:
            instructions = dockerfile_instructions(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError):
            continue
        starts = [i for i, (_, word, _) in enumerate(instructions) if word == "FROM"]
        for _, word, args in instructions[starts[-1] + 1:] if starts else []:
            flags, sources, dest = _copy_parts(args)
            if word == "COPY" and "from" not in flags and len(sources) == 1 and dest:
                source = sources[0]
                if dest.endswith("/") and (ROOT / source).is_dir():
                    files[dest] = source.rstrip("/") + "/"
                elif not dest.endswith("/"):
                    files[dest] = source
    return files


# --- command line -------------------------------------------------------------------------

def _is_dockerfile(path):
    return path.name.startswith("Dockerfile") and not path.name.endswith(".dockerignore")


def collect(paths):
    files = []
    for path in paths:
        if path.is_dir():
            files += sorted(p for p in path.rglob("*") if p.is_file() and (
                p.suffix in (".yaml", ".yml") or _is_dockerfile(p)))
        else:
            files.append(path)
    return files


def shown_path(path):
    try:
        return path.resolve().relative_to(ROOT).as_posix()
    except ValueError:
        return str(path)


def validate_paths(paths, context=ROOT):
    """Problems (one line each) in the given files or folders; [] when all are valid."""
    problems = []
    files = collect(paths)
    mapping = image_files(sorted(p for p in DEPLOY.glob("Dockerfile*") if _is_dockerfile(p)))
    for path in files:
        shown = shown_path(path)
        if not path.exists():
            problems.append(f"{shown}: no such file")
        elif _is_dockerfile(path):
            validate_dockerfile(path, shown, problems, context)
        elif path.suffix in (".yaml", ".yml"):
            validate_manifest(path, shown, problems, mapping)
        else:
            problems.append(f"{shown}: neither a Dockerfile nor a .yaml manifest")
    return problems, len(files)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("paths", nargs="*", type=Path,
                        help="files or folders (default: deploy/k8s and deploy/Dockerfile.*)")
    parser.add_argument("--context", type=Path, default=ROOT,
                        help="Docker build context of the Dockerfiles (default: the repository)")
    args = parser.parse_args(argv)
    paths = args.paths or [DEPLOY / "k8s"] + sorted(
        p for p in DEPLOY.glob("Dockerfile*") if _is_dockerfile(p))
    problems, count = validate_paths(paths, args.context.resolve())
    for problem in problems:
        print(problem)
    if problems:
        print(f"validate.py: {len(problems)} problem(s) in {count} file(s)", file=sys.stderr)
        return 1
    if count == 0:
        print("validate.py: no manifest or Dockerfile found", file=sys.stderr)
        return 1
    print(f"validate.py: {count} file(s) valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
