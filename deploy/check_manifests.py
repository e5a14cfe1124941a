#!/usr/bin/env python3
"""Checks deploy/ without a cluster; deploy/check.sh runs it in its own virtualenv.

1. Every YAML document under deploy/kubernetes is validated against the JSON schema of its
   apiVersion/kind in deploy/kubernetes/schemas (a kind with no schema is an error). The SpinApp
   CRD schema is made strict the way the API server treats a structural schema (an unknown field
   is an error, as under kubectl's default strict field validation), and its metadata is checked
   as ObjectMeta.
2. Consistency with spin.toml and with spin-operator's rules: one SpinApp per component, HPAs,
   the runtime-config Secret's TOML, variables, probes, and the Ingress routing every spin.toml
   route to the Service of the SpinApp that retains its component.
3. A self-test: deliberately broken variants of the manifests (and of the runtime config) must
   each be rejected with the error that names the breakage, so a check that silently stopped
   working, or fires for another reason, fails the run.

Prints one line per checked document, then `deploy: N documents valid`; exit status 1 on any error.
"""
import base64
import copy
import json
import pathlib
import re
import sys

if sys.version_info < (3, 11):
    sys.exit("deploy: needs Python 3.11 or newer (tomllib)")
import tomllib

import jsonschema
import yaml

DEPLOY = pathlib.Path(__file__).resolve().parent
ROOT = DEPLOY.parent
KUBE = DEPLOY / "kubernetes"
SCHEMAS = KUBE / "schemas"
LOCAL_RUNTIME_CONFIG = DEPLOY / "runtime-config.libsql.toml"

SCHEMA_FILES = {
    ("core.spinkube.dev/v1alpha1", "SpinApp"): "spinapp-core.spinkube.dev-v1alpha1.json",
    ("v1", "Namespace"): "namespace-v1.json",
    ("v1", "Secret"): "secret-v1.json",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscaler-autoscaling-v2.json",
    ("networking.k8s.io/v1", "Ingress"): "ingress-networking-v1.json",
    ("kustomize.config.k8s.io/v1beta1", "Kustomization"): "kustomization.json",
}
TRANSFORMER_CONFIG_SCHEMA = "kustomizeconfig.json"
OBJECT_META = "io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
EXECUTOR = "containerd-shim-spin"
SERVICE_PORT = 80  # spin-operator's Service for a SpinApp: named after it, port 80
RUNTIME_CONFIG_KEY = "runtime-config.toml"  # the one key spin-operator mounts from loadFromSecret
# Every top-level runtime-config key Spin 4.0.2 reads (crates/runtime-config and the factors'
# runtime_config modules); it refuses any other at startup, so a typo here would crash every pod.
RUNTIME_CONFIG_TABLES = {"sqlite_database", "key_value_store", "variables_provider", "config_provider",
                         "llm_compute", "state_dir", "log_dir", "max_instance_memory", "outbound_http",
                         "outbound_networking", "client_tls"}
VARIABLE_NAME = re.compile(r"^[a-z][a-z0-9_]*[a-z0-9]$")


# ---------------------------------------------------------------- loading

class StrictLoader(yaml.SafeLoader):
    """SafeLoader that refuses duplicate mapping keys (kubectl does too)."""


def _mapping_without_duplicates(loader, node, deep=False):
    seen = set()
    for key_node, _ in node.value:
        key = loader.construct_object(key_node, deep=deep)
        if key in seen:
            raise yaml.constructor.ConstructorError(None, None, f"duplicate key {key!r}", key_node.start_mark)
        seen.add(key)
    return yaml.SafeLoader.construct_mapping(loader, node, deep)


StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _mapping_without_duplicates)


class Doc:
    """One YAML document, with its file and position so that every message can point at it."""

    def __init__(self, path, index, data):
        self.path, self.index, self.data = path, index, data

    @property
    def label(self):
        return f"{self.path.relative_to(DEPLOY)}[{self.index}]"

    @property
    def kind(self):
        return self.data.get("kind") if isinstance(self.data, dict) else None

    @property
    def name(self):
        meta = self.data.get("metadata") if isinstance(self.data, dict) else None
        return meta.get("name") if isinstance(meta, dict) else None

    def describe(self):
        if self.kind:
            return f"{self.kind}/{self.name}" if self.name else self.kind
        return "kustomize transformer config"


