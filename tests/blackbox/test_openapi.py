"""GET /openapi.json describes every route on :8000, and nothing else.

The document a real `grace serve` serves is compared with `grace routes
--json`, the routes the same binary registers (the kernels' expanded under
the gateway's prefixes): no route undocumented, no documented route missing,
and each operation's security says who may call the route (none for public,
bearer or the session cookie for the others, with the role `admin` for
admin-only routes). Then tools that are not Grace's check it
(js/openapi_check.mjs): @seriousme/openapi-schema-validator against the
OpenAPI 3.1 schema, every $ref resolved, every schema compiled by ajv as
JSON Schema 2020-12 in strict mode, and real answers of this server
validated against the schemas the document gives for them."""

import json
import os
import shutil
import subprocess
import tempfile
import unittest

from harness import GRACE_BIN, HAS_AUTH, GraceServer, GraceTestCase, scaled

HERE = os.path.dirname(os.path.abspath(__file__))
CHECK = os.path.join(HERE, "js", "openapi_check.mjs")
FAST = {"auth": {"argon2_mem_kib": 19456}}
KERNELS = ("librarian", "message_bus", "crypto", "immutable_log", "policy", "scheduler",
           "executor")

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")


def routes():
    """`grace routes --json`: every route the binary registers."""
    r = subprocess.run([GRACE_BIN, "routes", "--json"], capture_output=True, text=True,
                       timeout=30)
    if r.returncode != 0:
        raise AssertionError("grace routes --json: exit %d\n%s" % (r.returncode, r.stderr))
    return json.loads(r.stdout)["routes"]


def operations(doc):
    return {(m.upper(), p): op for p, item in doc["paths"].items() for m, op in item.items()
            if m in METHODS}


def node():
    exe = shutil.which("node")
    if not exe:
        raise AssertionError("node (Node.js 20) is needed to validate the document: "
                             "run scripts/bootstrap.sh --test")
    return exe


