"""The policy kernel (8113) through `grace serve` and the gateway at
/kernels/policy/*: Cedar policy sets created, replaced and deleted with
every version kept, a syntax error refused with its line and column and
nothing stored, the entity store, /authorize (with a request's own
entities over the store's) and its batch, the AuthZEN evaluation API and
its metadata, bad input refused with nothing changed, and all of it kept
across a restart of the kernel."""

import json
import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase  # noqa: E402

PREFIX = "/kernels/policy"

POLICIES = """
@id("admins")
permit(principal in Role::"admin", action, resource);

@id("owners")
permit(principal, action in [Action::"read", Action::"write"], resource is Doc)
  when { resource.owner == principal };

@id("secret")
forbid(principal, action, resource is Doc)
  when { resource.secret } unless { principal in Role::"auditor" };

@id("office")
forbid(principal, action == Action::"delete", resource)
  unless { context has ip && context.ip.isInRange(ip("10.0.0.0/8")) };
"""

ENTITIES = [
    {"uid": {"type": "User", "id": "alice"}, "attrs": {"level": 3}, "parents": [{"type": "Role", "id": "admin"}]},
    {"uid": {"type": "User", "id": "bob"}, "attrs": {}, "parents": []},
    {"uid": {"type": "User", "id": "carol"}, "attrs": {}, "parents": [{"type": "Role", "id": "auditor"}]},
    {"uid": {"type": "Role", "id": "admin"}, "attrs": {}, "parents": []},
    {"uid": {"type": "Doc", "id": "plan"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "bob"}}, "secret": False}, "parents": []},
    {"uid": {"type": "Doc", "id": "vault"}, "attrs": {"owner": {"__entity": {"type": "User", "id": "bob"}}, "secret": True}, "parents": []},
]


def uid(t, i):
    return {"type": t, "id": i}