def load_docs():
    docs, errors = [], []
    files = sorted(p for p in KUBE.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())
    for path in files:
        try:
            loaded = list(yaml.load_all(path.read_text(), Loader=StrictLoader))
        except yaml.YAMLError as err:
            errors.append(f"{path.relative_to(DEPLOY)}: not YAML: {err}")
            continue
        docs.extend(Doc(path, i, data) for i, data in enumerate(loaded) if data is not None)
    return docs, errors


def close_objects(node):
    """additionalProperties: false wherever a structural schema lists properties (unknown fields)."""
    if isinstance(node, dict):
        for value in node.values():
            close_objects(value)
        if (node.get("type") == "object" and "properties" in node and "additionalProperties" not in node
                and not node.get("x-kubernetes-preserve-unknown-fields")):
            node["additionalProperties"] = False
    elif isinstance(node, list):
        for value in node:
            close_objects(value)
    return node


def load_validators():
    raw = {key: json.loads((SCHEMAS / name).read_text()) for key, name in SCHEMA_FILES.items()}
    spinapp = close_objects(raw[("core.spinkube.dev/v1alpha1", "SpinApp")])
    object_meta_defs = raw[("v1", "Secret")]["$defs"]
    spinapp["$defs"] = {**object_meta_defs, **spinapp.get("$defs", {})}
    spinapp["properties"]["metadata"] = {"$ref": f"#/$defs/{OBJECT_META}"}
    validators = {}
    for key, schema in raw.items():
        jsonschema.Draft202012Validator.check_schema(schema)
        validators[key] = jsonschema.Draft202012Validator(schema)
    transformer = json.loads((SCHEMAS / TRANSFORMER_CONFIG_SCHEMA).read_text())
    return validators, jsonschema.Draft202012Validator(transformer)


def load_spin_manifest():
    spin = tomllib.loads((ROOT / "spin.toml").read_text())
    components = spin.get("component", {})
    routes = []
    for trigger in spin.get("trigger", {}).get("http", []):
        if isinstance(trigger.get("route"), str) and isinstance(trigger.get("component"), str):
            routes.append((trigger["route"], trigger["component"]))
    return spin, components, routes


# ---------------------------------------------------------------- Spin and ingress routing models

EXACT, PARAM, WILDCARD = 0, 1, 2  # Spin's precedence by segment kind: exact > :param > wildcard


def parse_route(route):
    """A spin.toml route as (kind, literal) segments, normalised the way Spin does it."""
    route = route if route.startswith("/") else "/" + route
    if route.endswith("/"):
        route = route[:-1]
    parts = route.strip("/").split("/") if route.strip("/") else []
    segments = []
    for i, part in enumerate(parts):
        if part in ("...", "*") and i == len(parts) - 1:
            segments.append((WILDCARD, None))
        elif part.startswith(":"):
            segments.append((PARAM, None))
        else:
            segments.append((EXACT, part))
    return segments


def route_matches(segments, path):
    parts = path.strip("/").split("/") if path.strip("/") else []
    for i, (kind, literal) in enumerate(segments):
        if kind == WILDCARD:
            return True
        if i >= len(parts) or (kind == EXACT and parts[i] != literal):
            return False
    return len(parts) == len(segments)


def spin_component_for(routes, path):
    """The component Spin's router picks for a request path (first match in precedence order)."""
    ranked = sorted(enumerate(routes), key=lambda item: ([k for k, _ in parse_route(item[1][0])], item[0]))
    for _, (route, component) in ranked:
        if route_matches(parse_route(route), path):
            return component, route
    return None, None


def sample_paths(route):
    """Request paths that exercise a route: bare, with a trailing slash, and (for a wildcard) one
    and two segments below it. A `:param` gets a non-empty value only: Spin would route an empty
    one (`/registries//images`), but nginx merges the slashes before it picks a location, and an
    empty id is no valid request to either component anyway. The neighbour `<base>x` is no match
    for the route itself (`/x/...` does not take `/xy`) but may be another route's: an Ingress
    prefix or regex that is too loose shows up there."""
    segments = parse_route(route)
    base = "/" + "/".join("p1" if kind == PARAM else literal for kind, literal in segments if kind != WILDCARD)
    out = [base, base.rstrip("/") + "/", base.rstrip("/") + "x"]
    if segments and segments[-1][0] == WILDCARD:
        out += [base.rstrip("/") + "/x", base.rstrip("/") + "/x/y"]
    return list(dict.fromkeys(out))