class OpenApi(GraceTestCase):
    @classmethod
    def setUpClass(cls):
        cls.routes = routes()
        cls.g = GraceServer(config=FAST, kernels={k: {} for k in KERNELS})
        try:
            cls.g.start()
        except BaseException:
            cls.g.dump_log()
            cls.g.close()
            raise

    @classmethod
    def tearDownClass(cls):
        cls.g.close()

    def document(self):
        st, hdrs, doc = self.g.http("GET", "/openapi.json", auth=False)
        self.assertEqual(st, 200, doc)
        self.assertEqual(hdrs["Content-Type"], "application/json")
        self.assertIsInstance(doc, dict, "the answer is not JSON")
        return doc

    def test_public_and_served_as_json(self):
        doc = self.document()
        self.assertEqual(doc["openapi"], "3.1.0")
        st, _, again = self.g.http("GET", "/openapi.json")  # with a session: the same
        self.assertEqual((st, again), (200, doc))
        st, hdrs, _ = self.g.http("HEAD", "/openapi.json", auth=False)
        self.assertEqual(st, 200)

    def test_every_route_documented_and_nothing_else(self):
        ops = operations(self.document())
        registered = {(r["method"], r["path"]) for r in self.routes}
        undocumented = sorted(registered - set(ops))
        missing = sorted(set(ops) - registered)
        if undocumented or missing:
            self.fail("the document and `grace routes` differ:\n"
                      + "".join("  registered, not documented: %s %s\n" % r for r in undocumented)
                      + "".join("  documented, not registered: %s %s\n" % r for r in missing))
        # Every route the gateway forwards one by one reaches a kernel route.
        lost = ["%s %s -> %s %s" % (r["method"], r["path"], r["kernel"], r["kernel_path"])
                for r in self.routes if "kernel" in r and not r["kernel_route"]]
        self.assertEqual(lost, [], "forwarded to a route the kernel does not have")

    def test_kernels_under_every_prefix(self):
        paths = {p for _, p in operations(self.document())}
        out = subprocess.run([GRACE_BIN, "kernels-list"], capture_output=True, text=True,
                             check=True).stdout
        for name in (ln.split()[0] for ln in out.splitlines() if ln.strip()):
            self.assertIn("/kernels/%s/health" % name, paths)
            self.assertIn("/kernels/%s/metrics" % name, paths)
        self.assertIn("/librarian/search", paths)
        self.assertIn("/kernels/librarian/search", paths)
        self.assertIn("/bus/subscribe", paths)
        self.assertNotIn("/bus/stats", paths)  # only admins, under /kernels/message_bus
        self.assertIn("/kernels/message_bus/stats", paths)
        self.assertIn("/kernels/policy/entities/{type}/{path}", paths)

    def test_security_matches_access(self):
        ops = operations(self.document())
        want = {"public": [], "user": [{"bearer": []}, {"session": []}],
                "admin": [{"bearer": ["admin"]}, {"session": ["admin"]}]}
        wrong = []
        for r in self.routes:
            op = ops.get((r["method"], r["path"]))
            if op is None:
                continue  # test_every_route_documented_and_nothing_else says so
            if op.get("security") != want[r["access"]]:
                wrong.append("%s %s is %s, its security says %s"
                             % (r["method"], r["path"], r["access"], op.get("security")))
            if r["access"] == "admin" and "Admin only" not in op.get("description", ""):
                wrong.append("%s %s is admin-only and its description does not say so"
                             % (r["method"], r["path"]))
        self.assertEqual(wrong, [])

    def test_streams_are_described_as_streams(self):
        ops = operations(self.document())
        for path in ("/bus/subscribe", "/kernels/message_bus/subscribe"):
            self.assertIn("text/event-stream", ops[("GET", path)]["responses"]["200"]["content"])
        self.assertIn("application/x-ndjson",
                      ops[("GET", "/kernels/audit/events/export")]["responses"]["200"]["content"])
        self.assertIn("text/event-stream", ops[("POST", "/chat/sessions/{id}/messages")]
                      ["responses"]["200"]["content"])

    def test_routes_command(self):
        r = subprocess.run([GRACE_BIN, "routes"], capture_output=True, text=True, timeout=30)
        self.assertEqual(r.returncode, 0, r.stderr)
        lines = [ln.split() for ln in r.stdout.splitlines() if ln.strip()]
        self.assertEqual(len(lines), len(self.routes))
        self.assertIn(["GET", "/openapi.json", "public", "openapi"], lines)
        self.assertIn(["GET", "/librarian/documents/{id}", "user", "prefixes", "->",
                       "librarian", "/documents/{id}"], lines)
        r = subprocess.run([GRACE_BIN, "routes", "--bogus"], capture_output=True, text=True,
                           timeout=30)
        self.assertEqual(r.returncode, 2)
        self.assertIn("usage", r.stderr)

    def samples(self):
        """Real answers of this server: (method, documented path, actual path, body)."""
        g = self.g
        bob = None
        if HAS_AUTH:
            g.create_user("openapi_bob", "a long password for bob")
            bob = {"Authorization": "Bearer " + g.login("openapi_bob", "a long password for bob")}
        st, _, doc = g.http("POST", "/librarian/documents",
                            {"title": "Zeppelins", "body": "How to patch an envelope", "tags": ["air"]})
        self.assertEqual(st, 201, doc)
        doc_id = doc["id"]
        st, _, s = g.http("POST", "/chat/sessions", {"title": "openapi"})
        self.assertEqual(st, 201, s)
        st, _, sj = g.http("POST", "/scheduler/jobs",
                           {"name": "openapi", "schedule": "0 9 * * mon-fri",
                            "timezone": "Europe/Berlin",
                            "target": {"type": "bus", "subject": "openapi.tick"}})
        self.assertEqual(st, 201, sj)
        st, _, xj = g.http("POST", "/executor/jobs", {"argv": ["/bin/echo", "openapi"]})
        self.assertEqual(st, 201, xj)
        calls = [
            ("GET", "/health", "/health", None),
            ("GET", "/auth/me", "/auth/me", None),
            ("GET", "/auth/users", "/auth/users", None),
            ("GET", "/kernel-ports", "/kernel-ports", None),
            ("GET", "/kernel-ports/{name}", "/kernel-ports/librarian", None),
            ("GET", "/kernel-ports/{name}", "/kernel-ports/nosuch", None),
            ("GET", "/kernel-ports/health-check", "/kernel-ports/health-check", None),
            ("GET", "/guardian/status", "/guardian/status", None),
            ("GET", "/guardian/config", "/guardian/config", None),
            ("GET", "/guardian/events", "/guardian/events?limit=5", None),
            ("GET", "/network-healer/playbooks", "/network-healer/playbooks", None),
            ("POST", "/network-healer/diagnose", "/network-healer/diagnose",
             {"component_name": "crypto"}),
            ("GET", "/network-healer/incidents", "/network-healer/incidents", None),
            ("GET", "/network-healer/stats", "/network-healer/stats", None),
            ("GET", "/chat/sessions", "/chat/sessions", None),
            ("GET", "/chat/sessions/{id}", "/chat/sessions/%d" % s["id"], None),
            ("POST", "/memory/tables", "/memory/tables",
             {"name": "notes", "columns": [{"name": "title", "type": "text"},
                                           {"name": "n", "type": "number"}]}),
            ("POST", "/memory/tables/{table}/rows", "/memory/tables/notes/rows",
             [{"title": "one", "n": 1}, {"title": "two", "n": 2}]),
            ("GET", "/memory/tables/{table}/rows", "/memory/tables/notes/rows?limit=1", None),
            ("GET", "/memory/tables/{table}", "/memory/tables/notes", None),
            ("GET", "/memory/tables", "/memory/tables", None),
            ("GET", "/librarian/documents/{id}", "/librarian/documents/%d" % doc_id, None),
            ("GET", "/librarian/documents/{id}", "/librarian/documents/999999", None),
            ("GET", "/librarian/search", "/librarian/search?query=envelope", None),
            ("GET", "/librarian/health", "/librarian/health", None),
            ("POST", "/bus/publish", "/bus/publish", {"subject": "openapi.test", "payload": {"n": 1}}),
            ("GET", "/bus/subjects", "/bus/subjects", None),
            ("GET", "/bus/groups/{group}/poll", "/bus/groups/g1/poll?subject=openapi.>&max=5", None),
            ("GET", "/kernels/message_bus/stats", "/kernels/message_bus/stats", None),
            ("POST", "/kernels/crypto/keys", "/kernels/crypto/keys", {"name": "k1", "type": "ed25519"}),
            ("POST", "/kernels/crypto/sign", "/kernels/crypto/sign", {"key": "k1", "data": "x"}),
            ("GET", "/kernels/crypto/random", "/kernels/crypto/random?bytes=8", None),
            ("POST", "/kernels/immutable_log/entries", "/kernels/immutable_log/entries",
             {"data": {"a": 1}}),
            ("GET", "/kernels/immutable_log/sth", "/kernels/immutable_log/sth", None),
            ("GET", "/kernels/immutable_log/entries/{index}", "/kernels/immutable_log/entries/0", None),
            # Not "default": that set decides this server's own requests.
            ("PUT", "/kernels/policy/policy-sets/{name}", "/kernels/policy/policy-sets/openapi",
             {"policies": "permit(principal, action, resource);"}),
            ("GET", "/kernels/policy/versions", "/kernels/policy/versions?policy_set=openapi", None),
            ("POST", "/auth/tokens", "/auth/tokens", {"name": "grafana", "scopes": ["metrics:read"]}),
            ("GET", "/auth/tokens", "/auth/tokens", None),
            ("DELETE", "/auth/tokens/{id}", "/auth/tokens/tok_0000000000000000", None),
            ("PUT", "/kernels/policy/policy-sets/{name}", "/kernels/policy/policy-sets/broken",
             {"policies": "permit(principal, action)"}),
            ("POST", "/kernels/policy/authorize", "/kernels/policy/authorize",
             {"principal": {"type": "User", "id": "a"}, "action": "Action::\"read\"",
              "resource": {"type": "Doc", "id": "d"}}),
            ("POST", "/kernels/policy/access/v1/evaluation", "/kernels/policy/access/v1/evaluation",
             {"subject": {"type": "User", "id": "a"}, "action": {"name": "read"},
              "resource": {"type": "Doc", "id": "d"}}),
            ("GET", "/kernels/governance/health", "/kernels/governance/health", None),
            ("GET", "/scheduler/next", "/scheduler/next?schedule=30+2+*+*+*&timezone=Europe/Berlin"
             "&count=3", None),
            ("GET", "/scheduler/next", "/scheduler/next?schedule=61+*+*+*+*", None),
            ("GET", "/scheduler/jobs/{id}", "/scheduler/jobs/" + sj["id"], None),
            ("GET", "/scheduler/jobs", "/scheduler/jobs", None),
            ("POST", "/scheduler/jobs/{id}/trigger", "/scheduler/jobs/%s/trigger" % sj["id"], {}),
            ("GET", "/scheduler/jobs/{id}/runs", "/scheduler/jobs/%s/runs" % sj["id"], None),
            ("POST", "/scheduler/jobs", "/scheduler/jobs",
             {"name": "bad", "schedule": "* * * * *", "timezone": "Mars/Olympus",
              "target": {"type": "bus", "subject": "x"}}),
            ("GET", "/scheduler/stats", "/scheduler/stats", None),
            ("GET", "/executor/jobs/{id}", "/executor/jobs/%s?wait_ms=10000" % xj["id"], None),
            ("GET", "/executor/jobs", "/executor/jobs?limit=5", None),
            ("POST", "/executor/jobs/validate", "/executor/jobs/validate",
             {"argv": ["/bin/true"], "limits": {"memory_bytes": 67108864}}),
            ("POST", "/executor/jobs", "/executor/jobs", {"argv": ["bin/true"]}),
            ("GET", "/executor/containment", "/executor/containment", None),
            ("GET", "/executor/stats", "/executor/stats", None),
        ]
        out = []
        for method, doc_path, path, body in calls:
            st, hdrs, ans = g.http(method, path, body, timeout=scaled(30))
            out.append({"method": method, "path": doc_path, "status": st,
                        "content_type": hdrs.get("Content-Type", ""), "body": ans})
        if bob is not None:  # the answers a user without the admin role gets
            for method, path in (("GET", "/auth/users"), ("GET", "/kernels/crypto/random")):
                st, hdrs, ans = g.http(method, path, headers=bob)
                self.assertEqual(st, 403, ans)
                out.append({"method": method, "path": path, "status": st,
                            "content_type": hdrs.get("Content-Type", ""), "body": ans})
            st, hdrs, ans = g.http("GET", "/auth/me", auth=False)
            self.assertEqual(st, 401, ans)
            out.append({"method": "GET", "path": "/auth/me", "status": st,
                        "content_type": hdrs.get("Content-Type", ""), "body": ans})
        return out

    def test_valid_by_independent_tools_and_true_to_real_answers(self):
        doc = self.document()
        samples = self.samples()
        with tempfile.TemporaryDirectory(prefix="grace-openapi-") as tmp:
            doc_path = os.path.join(tmp, "openapi.json")
            samples_path = os.path.join(tmp, "samples.json")
            with open(doc_path, "w") as f:
                json.dump(doc, f)
            with open(samples_path, "w") as f:
                json.dump(samples, f)
            r = subprocess.run([node(), CHECK, doc_path, samples_path], capture_output=True,
                               text=True, timeout=scaled(120))
        self.assertEqual(r.returncode, 0, "openapi_check.mjs failed:\n" + r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual(res["version"], "3.1")
        self.assertGreater(res["schemas_checked"], 100)
        self.assertEqual(len(res["samples"]), len(samples))
        problems = res["errors"] + ["%s %s -> %s: %s" % (s["method"], s["path"], s["status"],
                                                          "; ".join(s["errors"]))
                                    for s in res["samples"] if s["errors"]]
        self.assertTrue(res["valid"] and not problems,
                        "the document is not valid:\n  " + "\n  ".join(problems))


if __name__ == "__main__":
    unittest.main()
