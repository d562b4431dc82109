"""The workflow kernel (8122) through `grace serve`: definitions in the
Serverless Workflow DSL 1.0 checked when stored (an unknown task or a bad
jq expression is a 400 naming the JSON path, and nothing is stored), JSON
and YAML; a multi-step run with set, switch, for, fork, try/catch with
retry, wait and calls to a loopback server and to a kernel route, each
call with an idempotency key; versions kept by a run; suspend, resume,
cancel, retry from the failed task (what completed is not done again);
the history; a bus event on every change of a run's status; users who
see only their own definitions and runs through /workflow."""

import os
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402
from wf_helper import CountingServer  # noqa: E402

P = "/workflow"


def doc(name, tasks, version="1.0.0", **extra):
    d = {"document": {"dsl": "1.0.0", "namespace": "test", "name": name, "version": version},
         "do": tasks}
    d.update(extra)
    return d


class Workflow(ServerClassCase):
    @classmethod
    def make_server(cls):
        cls.srv = CountingServer()
        return GraceServer(config={"workflow": {"history_max": 200, "data_max_bytes": 4096}},
                           kernels={"workflow": {}, "message_bus": {}, "policy": {},
                                    "executor": {"watchdog_ms": 30000}})

    @classmethod
    def tearDownClass(cls):
        super().tearDownClass()
        cls.srv.close()

    def call(self, method, path, body=None, expect=200, headers=None):
        st, _, out = self.g.http(method, P + path, body, headers)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def store(self, d, headers=None):
        return self.call("POST", "/definitions", d, 201, headers)

    def start(self, name, input=None, headers=None, **kw):
        return self.call("POST", "/runs", dict({"definition": name, "input": input or {}}, **kw),
                         201, headers)

    def finish(self, rid, headers=None, status=("completed", "faulted", "cancelled")):
        def done():
            r = self.call("GET", "/runs/" + rid, headers=headers)
            return r if r["status"] in status else None
        return self.g.wait_for(done, scaled(30), interval=0.05, message="run " + rid)

    def history(self, rid, headers=None):
        return self.call("GET", "/runs/%s/history" % rid, headers=headers)["events"]

    def test_bad_definitions_name_the_path_and_store_nothing(self):
        bad = [
            (doc("bad1", [{"a": {"frobnicate": {}}}]), "/do/0/a/frobnicate: unknown task type"),
            (doc("bad1", [{"a": {"set": {"x": "${ .a | }"}}}]), "/do/0/a/set/x:"),
            (doc("bad1", [{"a": {"for": {"in": ".xs"}, "do": [
                {"b": {"switch": [{"c": {"when": ".y ==", "then": "end"}}]}}]}}]),
             "/do/0/a/do/0/b/switch/0/c/when:"),
            (doc("bad1", [{"a": {"set": {}, "then": "nowhere"}}]), "/do/0/a/then"),
            (doc("bad1", [{"a": {"call": "http", "with": {"method": "get",
                                                          "endpoint": "http://example.com/"}}}]),
             "/do/0/a/with/endpoint"),
            (doc("bad1", [{"a": {"wait": "soon"}}]), "/do/0/a/wait"),
            (doc("bad1", [{"a": {"try": [{"b": {"set": {}}}], "catch": {
                "retry": {"backoff": {"fibonacci": {}}}}}}]), "/do/0/a/catch/retry/backoff"),
            ({"document": {"dsl": "1.0.0", "namespace": "t", "name": "bad1"}, "do": []},
             "/document/version"),
        ]
        for d, where in bad:
            out = self.call("POST", "/definitions", d, 400)
            self.assertEqual(out["error"]["code"], "invalid")
            self.assertIn(where, out["error"]["message"])
        self.call("GET", "/definitions/bad1", expect=404)
        # YAML that does not parse: a 400 with the line
        st, _, out = self.g.http("POST", P + "/definitions", None,
                                 {"Content-Type": "application/yaml"})
        self.assertEqual(st, 400)

    def test_multi_step_run(self):
        s = self.srv
        d = doc("multi", [
            {"init": {"set": {"n": "${ .n }", "items": [1, 2, 3]}, "export": {"as": "{seen: 1}"}}},
            {"route": {"switch": [{"big": {"when": ".n > 100", "then": "end"}},
                                  {"small": {"then": "continue"}}]}},
            {"sum": {"for": {"each": "x", "in": ".items", "at": "i"}, "do": [
                {"add": {"set": {"n": "${ .n + $x }", "items": "${ .items }",
                                 "last": "${ $i }"}}}]}},
            {"both": {"fork": {"branches": [
                {"left": {"call": "http", "with": {"method": "post", "endpoint": s.url("/echo"),
                                                   "body": {"side": "left", "n": "${ .n }"}}}},
                {"right": {"do": [{"pause": {"wait": {"milliseconds": 50}}},
                                  {"r": {"set": {"side": "right", "ctx": "${ $context.seen }"}}}]}},
            ]}}},
            {"shape": {"set": {"left": "${ .[0].got }", "right": "${ .[1] }"}}},
            {"persist": {"try": [{"flaky": {"call": "http", "with": {
                "method": "get", "endpoint": s.url("/flaky/2")}}}],
                "catch": {"errors": {"with": {"type": "communication", "status": 503}},
                          "retry": {"delay": {"milliseconds": 20}, "backoff": {"exponential": {}},
                                    "limit": {"attempt": {"count": 5}}}},
                "output": {"as": "${ {flaky: .key} }"}, "export": {"as": "${ $context + {f: 1} }"}}},
            {"kernel": {"call": "http", "with": {"method": "get", "endpoint": "grace://message_bus/subjects"},
                        "output": {"as": "${ .subjects | type }"}}},
            {"done": {"set": {"ok": True, "kind": "${ . }", "ctx": "${ $context }",
                              "input": "${ $input.n }"}}},
        ], output={"as": "${ . + {wf: $workflow.definition.name} }"})
        self.store(d)
        r = self.start("multi", {"n": 1})
        r = self.finish(r["id"])
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["output"], {"ok": True, "kind": "array", "ctx": {"seen": 1, "f": 1},
                                       "input": 1, "wf": "multi"})
        ev = self.history(r["id"])
        done = [(e["pos"], e["output"]) for e in ev if e["type"] == "task.completed"]
        byname = dict(done)
        self.assertEqual(byname["/sum"], {"n": 7, "items": [1, 2, 3], "last": 2})
        self.assertEqual(byname["/shape"]["left"], {"side": "left", "n": 7})
        self.assertEqual(byname["/shape"]["right"], {"side": "right", "ctx": 1})
        self.assertEqual(byname["/persist"], {"flaky": "/persist/try3/flaky:1"}, [e for e in ev if "persist" in e.get("pos", "")])
        self.assertEqual([e["attempt"] for e in ev if e["type"] == "task.retrying"], [2, 3])
        self.assertEqual(ev[0]["type"], "run.started")
        self.assertEqual(ev[-1]["type"], "run.completed")
        # each call carried its key, the run's id and the position
        keys = [k for k in s.keys() if k.startswith(r["id"])]
        self.assertIn(r["id"] + ":/both/left:1", keys)
        self.assertEqual(len([k for k in keys if "/persist/" in k]), 3)
        # a header cannot smuggle a second line (an identity, with the token)
        self.store(doc("smuggle", [{"c": {"call": "http", "with": {
            "method": "get", "endpoint": "grace://message_bus/subjects",
            "headers": {"X-Note": "a\r\nX-Grace-Role: admin"}}}}]))
        f = self.finish(self.start("smuggle")["id"])
        self.assertEqual((f["status"], f["error"]["status"]), ("faulted", 503), f)
        self.assertIn("one line", f["error"]["detail"])
        # a loopback URL gets neither the internal token nor the identity
        for h in s.headers:
            self.assertFalse(any(k.lower() in ("x-grace-internal-token", "x-grace-user",
                                               "x-grace-role", "authorization") for k in h), h)

    def test_yaml_and_versions(self):
        y = ("document: {dsl: '1.0.0', namespace: test, name: ver, version: '1.0.0'}\n"
             "do:\n"
             "  - hold:\n"
             "      wait: PT0.3S\n"
             "  - say:\n"
             "      set:\n"
             "        v: 1\n"
             "        n: ${ .n * 2 }\n")
        st, _, out = self.g.http("POST", P + "/definitions", None,
                                 {"Content-Type": "application/yaml"}, )
        self.assertEqual(st, 400)
        from harness import http_request  # a raw body with its content type
        st, _, out = http_request(self.g.api_port, "POST", P + "/definitions", y.encode(),
                                  dict(self.g.api_headers, **{"Content-Type": "application/yaml"}))
        self.assertEqual(st, 201, out)
        r1 = self.start("ver", {"n": 2})
        v2 = doc("ver", [{"say": {"set": {"v": 2}}}], version="2.0.0")
        self.store(v2)
        self.call("POST", "/definitions", v2, 200)            # the same text again
        v2b = doc("ver", [{"say": {"set": {"v": 3}}}], version="2.0.0")
        self.call("POST", "/definitions", v2b, 409)           # another text, same version
        r2 = self.start("ver")
        r3 = self.start("ver", {"n": 5}, version="1.0.0")
        self.assertEqual(self.finish(r1["id"])["output"], {"v": 1, "n": 4})
        self.assertEqual(self.finish(r2["id"])["output"], {"v": 2})
        self.assertEqual(self.finish(r3["id"])["output"], {"v": 1, "n": 10})
        self.assertEqual(r1["definition"]["version"], "1.0.0")
        self.assertEqual(r2["definition"]["version"], "2.0.0")
        got = self.call("GET", "/definitions/ver?version=1.0.0")
        self.assertEqual(got["definition"]["do"][0]["hold"]["wait"], "PT0.3S")

    def test_suspend_resume_cancel_and_retry_from_the_failed_task(self):
        s = self.srv
        self.store(doc("ops", [{"w": {"wait": {"milliseconds": 400}}}, {"a": {"set": {"a": 1}}}]))
        r = self.start("ops")
        self.assertEqual(self.call("POST", "/runs/%s/suspend" % r["id"], {})["status"], "suspended")
        time.sleep(0.6)  # the timer falls due while suspended: nothing moves
        self.assertEqual(self.call("GET", "/runs/" + r["id"])["status"], "suspended")
        self.call("POST", "/runs/%s/suspend" % r["id"], {}, 409)
        self.call("POST", "/runs/%s/resume" % r["id"], {})
        self.assertEqual(self.finish(r["id"])["output"], {"a": 1})
        self.call("POST", "/runs/%s/cancel" % r["id"], {}, 409)

        c = self.start("ops")
        self.assertEqual(self.call("POST", "/runs/%s/cancel" % c["id"], {})["status"], "cancelled")
        time.sleep(0.5)
        self.assertEqual(self.call("GET", "/runs/" + c["id"])["status"], "cancelled")

        self.store(doc("gated", [
            {"first": {"call": "http", "with": {"method": "post", "endpoint": s.url("/echo"), "body": 1}}},
            {"second": {"call": "http", "with": {"method": "get", "endpoint": s.url("/gate")}}},
            {"third": {"set": {"after": "${ .key }"}}}]))
        g = self.start("gated")
        f = self.finish(g["id"])
        self.assertEqual(f["status"], "faulted")
        self.assertEqual(f["error"]["status"], 500)
        self.assertEqual(f["error"]["instance"], "/second")
        s.gate_open = True
        self.call("POST", "/runs/%s/retry" % g["id"], {})
        f = self.finish(g["id"])
        self.assertEqual(f["status"], "completed", f)
        self.assertEqual(f["output"], {"after": "/second:2"})
        keys = [k for k in s.keys() if k.startswith(g["id"])]
        self.assertEqual(keys, [g["id"] + ":/first:1", g["id"] + ":/second:1", g["id"] + ":/second:2"])
        types = [e["type"] for e in self.history(g["id"])]
        self.assertIn("run.faulted", types)
        self.assertIn("run.retried", types)
        self.assertEqual(types.count("task.completed"), 3)

    def test_bus_event_on_every_change(self):
        self.store(doc("busy", [{"w": {"wait": {"milliseconds": 200}}}, {"a": {"set": {"a": 1}}}]))
        r = self.start("busy")
        self.call("POST", "/runs/%s/suspend" % r["id"], {})
        self.call("POST", "/runs/%s/resume" % r["id"], {})
        self.finish(r["id"])

        def statuses():
            st, _, out = self.g.http("GET", "/kernels/message_bus/groups/wf%s/poll?subject=%s&max=100"
                                     % (r["id"][:8], "grace.workflow.run.%s.*" % r["id"]))
            self.assertEqual(st, 200, out)
            got = [m["subject"].rsplit(".", 1)[1] for m in out["messages"]]
            return got if "completed" in got else None
        got = self.g.wait_for(statuses, scaled(10), interval=0.1)
        self.assertEqual(got, ["running", "suspended", "running", "completed"])

    def test_users_see_their_own(self):
        self.g.create_user("wfalice", "alice-password-1")
        self.g.create_user("wfbob", "bob-password-1")
        ha = {"Authorization": "Bearer " + self.g.login("wfalice", "alice-password-1")}
        hb = {"Authorization": "Bearer " + self.g.login("wfbob", "bob-password-1")}
        self.store(doc("alices", [{"a": {"set": {"who": "${ $workflow.id | length }"}}}]), ha)
        self.call("POST", "/definitions", doc("alices", [{"a": {"set": {}}}], version="9"), 403, hb)
        self.call("POST", "/runs", {"definition": "alices"}, 404, hb)
        r = self.start("alices", headers=ha)
        self.assertEqual(r["owner"], "wfalice")
        self.assertEqual(self.finish(r["id"], ha)["output"], {"who": 32})
        self.call("GET", "/runs/" + r["id"], expect=404, headers=hb)
        self.call("GET", "/runs/%s/history" % r["id"], expect=404, headers=hb)
        self.call("POST", "/runs/%s/cancel" % r["id"], {}, 404, hb)
        self.assertEqual(self.call("GET", "/runs", headers=hb)["runs"], [])
        mine = self.call("GET", "/runs", headers=ha)["runs"]
        self.assertEqual([x["id"] for x in mine], [r["id"]])
        self.assertEqual([x["name"] for x in self.call("GET", "/definitions", headers=hb)["definitions"]], [])
        self.call("GET", "/definitions/alices", expect=404, headers=hb)
        # the admin sees everyone's
        self.assertIn(r["id"], [x["id"] for x in self.call("GET", "/runs?owner=wfalice")["runs"]])
        # a user's run calls a kernel as that user: the bus refuses them grace. subjects
        self.store(doc("bobemit", [{"e": {"emit": {"event": {"with": {"type": "grace.secret", "data": 1}}}}}]), hb)
        f = self.finish(self.start("bobemit", headers=hb)["id"], hb)
        self.assertEqual(f["status"], "faulted", f)
        self.assertEqual(f["error"]["status"], 403)
        # and policy decides each call for the run's user when it happens:
        # a user's run may publish, but not run a job (/executor is for admins)
        self.store(doc("bobjob", [{"ok": {"emit": {"event": {"with": {"type": "wf.bob", "data": 1}}}}},
                                  {"j": {"run": {"shell": {"command": "true"}}}}]), hb)
        f = self.finish(self.start("bobjob", headers=hb)["id"], hb)
        self.assertEqual((f["status"], f["error"]["instance"]), ("faulted", "/j"), f)
        self.assertEqual(f["error"]["job"]["error"]["code"], "call_forbidden", f)

    def test_run_emit_and_listen(self):
        self.store(doc("proc", [
            {"sh": {"run": {"shell": {"command": "echo \"$1-$2\"", "arguments": ["${ .a }", "b"]}}}},
            {"code": {"run": {"shell": {"command": "exit 0"}, "return": "code"}}},
            {"bad": {"try": [{"fail": {"run": {"shell": {"command": "exit 3"}}}}],
                     "catch": {"as": "e", "do": [{"why": {"set": {"status": "${ $e.status }",
                                                                  "code": "${ $e.job.exit_code }"}}}]}}},
            {"out": {"set": {"code": "${ .code }"}}}]))
        r = self.finish(self.start("proc", {"a": "x"})["id"])
        self.assertEqual(r["status"], "completed", r)
        self.assertEqual(r["output"], {"code": 3})
        done = {e["pos"]: e.get("output") for e in self.history(r["id"]) if e["type"] == "task.completed"}
        self.assertEqual(done["/sh"], "x-b\n")
        self.assertEqual(done["/code"], 0)

        self.store(doc("chat", [
            {"hear": {"listen": {"to": {"one": {"with": {"type": "wf.test.ping"}}}}}},
            {"say": {"emit": {"event": {"with": {"type": "wf.test.pong", "source": "test",
                                                 "data": "${ .[0].data }"}}}}}]))
        r = self.start("chat")

        def listening():
            st, _, out = self.g.http("GET", "/kernels/message_bus/groups")
            return any(g["name"].startswith("wf_" + r["id"]) for g in out["groups"]) or None
        self.g.wait_for(listening, scaled(10), interval=0.05)
        self.assertEqual(self.call("GET", "/runs/" + r["id"])["waiting_on"],
                         [{"pos": "/hear", "kind": "listen"}])
        st, _, out = self.g.http("POST", "/bus/publish", {"subject": "wf.test.ping",
                                                         "payload": {"type": "wf.test.ping", "data": 42}})
        self.assertEqual(st, 200, out)
        self.assertEqual(self.finish(r["id"])["status"], "completed")
        st, _, out = self.g.http("GET", "/kernels/message_bus/groups/wfpong/poll?subject=wf.test.pong")
        self.assertEqual(len(out["messages"]), 1, out)
        ce = out["messages"][0]["payload"]
        self.assertEqual((ce["type"], ce["data"], ce["specversion"]), ("wf.test.pong", 42, "1.0"))
        self.assertEqual(ce["id"], r["id"] + ":/say:1")

    def test_limits(self):
        self.store(doc("endless", [{"l": {"for": {"in": "${ [range(0; 1000)] }"}, "do": [
            {"s": {"set": {"i": "${ $index }"}}}]}}]))
        f = self.finish(self.start("endless")["id"])
        self.assertEqual(f["status"], "faulted")
        self.assertIn("history_max", f["error"]["detail"])
        self.assertLessEqual(f["events"], 200)
        self.store(doc("fat", [{"s": {"set": "${ [range(0; 2000)] }"}}]))
        f = self.finish(self.start("fat")["id"])
        self.assertEqual(f["status"], "faulted")
        self.assertIn("data_max_bytes", f["error"]["detail"])
        self.call("POST", "/runs", {"definition": "fat", "input": {"x": "y" * 5000}}, 413)
        self.call("POST", "/runs", {"definition": "fat", "bogus": 1}, 400)

    def test_list_and_query(self):
        self.store(doc("quick", [{"a": {"set": {"a": 1}}}]))
        ids = [self.start("quick")["id"] for _ in range(3)]
        for i in ids:
            self.finish(i)
        out = self.call("GET", "/runs?definition=quick&status=completed&limit=2")
        self.assertEqual(len(out["runs"]), 2)
        rest = self.call("GET", "/runs?definition=quick&status=completed&limit=2&before=" + out["next"])
        self.assertEqual(sorted(x["id"] for x in out["runs"] + rest["runs"]), sorted(ids))
        self.assertEqual(self.call("GET", "/runs?definition=quick&status=faulted")["runs"], [])
        self.call("GET", "/runs?status=nope", expect=400)


if __name__ == "__main__":
    unittest.main()