def ingress_pick(paths, request, regex_mode):
    """The Ingress path that serves `request`: ingress-nginx with use-regex (every path a
    case-insensitive regex anchored at the start, longest path first, Exact before all), or else the
    Ingress spec's rules (Exact, then the longest element-wise Prefix)."""
    for entry in paths:
        if entry["pathType"] == "Exact" and entry["path"] == request:
            return entry
    candidates = [e for e in paths if e["pathType"] != "Exact"]
    if regex_mode:
        for entry in sorted(candidates, key=lambda e: -len(e["path"])):
            if re.match(entry["path"], request, re.IGNORECASE):
                return entry
        return None
    best = None
    request_parts = [p for p in request.split("/") if p]
    for entry in candidates:
        if entry["pathType"] != "Prefix":
            continue
        parts = [p for p in entry["path"].split("/") if p]
        if request_parts[:len(parts)] == parts and (best is None or len(parts) > len(best["_parts"])):
            best = dict(entry, _parts=parts)
    return best


# ---------------------------------------------------------------- checks

def check_runtime_config(text, where, labels):
    try:
        config = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        return [f"{where}: not TOML: {err}"]
    errors = []
    unknown = sorted(set(config) - RUNTIME_CONFIG_TABLES)
    if unknown:
        errors.append(f"{where}: unknown top-level key(s) {unknown}; Spin refuses them")
    databases = config.get("sqlite_database", {})
    if not isinstance(databases, dict):
        return errors + [f"{where}: sqlite_database must be a table"]
    for label in sorted(set(labels) | {"default"}):
        if label not in databases:
            errors.append(f"{where}: no [sqlite_database.{label}]: every replica would get its own local database")
    for label, database in sorted(databases.items()):
        table = f"{where} [sqlite_database.{label}]"
        if not isinstance(database, dict):
            errors.append(f"{table}: must be a table")
            continue
        if database.get("type") != "libsql":
            errors.append(f"{table}: type must be \"libsql\" (one database shared by every replica), "
                          f"not {database.get('type')!r}")
            continue
        extra = sorted(set(database) - {"type", "url", "token"})
        if extra:
            errors.append(f"{table}: unknown key(s) {extra}; Spin accepts only type, url and token")
        for key in ("url", "token"):
            if not isinstance(database.get(key), str):
                errors.append(f"{table}: `{key}` is required and must be a string")
        url = database.get("url")
        if isinstance(url, str) and not url.startswith(("https://", "http://")):
            errors.append(f"{table}: url {url!r} must start with https:// or http:// "
                          "(Spin talks to libSQL over HTTP(S) only; libsql:// is refused)")
    return errors


def secret_value(secret, key):
    """A Secret's value for key, from stringData or (base64) data; None if absent."""
    string_data = secret.get("stringData") or {}
    if key in string_data:
        return string_data[key]
    data = secret.get("data") or {}
    if key in data:
        try:
            return base64.b64decode(data[key], validate=True).decode()
        except (ValueError, UnicodeDecodeError):
            return None
    return None


def image_repository(image):
    """An image reference without its tag or digest, as kustomize's `images[].name` matches it. A
    colon before the last slash is a registry port (`localhost:5000/app`), not a tag."""
    image = image.split("@", 1)[0]
    name, sep, tag = image.rpartition(":")
    return name if sep and "/" not in tag else image


