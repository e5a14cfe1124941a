#!/usr/bin/env python3
"""Regenerate the vendored JSON schemas in this folder (a maintainer's tool; check.sh does not run it).

    python3 vendor.py spinapp CRD.yaml SOURCE
        CRD.yaml: spin-operator's config/crd/bases/core.spinkube.dev_spinapps.yaml;
        SOURCE: "repo@commit" recorded in the output's $comment.
    python3 vendor.py k8s WHEEL K8S_VERSION
        WHEEL: a kubernetes-validate wheel (pip download --no-deps kubernetes-validate==X);
        K8S_VERSION: e.g. v1.33.0. Writes Namespace, Secret, HPA v2 and Ingress v1 as self-contained
        files: every definition they reach is copied from _definitions.json into "$defs".

Needs PyYAML. See README.md here for where the current files came from.
"""
import json
import pathlib
import re
import sys
import zipfile

HERE = pathlib.Path(__file__).resolve().parent
K8S_KINDS = {
    "namespace-v1.json": "Namespace v1",
    "secret-v1.json": "Secret v1",
    "horizontalpodautoscaler-autoscaling-v2.json": "HorizontalPodAutoscaler autoscaling/v2",
    "ingress-networking-v1.json": "Ingress networking.k8s.io/v1",
}
REF = re.compile(r"^(?:/api/_definitions\.json)?#/\$defs/(.+)$")


def write(name, schema):
    (HERE / name).write_text(json.dumps(schema, indent=2, sort_keys=False) + "\n")
    print(f"wrote {name}")


def spinapp(crd_path, source):
    import yaml

    crd = yaml.safe_load(pathlib.Path(crd_path).read_text())
    assert crd["kind"] == "CustomResourceDefinition" and crd["spec"]["names"]["kind"] == "SpinApp"
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1alpha1"]
    schema = {
        "$comment": f"openAPIV3Schema of SpinApp {crd['spec']['group']}/v1alpha1 from {source}, "
        "config/crd/bases/core.spinkube.dev_spinapps.yaml, unmodified (see README.md)",
        "$schema": "https://json-schema.org/draft/2020-12/schema",
    }
    schema.update(version["schema"]["openAPIV3Schema"])
    write("spinapp-core.spinkube.dev-v1alpha1.json", schema)


def k8s(wheel, k8s_version):
    base = f"kubernetes_validate/kubernetes-json-schema/{k8s_version}-local-strict/"
    with zipfile.ZipFile(wheel) as whl:
        defs = json.loads(whl.read(base + "_definitions.json"))["$defs"]
        for name, what in K8S_KINDS.items():
            top = json.loads(whl.read(base + name))
            needed = {}

            def rewrite(node):
                if isinstance(node, dict):
                    out = {}
                    for key, value in node.items():
                        if key == "$ref" and isinstance(value, str):
                            match = REF.match(value)
                            assert match, value
                            if match.group(1) not in needed:
                                needed[match.group(1)] = None
                                needed[match.group(1)] = rewrite(defs[match.group(1)])
                            out[key] = "#/$defs/" + match.group(1)
                        else:
                            out[key] = rewrite(value)
                    return out
                if isinstance(node, list):
                    return [rewrite(item) for item in node]
                return node

            schema = {
                "$comment": f"{what} ({k8s_version}-local-strict/{name} of {pathlib.Path(wheel).name}, "
                "with the definitions it references inlined; see README.md)",
            }
            schema.update(rewrite(top))
            schema.pop("$id", None)
            schema["$defs"] = dict(sorted(needed.items()))
            write(name, schema)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "spinapp":
        spinapp(sys.argv[2], sys.argv[3])
    elif len(sys.argv) == 4 and sys.argv[1] == "k8s":
        k8s(sys.argv[2], sys.argv[3])
    else:
        sys.exit(__doc__)
