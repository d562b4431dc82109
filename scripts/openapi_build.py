#!/usr/bin/env python3
"""Builds the OpenAPI 3.1 description of :8000 from its sources.

Standard library only; meson runs it (the `openapi` custom_target) and
writes BUILD/openapi.json and BUILD/openapi_doc.c, which embeds the same
document for GET /openapi.json.

The sources, each beside what it describes:

  docs/openapi/base.json        info, servers, security schemes, the Error
                                schema, the common responses
  docs/openapi/api/NAME.json    one API route family (src/serve/api/NAME.c):
                                full :8000 paths; every operation says who
                                may call it with "access": public|user|admin
  docs/openapi/prefixes.json    the gateway's prefixes (src/serve/api/prefixes.c):
                                which kernel each reaches, who may call it,
                                and, for a prefix that forwards only some
                                routes, which
  docs/openapi/kernel.json      the SDK's standard routes (/health, /metrics)
                                every kernel answers; "{kernel}" in its texts
                                becomes the kernel's name
  src/kernels/NAME/openapi.json one kernel's own routes, paths relative to it

The kernels are the registry's (the `kernel-table` program prints it): each
is described under every prefix that reaches it, with its own fragment when
its folder has one, else with the standard routes alone. Adding a kernel's
description is adding its openapi.json: nothing else names it.

A fragment is {"paths": {...}, "components": {...}, "tag": {...}?}. Its
components are its own: they are renamed into a namespace of its own
(api.FAMILY.X, kernels.NAME.X, kernel.X) and its $refs with them; a $ref to
a component it does not define must be one of base.json's. An error
response may be written as a string, its description: it becomes that
description with the Error schema. Security, tags, operationIds and the
responses every route of its kind can give (401, 403; 502, 503, 504 and 413
through the gateway) are added here.
"""

import argparse
import copy
import json
import os
import re
import subprocess
import sys

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")
COMPONENT_KINDS = ("schemas", "responses", "parameters", "requestBodies", "headers", "examples")
ACCESS = ("public", "user", "admin")
BODY_METHODS = ("post", "put", "patch")


class BuildError(Exception):
    pass