def check_consistency(docs, local_config_text):
    errors = []
    spin, components, routes = load_spin_manifest()
    by_kind = {}
    for doc in docs:
        if doc.kind:
            by_kind.setdefault(doc.kind, []).append(doc)
    spinapps = by_kind.get("SpinApp", [])
    hpas = by_kind.get("HorizontalPodAutoscaler", [])
    secrets = {d.name: d.data for d in by_kind.get("Secret", []) if d.name}
    app_by_component = {}

    seen = set()
    for doc in docs:
        if doc.kind == "Kustomization" or not doc.kind:
            continue
        if not isinstance(doc.name, str) or not doc.name:
            errors.append(f"{doc.label}: metadata.name is required")
        elif (doc.kind, doc.name) in seen:
            errors.append(f"{doc.label}: a second {doc.kind} named {doc.name}")
        seen.add((doc.kind, doc.name))

    # spin.toml itself: every component reaches the shared database under `default`.
    labels = set()
    for cid, component in components.items():
        databases = component.get("sqlite_databases", [])
        labels.update(databases)
        if "default" not in databases:
            errors.append(f"spin.toml: component {cid} does not list \"default\" in sqlite_databases")

    # SpinApps: one per component, spin-operator's own rules, shared image and runtime config.
    required_vars = sorted(name for name, var in spin.get("variables", {}).items()
                           if isinstance(var, dict) and var.get("required"))
    images, runtime_secrets = set(), set()
    for doc in spinapps:
        spec = doc.data.get("spec") or {}
        where = f"SpinApp {doc.name}"
        retained = spec.get("components")
        if not (isinstance(retained, list) and len(retained) == 1 and retained[0] in components):
            errors.append(f"{where}: spec.components must be exactly one component id of spin.toml "
                          f"({', '.join(components)}), not {retained!r}")
        else:
            app_by_component.setdefault(retained[0], []).append(doc.name)
        if spec.get("executor") != EXECUTOR:
            errors.append(f"{where}: executor must be {EXECUTOR}")
        replicas = spec.get("replicas", 0)
        if spec.get("enableAutoscaling"):
            if replicas:
                errors.append(f"{where}: replicas cannot be set when enableAutoscaling is true "
                              "(spin-operator's webhook refuses it)")
        elif not isinstance(replicas, int) or replicas < 1:
            errors.append(f"{where}: replicas must be > 0 without enableAutoscaling")
        images.add(spec.get("image"))
        runtime = spec.get("runtimeConfig") or {}
        if not runtime.get("loadFromSecret"):
            errors.append(f"{where}: runtimeConfig.loadFromSecret must name the shared runtime-config Secret")
        else:
            runtime_secrets.add(runtime["loadFromSecret"])
        others = sorted(k for k in runtime if k != "loadFromSecret")
        if others and runtime.get("loadFromSecret"):
            errors.append(f"{where}: runtimeConfig.{others} is ignored when loadFromSecret is set")
        provided = {}
        for var in spec.get("variables") or []:
            name = var.get("name")
            provided[name] = var
            if name not in spin.get("variables", {}) or not VARIABLE_NAME.match(name or "") or "__" in name:
                errors.append(f"{where}: variable {name!r} is not an application variable of spin.toml")
            ref = ((var.get("valueFrom") or {}).get("secretKeyRef")) or None
            if ref and secret_value(secrets.get(ref.get("name"), {}), ref.get("key")) is None:
                errors.append(f"{where}: variable {name}: Secret {ref.get('name')} with key {ref.get('key')} "
                              "is not among the manifests")
        for name in required_vars:
            if name not in provided:
                errors.append(f"{where}: required variable {name} is not set (Spin refuses to start without it)")
        own = [(r, c) for r, c in routes if retained and c in retained]
        for probe in ("readiness", "liveness"):
            path = (((spec.get("checks") or {}).get(probe) or {}).get("httpGet") or {}).get("path")
            if path and not path.startswith("/.well-known/spin/") and spin_component_for(own, path)[0] is None:
                errors.append(f"{where}: {probe} probe {path} is no route of {retained}: it would answer 404")
        requests = (spec.get("resources") or {}).get("requests") or {}
        for hpa in hpas:
            target = (hpa.data.get("spec") or {}).get("scaleTargetRef") or {}
            if target.get("name") != doc.name:
                continue
            for metric in (hpa.data.get("spec") or {}).get("metrics") or []:
                resource = metric.get("resource") or {}
                if (resource.get("target") or {}).get("type") == "Utilization" and resource.get("name") not in requests:
                    errors.append(f"{where}: HPA {hpa.name} scales on {resource.get('name')} utilization but the "
                                  f"SpinApp sets no resources.requests.{resource.get('name')}")
    for cid in components:
        names = app_by_component.get(cid, [])
        if len(names) != 1:
            errors.append(f"component {cid}: needs exactly one SpinApp with spec.components [{cid}], found {names}")
    if len(images) > 1:
        errors.append(f"SpinApps: all components come from one image, found {sorted(map(str, images))}")
    if len(runtime_secrets) > 1:
        errors.append(f"SpinApps: all must share one runtime-config Secret, found {sorted(runtime_secrets)}")

    # HPAs: one per SpinApp, aimed at the Deployment spin-operator creates (named after the SpinApp).
    app_names = {d.name for d in spinapps}
    autoscaled = {d.name for d in spinapps if (d.data.get("spec") or {}).get("enableAutoscaling")}
    targeted = {}
    for hpa in hpas:
        spec = hpa.data.get("spec") or {}
        target = spec.get("scaleTargetRef") or {}
        if (target.get("apiVersion"), target.get("kind")) != ("apps/v1", "Deployment") or target.get("name") not in app_names:
            errors.append(f"HPA {hpa.name}: scaleTargetRef must be the apps/v1 Deployment of a SpinApp "
                          f"({', '.join(sorted(app_names))}), not {target}")
            continue
        targeted.setdefault(target["name"], []).append(hpa.name)
        if target["name"] not in autoscaled:
            errors.append(f"HPA {hpa.name}: SpinApp {target['name']} needs enableAutoscaling: true")
        if isinstance(spec.get("maxReplicas"), int) and spec.get("minReplicas", 1) > spec["maxReplicas"]:
            errors.append(f"HPA {hpa.name}: minReplicas exceeds maxReplicas")
    for name in sorted(app_names):
        if len(targeted.get(name, [])) != 1:
            errors.append(f"SpinApp {name}: needs exactly one HPA targeting Deployment {name}, found {targeted.get(name, [])}")

    # The runtime config: the shared Secret's TOML, and the local file for `spin up`.
    for name in sorted(runtime_secrets):
        if name not in secrets:
            errors.append(f"Secret {name} (runtimeConfig.loadFromSecret) is not among the manifests; "
                          "spin-operator mounts it as optional, so the pods would start on local databases")
            continue
        text = secret_value(secrets[name], RUNTIME_CONFIG_KEY)
        if text is None:
            errors.append(f"Secret {name}: needs the key {RUNTIME_CONFIG_KEY}")
        else:
            errors += check_runtime_config(text, f"Secret {name} {RUNTIME_CONFIG_KEY}", labels)
    errors += check_runtime_config(local_config_text, LOCAL_RUNTIME_CONFIG.name, labels)

    # Ingress: every spin.toml route reaches the Service of the SpinApp retaining its component.
    service_for = {cid: names[0] for cid, names in app_by_component.items() if len(names) == 1}
    hosts = {}
    for ing in by_kind.get("Ingress", []):
        regex_mode = ((ing.data.get("metadata") or {}).get("annotations") or {}).get(
            "nginx.ingress.kubernetes.io/use-regex") == "true"
        for rule in (ing.data.get("spec") or {}).get("rules") or []:
            for entry in (rule.get("http") or {}).get("paths") or []:
                service = ((entry.get("backend") or {}).get("service")) or {}
                port = (service.get("port") or {}).get("number")
                where = f"Ingress {ing.name} path {entry.get('path')}"
                if service.get("name") not in app_names:
                    errors.append(f"{where}: backend {service.get('name')!r} is no SpinApp's Service")
                if port != SERVICE_PORT:
                    errors.append(f"{where}: the SpinApp Service listens on port number {SERVICE_PORT}")
                if entry.get("pathType") == "ImplementationSpecific" and not regex_mode:
                    errors.append(f"{where}: ImplementationSpecific needs nginx.ingress.kubernetes.io/use-regex")
                try:
                    re.compile(entry.get("path") or "")
                except re.error as err:
                    errors.append(f"{where}: not a regular expression: {err}")
                    continue
                hosts.setdefault(rule.get("host", "*"), {"regex": False, "paths": []})
                hosts[rule.get("host", "*")]["regex"] |= regex_mode
                hosts[rule.get("host", "*")]["paths"].append(dict(entry, _service=service.get("name"), _ingress=ing.name))
    if not hosts:
        errors.append("Ingress: none routes the API")
    for host, group in sorted(hosts.items()):
        used = set()
        for route, _ in routes:
            for path in sample_paths(route):
                component, winner = spin_component_for(routes, path)
                if component is None:
                    # Spin answers 404 to it whichever pod gets it.
                    continue
                picked = ingress_pick(group["paths"], path, group["regex"])
                if picked is not None:
                    used.add((picked["_ingress"], picked["path"]))
                want = service_for.get(component)
                got = picked["_service"] if picked else None
                if got != want:
                    errors.append(f"Ingress (host {host}): {path} is route {winner} of {component} in spin.toml, "
                                  f"but goes to {got or 'no backend'} (want Service {want})")
        for entry in group["paths"]:
            if (entry["_ingress"], entry["path"]) not in used:
                errors.append(f"Ingress {entry['_ingress']} (host {host}): path {entry['path']} serves no spin.toml route")

    # kustomization.yaml: lists every manifest; its image entry names the SpinApps' image.
    kustomizations = by_kind.get("Kustomization", [])
    if len(kustomizations) != 1:
        errors.append(f"kubernetes/: needs exactly one kustomization.yaml, found {len(kustomizations)}")
    for kus in kustomizations:
        listed = kus.data.get("resources") or []
        configs = kus.data.get("configurations") or []
        manifests = {str(d.path.relative_to(kus.path.parent)) for d in docs
                     if d.kind and d.kind != "Kustomization"}
        for missing in sorted(manifests - set(listed)):
            errors.append(f"kustomization.yaml: resources does not list {missing}")
        for extra in sorted(set(listed) - manifests):
            errors.append(f"kustomization.yaml: lists {extra}, which holds no manifest here")
        for config in configs:
            if not (kus.path.parent / config).is_file():
                errors.append(f"kustomization.yaml: configurations lists {config}, which does not exist")
        repos = {image_repository(str(img)) for img in images}
        for entry in kus.data.get("images") or []:
            if entry.get("name") not in repos:
                errors.append(f"kustomization.yaml: images entry {entry.get('name')} matches no SpinApp image {sorted(repos)}")
        namespaces = [d.name for d in by_kind.get("Namespace", [])]
        if namespaces and kus.data.get("namespace") not in namespaces:
            errors.append(f"kustomization.yaml: namespace {kus.data.get('namespace')} is not the Namespace {namespaces}")
    return errors