class PolicyKernel(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"policy": {}})

    def call(self, method, path, body=None, expect=200, headers=None):
        st, _, out = self.g.http(method, PREFIX + path, body, headers)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def error(self, method, path, body, status, code=None):
        out = self.call(method, path, body, expect=status)
        self.assertIsInstance(out, dict, out)
        self.assertTrue(out["error"]["message"], out)
        self.assertTrue(out["error"]["request_id"], out)
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    def authorize(self, principal, action, resource, context=None, entities=None, **extra):
        body = {"principal": principal, "action": action, "resource": resource}
        if context is not None:
            body["context"] = context
        if entities is not None:
            body["entities"] = entities
        body.update(extra)
        return self.call("POST", "/authorize", body)

    def state(self):
        """What a refused change must leave alone."""
        sets = self.call("GET", "/policy-sets")["policy_sets"]
        ents = self.call("GET", "/entities?limit=100000")
        return json.dumps(sets, sort_keys=True), ents["version"], json.dumps(ents["entities"], sort_keys=True)

    def setUp(self):
        # Every test starts from the same policy set and entities.
        cur = self.call("GET", "/policy-sets")["policy_sets"]
        if not any(s["name"] == "default" and not s["deleted"] for s in cur):
            self.call("PUT", "/policy-sets/default", {"policies": POLICIES}, expect=201)
        else:
            self.call("PUT", "/policy-sets/default", {"policies": POLICIES})
        self.call("PUT", "/entities", ENTITIES)

    # -- policy sets

    def test_01_versions(self):
        first = self.call("GET", "/policy-sets/default")
        self.assertEqual([p["id"] for p in first["policies"]], ["admins", "owners", "secret", "office"])
        self.assertEqual([p["effect"] for p in first["policies"]], ["permit", "permit", "forbid", "forbid"])
        self.assertEqual(first["policies"][1]["line"], 5)
        self.assertEqual(first["text"], POLICIES)
        v = first["version"]
        second = self.call("PUT", "/policy-sets/default", {"policies": POLICIES + "\npermit(principal, action, resource);"})
        self.assertEqual(second["version"], v + 1)
        self.assertEqual(second["policies"][-1]["id"], "policy4")
        versions = self.call("GET", "/policy-sets/default/versions")["versions"]
        self.assertEqual([x["version"] for x in versions][:2], [v + 1, v])
        self.assertEqual(versions[0]["policies"], 5)
        self.assertEqual(self.call("GET", "/policy-sets/default/versions/%d" % v)["text"], POLICIES)
        # Optimistic concurrency: a stale expected_version is a 409.
        self.error("PUT", "/policy-sets/default", {"policies": "", "expected_version": v}, 409, "conflict")
        self.call("PUT", "/policy-sets/default", {"policies": POLICIES, "expected_version": v + 1})
        # A second set, written as plain text, is independent.
        out = self.call("PUT", "/policy-sets/kernels", "permit(principal, action, resource);",
                        expect=201, headers={"Content-Type": "text/plain"})
        self.assertEqual((out["name"], out["version"]), ("kernels", 1))
        names = [s["name"] for s in self.call("GET", "/policy-sets")["policy_sets"]]
        self.assertIn("kernels", names)
        d = self.authorize(uid("User", "bob"), uid("Action", "x"), uid("Doc", "plan"), policy_set="kernels")
        self.assertEqual((d["decision"], d["policy_set"], d["policy_version"]), ("allow", "kernels", 1))

    def test_02_syntax_error_names_line_and_column(self):
        before = self.state()
        bad = "permit(principal, action, resource);\nforbid(principal, action, resource)\n  when { context.a && };"
        out = self.error("PUT", "/policy-sets/default", {"policies": bad}, 400, "syntax_error")
        self.assertEqual((out["error"]["line"], out["error"]["column"]), (3, 23))
        self.assertIn("line 3, column 23", out["error"]["message"])
        for text, line, col in [("permit(principal, action);", 1, 25),
                                ("permit(principal, action, resource) when { 1 < 2 < 3 };", 1, 50),
                                ('permit(principal, action, resource) when { "é" == # };', 1, 51),
                                ("@id(\"a\") permit(principal, action, resource);\n@id(\"a\") permit(principal, action, resource);", 2, 1),
                                ("permit(principal == ?principal, action, resource);", 1, 21)]:
            out = self.error("PUT", "/policy-sets/default", {"policies": text}, 400, "syntax_error")
            self.assertEqual((out["error"]["line"], out["error"]["column"]), (line, col), text)
        # Plain text too; and /validate answers the same without storing.
        out = self.call("PUT", "/policy-sets/default", "permit(", expect=400, headers={"Content-Type": "text/plain"})
        self.assertEqual(out["error"]["code"], "syntax_error")
        out = self.call("POST", "/validate", {"policies": bad}, expect=400)
        self.assertEqual(out["error"]["line"], 3)
        ok = self.call("POST", "/validate", {"policies": POLICIES})
        self.assertTrue(ok["valid"])
        self.assertEqual(len(ok["policies"]), 4)
        self.assertEqual(self.state(), before)

    def test_03_delete_is_a_version(self):
        self.call("PUT", "/policy-sets/scratch", {"policies": "permit(principal, action, resource);"}, expect=201)
        gone = self.call("DELETE", "/policy-sets/scratch")
        self.assertEqual((gone["version"], gone["deleted"]), (2, True))
        self.error("GET", "/policy-sets/scratch", None, 404, "not_found")
        self.error("DELETE", "/policy-sets/scratch", None, 404)
        # A deleted set holds no policy: everything is denied (fail closed).
        d = self.authorize(uid("User", "alice"), uid("Action", "read"), uid("Doc", "plan"), policy_set="scratch")
        self.assertEqual((d["decision"], d["policy_version"]), ("deny", 2))
        versions = self.call("GET", "/policy-sets/scratch/versions")["versions"]
        self.assertEqual([(x["version"], x["deleted"]) for x in versions], [(2, True), (1, False)])
        self.assertIsNone(self.call("GET", "/policy-sets/scratch/versions/2")["text"])
        back = self.call("PUT", "/policy-sets/scratch", {"policies": "", "expected_version": 2}, expect=201)
        self.assertEqual(back["version"], 3)
        self.error("POST", "/authorize", {"principal": uid("User", "a"), "action": uid("Action", "a"),
                                          "resource": uid("Doc", "a"), "policy_set": "never"}, 404, "not_found")

    # -- decisions

    def test_04_authorize(self):
        alice, bob, carol = uid("User", "alice"), uid("User", "bob"), uid("User", "carol")
        read, delete = uid("Action", "read"), uid("Action", "delete")
        plan, vault = uid("Doc", "plan"), uid("Doc", "vault")
        d = self.authorize(alice, read, plan)
        self.assertEqual(d["decision"], "allow")
        self.assertEqual(d["diagnostics"], {"reason": ["admins"], "errors": []})
        self.assertEqual(self.authorize(bob, read, plan)["diagnostics"]["reason"], ["owners"])
        d = self.authorize(bob, read, vault)
        self.assertEqual((d["decision"], d["diagnostics"]["reason"]), ("deny", ["secret"]))
        self.assertEqual(self.authorize(carol, read, vault)["decision"], "deny")  # no permit
        self.assertEqual(self.authorize(alice, delete, plan)["diagnostics"]["reason"], ["office"])
        ctx = {"ip": {"__extn": {"fn": "ip", "arg": "10.1.2.3"}}}
        self.assertEqual(self.authorize(alice, delete, plan, ctx)["decision"], "allow")
        # The text form of a uid is taken too.
        self.assertEqual(self.authorize('User::"alice"', 'Action::"read"', 'Doc::"plan"')["decision"], "allow")
        # A policy whose condition errors is skipped and reported.
        d = self.authorize(alice, read, uid("Doc", "ghost"))
        self.assertEqual(d["decision"], "allow")
        self.assertEqual([e["policy"] for e in d["diagnostics"]["errors"]], ["owners", "secret"])
        self.assertIn("does not exist", d["diagnostics"]["errors"][0]["message"])
        # Versions of what the decision read are in every answer.
        self.assertEqual(d["policy_set"], "default")
        self.assertEqual(d["entities_version"], self.call("GET", "/entities")["version"])
        self.assertEqual(d["policy_version"], self.call("GET", "/policy-sets/default")["version"])

    def test_05_request_entities_over_the_store(self):
        dave, read = uid("User", "dave"), uid("Action", "read")
        plan = uid("Doc", "plan")
        self.assertEqual(self.authorize(dave, read, plan)["decision"], "deny")
        mine = [{"uid": dave, "attrs": {}, "parents": [uid("Role", "admin")]}]
        self.assertEqual(self.authorize(dave, read, plan, entities=mine)["decision"], "allow")
        # A request entity replaces a stored one for that request only.
        mine = [{"uid": plan, "attrs": {"owner": {"__entity": dave}, "secret": False}, "parents": []}]
        self.assertEqual(self.authorize(dave, read, plan, entities=mine)["decision"], "allow")
        self.assertEqual(self.authorize(dave, read, plan)["decision"], "deny")
        # A cycle through the store and the request is refused.
        cyc = [{"uid": uid("Role", "admin"), "attrs": {}, "parents": [uid("User", "alice")]}]
        self.error("POST", "/authorize", {"principal": dave, "action": read, "resource": plan, "entities": cyc},
                   400, "invalid_entities")

    def test_06_batch(self):
        out = self.call("POST", "/authorize/batch", {"requests": [
            {"principal": uid("User", "alice"), "action": uid("Action", "read"), "resource": uid("Doc", "plan")},
            {"principal": uid("User", "bob"), "action": uid("Action", "read"), "resource": uid("Doc", "vault")},
            {"principal": uid("Bad Type", "x"), "action": uid("Action", "read"), "resource": uid("Doc", "plan")},
            {"principal": uid("User", "x"), "action": uid("Action", "read"), "resource": uid("Doc", "plan"), "oops": 1},
        ]})
        r = out["results"]
        self.assertEqual([x.get("decision") for x in r], ["allow", "deny", None, None])
        self.assertEqual(r[2]["error"]["status"], 400)
        self.assertIn("oops", r[3]["error"]["message"])
        self.assertIn("policy_version", out)
        self.error("POST", "/authorize/batch", {"requests": [{}] * 1001}, 400)

    # -- AuthZEN

    def test_07_authzen_evaluation(self):
        body = {"subject": {"type": "User", "id": "alice"}, "action": {"name": "read"},
                "resource": {"type": "Doc", "id": "plan"}}
        out = self.call("POST", "/access/v1/evaluation", body)
        self.assertIs(out["decision"], True)
        self.assertEqual(out["context"]["policies"], ["admins"])
        self.assertEqual(out["context"]["reason_admin"]["en"], "permitted by policy admins")
        self.assertIn("entities_version", out["context"])
        # Properties are the entity's attributes for this decision.
        body["resource"]["properties"] = {"secret": True}
        out = self.call("POST", "/access/v1/evaluation", body)
        self.assertIs(out["decision"], False)
        self.assertEqual(out["context"]["policies"], ["secret"])
        body["subject"] = {"type": "User", "id": "bob", "properties": {"level": 1}}
        body["resource"] = {"type": "Doc", "id": "plan"}
        body["context"] = {"ip": {"__extn": {"fn": "ip", "arg": "192.168.0.1"}}}
        body["action"] = {"name": "delete"}
        self.assertIs(self.call("POST", "/access/v1/evaluation", body)["decision"], False)
        # Bad input is a 400 for the whole request.
        self.error("POST", "/access/v1/evaluation", {"subject": {"type": "User"}, "action": {"name": "r"},
                                                     "resource": {"type": "Doc", "id": "x"}}, 400)
        self.error("POST", "/access/v1/evaluation", {"subject": {"type": "not a type", "id": "a"},
                                                     "action": {"name": "r"}, "resource": {"type": "Doc", "id": "x"}}, 400)

    def test_08_authzen_evaluations(self):
        base = {"subject": {"type": "User", "id": "bob"}, "action": {"name": "read"}}
        evals = [{"resource": {"type": "Doc", "id": "plan"}},
                 {"resource": {"type": "Doc", "id": "vault"}},
                 {"resource": {"type": "Doc", "id": "plan"}, "action": {"name": "write"}},
                 {"resource": {"type": "bad type", "id": "x"}},
                 {"resource": {"type": "Doc", "id": "plan"}, "subject": {"type": "User", "id": "carol"}}]
        out = self.call("POST", "/access/v1/evaluations", dict(base, evaluations=evals))["evaluations"]
        self.assertEqual([e["decision"] for e in out], [True, False, True, False, False])
        self.assertEqual(out[3]["context"]["error"]["status"], 400)
        for semantic, n in (("execute_all", 5), ("deny_on_first_deny", 2), ("permit_on_first_permit", 1)):
            got = self.call("POST", "/access/v1/evaluations",
                            dict(base, evaluations=evals, options={"evaluations_semantic": semantic}))
            self.assertEqual(len(got["evaluations"]), n, semantic)
        # Without an evaluations array it is one evaluation.
        one = self.call("POST", "/access/v1/evaluations", dict(base, resource={"type": "Doc", "id": "plan"}))
        self.assertIs(one["decision"], True)
        self.assertEqual(self.call("POST", "/access/v1/evaluations", dict(base, evaluations=[]))["evaluations"], [])
        self.error("POST", "/access/v1/evaluations", dict(base, evaluations=evals, options={"evaluations_semantic": "any"}), 400)

    def test_09_authzen_metadata(self):
        out = self.call("GET", "/.well-known/authzen-configuration")
        pdp = out["policy_decision_point"]
        self.assertTrue(pdp.startswith("http://"), out)
        self.assertEqual(out["access_evaluation_endpoint"], pdp + "/access/v1/evaluation")
        self.assertEqual(out["access_evaluations_endpoint"], pdp + "/access/v1/evaluations")
        st, _, direct = self.g.kernel_http("policy", "GET", "/.well-known/authzen-configuration",
                                           headers={"Host": "pdp.example:8113", "X-Forwarded-Prefix": "/policy"})
        self.assertEqual(st, 200)
        self.assertEqual(direct["policy_decision_point"], "http://pdp.example:8113/policy")

    # -- entities

    def test_10_entities(self):
        v = self.call("GET", "/entities")["version"]
        got = self.call("GET", "/entities/User/alice")
        self.assertEqual(got["entity"]["attrs"], {"level": 3})
        out = self.call("POST", "/entities", [{"uid": uid("User", "eve/x"), "attrs": {"n": 1}, "parents": []},
                                              {"uid": uid("User", "alice"), "attrs": {"level": 4}, "parents": []}])
        self.assertEqual((out["version"], out["written"], out["total"]), (v + 1, 2, len(ENTITIES) + 1))
        self.assertEqual(self.call("GET", "/entities/User/eve/x")["entity"]["attrs"], {"n": 1})
        self.assertEqual(self.call("GET", "/entities?type=User&id=alice")["entities"][0]["attrs"], {"level": 4})
        self.assertEqual(self.authorize(uid("User", "alice"), uid("Action", "x"), uid("Doc", "y"))["decision"], "deny")
        self.assertEqual(self.call("DELETE", "/entities/User/eve/x?expected_version=%d" % (v + 1))["version"], v + 2)
        self.error("GET", "/entities/User/eve/x", None, 404)
        self.error("DELETE", "/entities/User/eve/x", None, 404)
        self.error("PUT", "/entities", {"entities": [], "expected_version": v}, 409, "conflict")
        page = self.call("GET", "/entities?limit=2&offset=1")
        self.assertEqual((len(page["entities"]), page["total"]), (2, len(ENTITIES)))

    # -- bad input

    def test_11_bad_input_changes_nothing(self):
        before = self.state()
        cases = [
            ("PUT", "/entities", [{"uid": uid("A", "1"), "attrs": {}, "parents": [uid("A", "2")]},
                                  {"uid": uid("A", "2"), "attrs": {}, "parents": [uid("A", "1")]}], "cycle"),
            ("PUT", "/entities", [{"uid": uid("User", "a"), "attrs": {}, "parents": [uid("User", "a")]}], "cycle"),
            ("POST", "/entities", [{"uid": uid("Role", "admin"), "attrs": {}, "parents": [uid("User", "alice")]}], "cycle"),
            ("PUT", "/entities", [{"uid": uid("not a type", "a"), "attrs": {}, "parents": []}], "type"),
            ("PUT", "/entities", [{"uid": uid("if", "a"), "attrs": {}, "parents": []}], "type"),
            ("PUT", "/entities", [{"uid": uid("A", "a"), "attrs": {"x": 1.5}, "parents": []}], "float"),
            ("PUT", "/entities", [{"uid": uid("A", "a"), "attrs": {"x": None}, "parents": []}], "null"),
            ("PUT", "/entities", [{"uid": uid("A", "a"), "attrs": {}}], "parents"),
            ("PUT", "/entities", [{"uid": uid("A", "a"), "attrs": {}, "parents": []},
                                  {"uid": uid("A", "a"), "attrs": {"x": 1}, "parents": []}], "duplicate"),
            ("PUT", "/entities", [{"uid": uid("A", "a"), "attrs": {"s": list(range(20000))}, "parents": []}], "too many"),
            ("PUT", "/entities", {"entities": 5}, "array"),
            ("PUT", "/entities", {"nope": []}, "unknown field"),
            ("PUT", "/policy-sets/default", {"policies": "permit(principal, action, resource) when { "
                                             + "[" * 300 + "1" + "]" * 300 + " };"}, "nested"),
            ("PUT", "/policy-sets/default", {"policies": 5}, "policies"),
            ("PUT", "/policy-sets/bad%20name", {"policies": ""}, "name"),
            ("PUT", "/policy-sets/default", {"policies": "", "extra": 1}, "unknown field"),
        ]
        for method, path, body, word in cases:
            out = self.error(method, path, body, 400)
            self.assertIn(word, out["error"]["message"].lower(), (path, body))
        # Deep JSON nesting and a body that is not JSON.
        deep = {"uid": uid("A", "a"), "attrs": {}, "parents": []}
        cur = deep["attrs"]
        for _ in range(100):
            cur["x"] = {}
            cur = cur["x"]
        self.error("PUT", "/entities", [deep], 400)
        st, _, out = self.g.http("PUT", PREFIX + "/entities", "[{", {"Content-Type": "application/json"})
        self.assertEqual((st, out["error"]["code"]), (400, "bad_json"))
        self.assertEqual(self.state(), before)
        # Bad requests to decide are refused too.
        for body in [{"principal": uid("User", "a"), "action": uid("Action", "a")},
                     {"principal": uid("User", "a"), "action": uid("Action", "a"), "resource": uid("D", "d"),
                      "context": [1]},
                     {"principal": uid("User", "a"), "action": uid("Action", "a"), "resource": uid("D", "d"),
                      "context": {"x": 1.5}},
                     {"principal": "nonsense", "action": uid("Action", "a"), "resource": uid("D", "d")},
                     {"principal": uid("User", "a"), "action": uid("Action", "a"), "resource": uid("D", "d"),
                      "extra": 1}]:
            self.error("POST", "/authorize", body, 400)

    def test_12_restart_keeps_everything(self):
        self.call("PUT", "/policy-sets/kept", {"policies": "permit(principal, action, resource);"}, expect=201)
        before = self.state()
        g = self.g
        old = g.kernel("policy")["pid"]
        st, _, body = g.http("POST", "/kernel-ports/policy/restart")
        self.assertEqual(st, 202, body)
        g.wait_kernel("policy", lambda k: k["state"] == "ready" and k["pid"] != old)
        self.assertEqual(self.state(), before)
        self.assertEqual(self.authorize(uid("User", "alice"), uid("Action", "read"), uid("Doc", "plan"))["decision"], "allow")


if __name__ == "__main__":
    unittest.main()