class Build:
    def __init__(self, root, version):
        self.root = root
        self.version = version
        self.read_files = []  # for the depfile
        self.watched_dirs = []
        self.operation_ids = {}
        self.warnings = []

    # ---- reading

    def load(self, rel):
        path = os.path.join(self.root, rel)
        self.read_files.append(path)
        try:
            with open(path, encoding="utf-8") as f:
                return json.load(f)
        except json.JSONDecodeError as e:
            raise BuildError(f"{rel}: not JSON: {e}") from None
        except OSError as e:
            raise BuildError(f"{rel}: {e.strerror}") from None

    def listdir(self, rel):
        path = os.path.join(self.root, rel)
        self.watched_dirs.append(path)
        return sorted(os.listdir(path))

    # ---- components

    def namespace(self, frag, ns, where):
        """Renames the fragment's own components into `ns.` and its $refs
        with them; returns (paths, components) as new objects."""
        frag = copy.deepcopy(frag)
        own = frag.get("components", {})
        for kind in own:
            if kind not in COMPONENT_KINDS:
                raise BuildError(f"{where}: components.{kind} is not supported here")
        renamed = {}
        for kind, items in own.items():
            for name in items:
                renamed[f"#/components/{kind}/{name}"] = f"#/components/{kind}/{ns}.{name}"

        def walk(node):
            if isinstance(node, dict):
                ref = node.get("$ref")
                if isinstance(ref, str):
                    if ref in renamed:
                        node["$ref"] = renamed[ref]
                    elif not self.base_has(ref):
                        raise BuildError(f"{where}: $ref {ref} is neither the fragment's own nor base.json's")
                for v in node.values():
                    walk(v)
            elif isinstance(node, list):
                for v in node:
                    walk(v)

        walk(frag.get("paths", {}))
        walk(own)
        comps = {kind: {f"{ns}.{name}": v for name, v in items.items()} for kind, items in own.items()}
        return frag.get("paths", {}), comps

    def base_has(self, ref):
        m = re.fullmatch(r"#/components/(\w+)/([A-Za-z0-9._-]+)", ref)
        return bool(m) and m.group(2) in self.base.get("components", {}).get(m.group(1), {})

    def add_components(self, comps, where):
        for kind, items in comps.items():
            target = self.doc["components"].setdefault(kind, {})
            for name, v in items.items():
                if name in target:
                    raise BuildError(f"{where}: component {kind}/{name} defined twice")
                target[name] = v

    # ---- operations

    def error_response(self, desc):
        return {"description": desc,
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

    def finish_operation(self, op, method, path, access, tag, where, forwarded=None):
        """Fills one operation in place: responses, security, tags, id."""
        op.pop("access", None)
        if "summary" not in op:
            raise BuildError(f"{where}: {method.upper()} {path} has no summary")
        responses = op.get("responses")
        if not isinstance(responses, dict) or not any(c.startswith("2") for c in responses):
            raise BuildError(f"{where}: {method.upper()} {path} has no success response")
        for code, r in list(responses.items()):
            if isinstance(r, str):
                if not code[0] in "45":
                    raise BuildError(f"{where}: {method.upper()} {path}: only an error response may be a string")
                responses[code] = self.error_response(r)
        auto = []
        if access != "public":
            auto.append(("401", "Unauthorized"))
        if access == "admin" or (access == "user" and method != "get"):
            auto.append(("403", "Forbidden"))
        if forwarded:
            if method in BODY_METHODS:
                auto.append(("413", "TooLarge"))
            auto += [("502", "BadGateway"), ("503", "Unavailable"), ("504", "GatewayTimeout")]
        elif access != "public":  # decided by the policy kernel, which may be down
            auto.append(("503", "PolicyUnavailable"))
        for code, name in auto:
            if code == "403" and "description" in responses.get(code, {}):
                # The route's own 403 and the one every route of its kind has.
                responses[code]["description"] += " Or: " + (
                    "the route needs the admin role (forbidden)." if access == "admin" else
                    "a change authenticated by the session cookie came from another origin (csrf_rejected).")
            if code == "503" and access != "public" and "description" in responses.get(code, {}):
                # The route's own 503 and the policy kernel's (fail closed).
                responses[code]["description"] += (
                    " Or: the policy kernel cannot decide the request (policy_unavailable).")
            responses.setdefault(code, {"$ref": f"#/components/responses/{name}"})
        if forwarded:
            responses.setdefault("404", self.error_response(
                "The kernel is not in this configuration (unknown_kernel), or what the route names does not exist."))
        op["responses"] = dict(sorted(responses.items()))

        if access == "public":
            op["security"] = []
        else:
            roles = ["admin"] if access == "admin" else []
            op["security"] = [{"bearer": list(roles)}, {"session": list(roles)}]
        notes = []
        if forwarded:
            kernel, kmethod, kpath = forwarded
            notes.append(f"Forwarded by the gateway to the **{kernel}** kernel as `{kmethod.upper()} {kpath}`.")
        notes.append({"public": "Public: no session needed.",
                      "user": "Any logged-in user (a session token or the session cookie).",
                      "admin": "**Admin only**: a session of a user with the admin role."}[access])
        desc = op.get("description", "").strip()
        op["description"] = "\n\n".join(([desc] if desc else []) + [" ".join(notes)])
        op["tags"] = [tag]
        op["operationId"] = self.operation_id(method, path)
        return op

    def operation_id(self, method, path):
        parts = [method]
        for seg in path.strip("/").split("/"):
            m = re.fullmatch(r"\{(.+)\}", seg)
            parts.append("by_" + m.group(1) if m else seg)
        oid = re.sub(r"[^A-Za-z0-9_]+", "_", "_".join(parts)).strip("_")
        if oid in self.operation_ids:
            raise BuildError(f"operationId {oid} of {method.upper()} {path} is taken by {self.operation_ids[oid]}")
        self.operation_ids[oid] = f"{method.upper()} {path}"
        return oid

    def put_path_item(self, path, item, where):
        target = self.doc["paths"].setdefault(path, {})
        for key, v in item.items():
            if key in METHODS:
                if key in target:
                    raise BuildError(f"{where}: {key.upper()} {path} is described twice")
                target[key] = v
            elif key == "parameters":
                target.setdefault("parameters", [])
                for p in v:
                    if p not in target["parameters"]:
                        target["parameters"].append(p)
            elif key in ("summary", "description"):
                target.setdefault(key, v)
            else:
                raise BuildError(f"{where}: {path}: {key} is not supported in a path item")

    # ---- the parts

    def api_families(self):
        for name in self.listdir("docs/openapi/api"):
            if not name.endswith(".json"):
                continue
            family = name[:-5]
            rel = f"docs/openapi/api/{name}"
            frag = self.load(rel)
            paths, comps = self.namespace(frag, f"api.{family}", rel)
            self.add_components(comps, rel)
            tag = frag.get("tag", {"name": family})
            self.tags.append(tag)
            for path, item in paths.items():
                item = copy.deepcopy(item)
                for method in METHODS:
                    op = item.get(method)
                    if op is None:
                        continue
                    access = op.get("access")
                    if access not in ACCESS:
                        raise BuildError(f"{rel}: {method.upper()} {path}: \"access\" must be one of {', '.join(ACCESS)}")
                    self.finish_operation(op, method, path, access, tag["name"], rel)
                self.put_path_item(path, item, rel)

    def kernel_paths(self, kernel):
        """The kernel's routes as path items relative to it: the standard
        ones, then its own fragment's (namespaced)."""
        std = json.loads(json.dumps(self.standard).replace("{kernel}", kernel["name"]))
        paths = copy.deepcopy(std["paths"])
        rel = f"src/kernels/{kernel['name']}/openapi.json"
        if kernel["name"] in self.kernel_frags:
            frag = self.kernel_frags[kernel["name"]]
            own, comps = self.namespace(frag, f"kernels.{kernel['name']}", rel)
            if kernel["name"] not in self.kernel_components_added:
                self.add_components(comps, rel)
                self.kernel_components_added.add(kernel["name"])
            for p, item in own.items():
                if p in paths:
                    raise BuildError(f"{rel}: {p} is one of the SDK's standard routes (docs/openapi/kernel.json)")
                paths[p] = item
        self.check_kernel(kernel, paths, rel)
        return paths

    def check_kernel(self, kernel, paths, rel):
        """Warns (the test fails on it) where a kernel's routes and its
        description differ."""
        if kernel["name"] in self.kernels_checked:
            return
        self.kernels_checked.add(kernel["name"])
        said = {(m.upper(), p) for p, item in paths.items() for m in item if m in METHODS}
        real = set()
        for r in self.table["standard_routes"] + kernel["routes"]:
            path = re.sub(r":([^/]+)", r"{\1}", r["path"])
            path = re.sub(r"/\*$", "/{path}", path)
            real.add((r.get("method") or "*", path))
        for m, p in sorted(real - said):
            self.warnings.append(f"{rel}: kernel {kernel['name']} answers {m} {p}, which is not described")
        for m, p in sorted(said - real):
            self.warnings.append(f"{rel}: {m} {p} is described but kernel {kernel['name']} has no such route")

    def prefixes(self):
        rel = "docs/openapi/prefixes.json"
        spec = self.load(rel)
        kernels = {k["name"]: k for k in self.table["kernels"]}
        for px in spec["prefixes"]:
            if px.get("kernel") is None:
                reached = list(kernels.values())
            elif px["kernel"] in kernels:
                reached = [kernels[px["kernel"]]]
            else:
                raise BuildError(f"{rel}: prefix {px['path']}: no kernel named {px['kernel']}")
            listed = None
            if "routes" in px:
                listed = {(r["method"].lower(), r["path"]): r["access"] for r in px["routes"]}
            for kernel in reached:
                under = px["path"].replace("{name}", kernel["name"])
                paths = self.kernel_paths(kernel)
                found = set()
                for kpath, item in paths.items():
                    out = {}
                    for key, v in item.items():
                        if key not in METHODS:
                            out[key] = copy.deepcopy(v)
                            continue
                        access = px.get("access")
                        if listed is not None:
                            if (key, kpath) not in listed:
                                continue
                            access = listed[(key, kpath)]
                            found.add((key, kpath))
                        if access not in ACCESS:
                            raise BuildError(f"{rel}: prefix {px['path']}: access must be one of {', '.join(ACCESS)}")
                        full = under + kpath
                        out[key] = self.finish_operation(copy.deepcopy(v), key, full, access, kernel["name"],
                                                         rel, forwarded=(kernel["name"], key, kpath))
                    if any(k in METHODS for k in out):
                        self.put_path_item(under + kpath, out, rel)
                for method, kpath in sorted(set(listed or ()) - found):
                    raise BuildError(f"{rel}: prefix {px['path']} lists {method.upper()} {kpath}, "
                                     f"which the {kernel['name']} kernel's description does not have")

    def kernel_fragments(self):
        self.kernel_frags = {}
        for name in self.listdir("src/kernels"):
            folder = os.path.join(self.root, "src/kernels", name)
            if not os.path.isdir(folder):
                continue
            self.watched_dirs.append(folder)
            if os.path.exists(os.path.join(folder, "openapi.json")):
                self.kernel_frags[name] = self.load(f"src/kernels/{name}/openapi.json")
        known = {k["name"] for k in self.table["kernels"]}
        for name in sorted(set(self.kernel_frags) - known):
            raise BuildError(f"src/kernels/{name}/openapi.json: the registry has no kernel named {name}")

    def check_parameters(self):
        """Every {param} of a path is declared as a path parameter, and no
        path parameter is declared that the path does not have."""
        for path, item in self.doc["paths"].items():
            in_path = set(re.findall(r"\{([^}]+)\}", path))
            for method in METHODS:
                op = item.get(method)
                if op is None:
                    continue
                declared = set()
                for p in item.get("parameters", []) + op.get("parameters", []):
                    p = self.resolve(p)
                    if p.get("in") == "path":
                        declared.add(p["name"])
                if declared != in_path:
                    raise BuildError(f"{method.upper()} {path}: path parameters declared {sorted(declared)}, "
                                     f"in the path {sorted(in_path)}")

    def resolve(self, node):
        ref = node.get("$ref") if isinstance(node, dict) else None
        if not ref:
            return node
        _, _, kind, name = ref.split("/", 3)
        return self.doc["components"][kind][name]

    def run(self, table):
        self.table = table
        self.base = self.load("docs/openapi/base.json")
        self.standard = self.load("docs/openapi/kernel.json")
        self.doc = copy.deepcopy(self.base)
        self.doc["info"]["version"] = self.version
        self.doc["paths"] = {}
        self.doc.setdefault("components", {})
        self.tags = []
        self.kernel_components_added = set()
        self.kernels_checked = set()
        std_paths, std_comps = self.namespace(self.standard, "kernel", "docs/openapi/kernel.json")
        self.standard = {"paths": std_paths}
        self.add_components(std_comps, "docs/openapi/kernel.json")
        self.kernel_fragments()
        self.api_families()
        self.prefixes()
        for k in self.table["kernels"]:
            frag = self.kernel_frags.get(k["name"], {})
            self.tags.append(frag.get("tag", {"name": k["name"], "description": k["summary"]}))
        self.doc["tags"] = self.tags
        self.check_parameters()
        self.doc["paths"] = dict(sorted(self.doc["paths"].items()))
        return self.doc


def c_source(doc_bytes):
    lines = ["/* Generated by scripts/openapi_build.py from docs/openapi/ and each",
             " * kernel's openapi.json: do not edit. Served by src/serve/api/openapi.c. */",
             "#include <stddef.h>", "",
             "extern const unsigned char api_openapi_json[];",
             "extern const size_t api_openapi_json_len;", "",
             "const unsigned char api_openapi_json[] = {"]
    for i in range(0, len(doc_bytes), 16):
        lines.append("\t" + ", ".join(f"0x{b:02x}" for b in doc_bytes[i:i + 16]) + ",")
    lines += ["};", "const size_t api_openapi_json_len = sizeof api_openapi_json;", ""]
    return "\n".join(lines)


def write_file(path, text):
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, path)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--root", required=True, help="the source tree")
    ap.add_argument("--kernel-table", required=True, help="the kernel-table program")
    ap.add_argument("--version", required=True)
    ap.add_argument("--json", required=True, help="the document to write")
    ap.add_argument("--c", required=True, help="the C source to write")
    ap.add_argument("--depfile")
    a = ap.parse_args()
    try:
        out = subprocess.run([a.kernel_table], check=True, capture_output=True, text=True).stdout
        table = json.loads(out)
    except (OSError, subprocess.CalledProcessError, json.JSONDecodeError) as e:
        sys.exit(f"openapi_build: cannot read the kernel table from {a.kernel_table}: {e}")
    b = Build(a.root, a.version)
    try:
        doc = b.run(table)
    except BuildError as e:
        sys.exit(f"openapi_build: {e}")
    for w in b.warnings:
        print(f"openapi_build: warning: {w}", file=sys.stderr)
    write_file(a.json, json.dumps(doc, indent=2, ensure_ascii=False) + "\n")
    compact = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    write_file(a.c, c_source(compact))
    if a.depfile:
        deps = sorted(set(b.read_files + b.watched_dirs))
        esc = [d.replace(" ", "\\ ") for d in deps]
        write_file(a.depfile, f"{a.json}: " + " \\\n ".join(esc) + "\n")


if __name__ == "__main__":
    main()