def validate_documents(docs, validators, transformer_validator):
    """(doc, [errors]) for every document."""
    transformer_files = set()
    for doc in docs:
        if doc.kind == "Kustomization":
            transformer_files |= {(doc.path.parent / c).resolve() for c in doc.data.get("configurations") or []}
    results = []
    for doc in docs:
        if not isinstance(doc.data, dict):
            results.append((doc, ["not a mapping"]))
            continue
        key = (doc.data.get("apiVersion"), doc.data.get("kind"))
        if key in validators:
            validator = validators[key]
        elif key == (None, None) and doc.path.resolve() in transformer_files:
            validator = transformer_validator
        else:
            results.append((doc, [f"no schema for apiVersion {key[0]!r} kind {key[1]!r}"]))
            continue
        errors = []
        for err in sorted(validator.iter_errors(doc.data), key=lambda e: list(map(str, e.absolute_path))):
            where = "/".join(map(str, err.absolute_path)) or "(document)"
            errors.append(f"{where}: {err.message}")
        results.append((doc, errors))
    return results


def run(docs, local_config_text, validators, transformer_validator):
    results = validate_documents(docs, validators, transformer_validator)
    return results, check_consistency(docs, local_config_text)


# ---------------------------------------------------------------- self-test
#
# Each variant breaks the real manifests in one way and names a fragment of the error it must
# cause. Matching the message, not just "some error", keeps a variant from passing because of an
# unrelated error (or a check that fires for the wrong reason), and an error already present in
# the unmodified manifests does not count.

