#!/usr/bin/env python3
"""Turns CustomResourceDefinitions into the JSON Schemas kubeconform reads:
one file <kind>_<version>.json per served version, as kubeconform's own
openapi2jsonschema does, strict (no field the CRD does not name).

usage: crd2jsonschema.py OUT_DIR CRD.yaml..."""
import json
import os
import sys

import yaml


def strict(node):
    """additionalProperties: false on every object that lists its
    properties and does not keep unknown fields; int-or-string made explicit."""
    if isinstance(node, list):
        return [strict(x) for x in node]
    if not isinstance(node, dict):
        return node
    node = {k: strict(v) for k, v in node.items()}
    if node.get("x-kubernetes-int-or-string"):
        node.pop("type", None)
        node["oneOf"] = [{"type": "integer"}, {"type": "string"}]
    if ("properties" in node and "additionalProperties" not in node
            and not node.get("x-kubernetes-preserve-unknown-fields")):
        node["additionalProperties"] = False
    return node


def main():
    out = sys.argv[1]
    os.makedirs(out, exist_ok=True)
    for path in sys.argv[2:]:
        with open(path) as f:
            for crd in yaml.safe_load_all(f):
                if not crd or crd.get("kind") != "CustomResourceDefinition":
                    continue
                kind = crd["spec"]["names"]["kind"].lower()
                for v in crd["spec"]["versions"]:
                    schema = strict(v["schema"]["openAPIV3Schema"])
                    # metadata is checked by Kubernetes' own schema, not the CRD's.
                    schema.setdefault("properties", {})["metadata"] = {"type": "object"}
                    with open(os.path.join(out, f"{kind}_{v['name']}.json"), "w") as g:
                        json.dump(schema, g)


if __name__ == "__main__":
    main()