def _first(docs, kind):
    return next(d.data for d in docs if d.kind == kind)


def _named(docs, kind, name):
    for doc in docs:
        if doc.kind == kind and doc.name == name:
            return doc.data
    raise LookupError(f"{kind}/{name}")


def _runtime_secret(docs):
    for doc in docs:
        if doc.kind == "Secret" and RUNTIME_CONFIG_KEY in (doc.data.get("stringData") or {}):
            return doc.data
    raise LookupError("the runtime-config Secret")


def _edit_secret_toml(docs, old, new):
    secret = _runtime_secret(docs)
    text = secret["stringData"][RUNTIME_CONFIG_KEY]
    assert old in text, f"{old!r} not in the runtime-config Secret"
    secret["stringData"][RUNTIME_CONFIG_KEY] = text.replace(old, new, 1)


def _ingress_paths(docs):
    return [p for rule in _first(docs, "Ingress")["spec"]["rules"] for p in rule["http"]["paths"]]


def _drop_ingress_path(docs, path):
    ingress = _first(docs, "Ingress")
    for rule in ingress["spec"]["rules"]:
        kept = [p for p in rule["http"]["paths"] if p["path"] != path]
        if len(kept) != len(rule["http"]["paths"]):
            rule["http"]["paths"] = kept
            return
    raise LookupError(f"Ingress path {path}")


def _ingress_path(docs, path):
    for entry in _ingress_paths(docs):
        if entry["path"] == path:
            return entry
    raise LookupError(f"Ingress path {path}")


def _images_regex(docs):
    return next(p for p in _ingress_paths(docs) if p.get("pathType") == "ImplementationSpecific")


def _drop_manifest_from_kustomization(docs):
    kus = _first(docs, "Kustomization")
    kus["resources"] = [r for r in kus["resources"] if r != "ingress.yaml"]


BROKEN = [
    # Schema: types and unknown fields, as the API server's strict field validation refuses them.
    ("SpinApp replicas: \"two\"", "is not of type 'integer'",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(replicas="two")),
    ("unknown field under SpinApp spec", "Additional properties are not allowed ('replica'",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(replica=2)),
    ("unknown field under SpinApp metadata", "Additional properties are not allowed ('labelz'",
     lambda docs: _named(docs, "SpinApp", "images")["metadata"].update(labelz={})),
    ("unknown field in a SpinApp probe", "Additional properties are not allowed ('port'",
     lambda docs: _named(docs, "SpinApp", "images")["spec"]["checks"]["readiness"]["httpGet"].update(port=80)),
    ("HPA without maxReplicas", "'maxReplicas' is a required property",
     lambda docs: _first(docs, "HorizontalPodAutoscaler")["spec"].pop("maxReplicas")),
    ("a kind with no vendored schema", "no schema for apiVersion",
     lambda docs: _first(docs, "Namespace").update(apiVersion="v2")),
    # spin-operator's webhook and spin.toml.
    ("SpinApp retaining two components", "spec.components must be exactly one component id",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(components=["images", "registry"])),
    ("SpinApp retaining a component spin.toml lacks", "spec.components must be exactly one component id",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(components=["image"])),
    ("replicas together with enableAutoscaling", "replicas cannot be set when enableAutoscaling",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(replicas=2)),
    ("one SpinApp from another image", "all components come from one image",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(image="ghcr.io/OWNER/other:1")),
    ("required variable admin_token not set", "required variable admin_token is not set",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(variables=[])),
    ("variable from a Secret key that does not exist", "is not among the manifests",
     lambda docs: _named(docs, "SpinApp", "images")["spec"]["variables"][0]["valueFrom"]["secretKeyRef"]
     .update(key="admin_token")),
    ("readiness probe on another component's route", "would answer 404",
     lambda docs: _named(docs, "SpinApp", "images")["spec"]["checks"]["readiness"]["httpGet"]
     .update(path="/api/v1/health/registry")),
    ("runtime config from another Secret", "must share one runtime-config Secret",
     lambda docs: _named(docs, "SpinApp", "images")["spec"]["runtimeConfig"].update(loadFromSecret="other")),
    # HPAs.
    ("HPA aimed at a Deployment that does not exist", "scaleTargetRef must be the apps/v1 Deployment",
     lambda docs: _named(docs, "HorizontalPodAutoscaler", "images")["spec"]["scaleTargetRef"].update(name="nope")),
    ("HPA for a SpinApp without enableAutoscaling", "needs enableAutoscaling: true",
     lambda docs: _named(docs, "SpinApp", "images")["spec"].update(enableAutoscaling=False, replicas=2)),
    ("CPU utilization HPA without CPU requests", "sets no resources.requests.cpu",
     lambda docs: _named(docs, "SpinApp", "images")["spec"]["resources"].pop("requests")),
    # The runtime config Spin reads.
    ("libsql:// URL in the runtime-config Secret", "must start with https:// or http://",
     lambda docs: _edit_secret_toml(docs, 'url = "https://', 'url = "libsql://')),
    ("Secret TOML that does not parse", "not TOML",
     lambda docs: _edit_secret_toml(docs, "[sqlite_database.default]", "[sqlite_database.default")),
    ("runtime config without a token", "`token` is required",
     lambda docs: _edit_secret_toml(docs, "token =", "auth_token =")),
    ("a local SQLite file as the shared database", 'type must be "libsql"',
     lambda docs: _edit_secret_toml(docs, 'type = "libsql"', 'type = "spin"')),
    ("a misspelt top-level runtime-config table", "unknown top-level key(s) ['sqlite_databases']",
     lambda docs: _edit_secret_toml(docs, "[sqlite_database.default]", "[sqlite_databases.default]")),
    # The Ingress against spin.toml's router.
    ("Ingress without the :registry_id images route", "is route /api/v1/registries/:registry_id/images/...",
     lambda docs: _drop_ingress_path(docs, _images_regex(docs)["path"])),
    ("Ingress sending /api/v1/images to registry", "but goes to registry (want Service images)",
     lambda docs: _ingress_path(docs, "/api/v1/images")["backend"]["service"].update(name="registry")),
    ("Ingress without the DORA routes", "/api/v1/dora/... of lead-time in spin.toml, but goes to no backend",
     lambda docs: _drop_ingress_path(docs, "/api/v1/dora")),
    ("Ingress images regex that also takes /images-x", "but goes to images (want Service registry)",
     lambda docs: _images_regex(docs).update(path="/api/v1/registries/[^/]*/images")),
    ("Ingress backend on the container port", f"listens on port number {SERVICE_PORT}",
     lambda docs: _ingress_path(docs, "/api/v1/tokens")["backend"]["service"]["port"].update(number=8080)),
    ("Ingress regex without use-regex", "ImplementationSpecific needs nginx.ingress.kubernetes.io/use-regex",
     lambda docs: _first(docs, "Ingress")["metadata"].pop("annotations")),
    # kustomize.
    ("kustomization.yaml missing a manifest", "resources does not list ingress.yaml",
     _drop_manifest_from_kustomization),
    ("kustomize image name that matches no SpinApp", "matches no SpinApp image",
     lambda docs: _first(docs, "Kustomization")["images"][0].update(name="ghcr.io/OWNER/cd-image")),
]


def self_test(docs, local_config_text, validators, transformer_validator):
    """Runs every BROKEN variant; returns (failures, number of variants)."""
    def all_errors(variant_docs, config_text):
        results, consistency = run(variant_docs, config_text, validators, transformer_validator)
        return [e for _, errs in results for e in errs] + consistency

    baseline = set(all_errors(docs, local_config_text))
    failures = []
    for what, expected, mutate in BROKEN:
        broken = [Doc(d.path, d.index, copy.deepcopy(d.data)) for d in docs]
        try:
            mutate(broken)
        except (LookupError, KeyError, IndexError, StopIteration, AssertionError) as err:
            failures.append(f"self-test: cannot build the variant '{what}': {err!r}")
            continue
        new = [e for e in all_errors(broken, local_config_text) if e not in baseline]
        if not any(expected in e for e in new):
            failures.append(f"self-test: the broken variant '{what}' was not rejected with '{expected}'"
                            + (f" (errors: {new})" if new else " (no new error at all)"))

    # The local runtime config and the YAML loader, which the variants above do not reach.
    local_variants = [
        ("libsql:// URL in runtime-config.libsql.toml", 'url = "http', 'url = "libsql', "must start with"),
        ("extra key in runtime-config.libsql.toml", 'token = ""', 'token = ""\nauth_token = ""', "unknown key(s)"),
    ]
    for what, old, new_text, expected in local_variants:
        broken_local = local_config_text.replace(old, new_text, 1)
        errors = check_runtime_config(broken_local, "x", set())
        if broken_local == local_config_text or not any(expected in e for e in errors):
            failures.append(f"self-test: the broken variant '{what}' was not rejected with '{expected}'")
    try:
        yaml.load("a: 1\na: 2\n", Loader=StrictLoader)
        failures.append("self-test: a YAML mapping with a duplicate key loaded")
    except yaml.constructor.ConstructorError:
        pass
    return failures, len(BROKEN) + len(local_variants) + 1


def main():
    docs, load_errors = load_docs()
    validators, transformer_validator = load_validators()
    try:
        local_config_text = LOCAL_RUNTIME_CONFIG.read_text()
    except OSError as err:
        load_errors.append(f"{LOCAL_RUNTIME_CONFIG.name}: {err.strerror}")
        local_config_text = ""
    results, consistency = run(docs, local_config_text, validators, transformer_validator)
    invalid = 0
    for doc, errors in results:
        print(f"{'ok  ' if not errors else 'FAIL'} {doc.label} {doc.describe()}")
        for err in errors:
            print(f"       {err}")
        invalid += bool(errors)
    local_errors = [e for e in consistency if e.startswith(LOCAL_RUNTIME_CONFIG.name)]
    print(f"{'ok  ' if not local_errors else 'FAIL'} {LOCAL_RUNTIME_CONFIG.name} Spin runtime config")
    invalid += bool(local_errors)
    for err in load_errors + consistency:
        print(f"error: {err}")
    failures, variants = self_test(docs, local_config_text, validators, transformer_validator)
    for err in failures:
        print(f"error: {err}")
    if not failures:
        print(f"self-test: all {variants} broken variants rejected")
    total = len(results) + 1
    if invalid or load_errors or consistency or failures:
        print(f"deploy: FAILED: {invalid} of {total} documents invalid, "
              f"{len(load_errors) + len(consistency) + len(failures)} other error(s)")
        return 1
    print(f"deploy: {total} documents valid")
    return 0


if __name__ == "__main__":
    sys.exit(main())
