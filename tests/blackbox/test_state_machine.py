"""The state_machine kernel (8123) through `grace serve`: a machine stored
and checked (a bad one refused naming the JSON pointer, nothing stored),
instances started and driven by events (guards in jq over the context and
the event, assignments, a final state), optimistic concurrency (a stale
version is 409), the history of transitions, delayed transitions that fire
on their own and survive a kill -9 of the kernel, state kept across the
kill, emitted events on the bus, and users who see only their own
instances through /state-machine."""

import os
import signal
import sys
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

P = "/state-machine"

DOOR = {
    "id": "door",
    "initial": "closed",
    "context": {"opened": 0, "log": []},
    "states": {
        "closed": {
            "on": {
                "OPEN": [
                    {"target": "open", "guard": ".event.key == .context.key",
                     "actions": [{"type": "assign", "assignment": {"opened": ".context.opened + 1"}}]},
                    {"actions": [{"type": "emit", "event": "{type: \"denied\", key: .event.key}"}]},
                ],
                "BREAK": "broken",
            },
        },
        "open": {
            "entry": [{"type": "assign", "assignment": {"log": ".context.log + [\"opened\"]"}}],
            "after": {"400": "closed"},
            "on": {"CLOSE": "closed", "HOLD": {"target": "held"}},
        },
        "held": {"after": {"2500": "closed"}},
        "broken": {"type": "final"},
    },
}


class StateMachine(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(config={"state_machine": {"instances_per_user": 3, "event_max_bytes": 1024,
                                                     "context_max_bytes": 2048}},
                           kernels={"state_machine": {}, "message_bus": {}})

    def call(self, method, path, body=None, expect=200, headers=None):
        st, _, out = self.g.http(method, P + path, body, headers)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def machine(self, name, cfg=DOOR):
        return self.call("POST", "/machines", {"name": name, "machine": cfg}, 201)

    def start(self, name, **kw):
        return self.call("POST", "/instances", dict({"machine": name}, **kw), 201)

    def send(self, iid, ev, expect=200, **kw):
        return self.call("POST", "/instances/%s/events" % iid, dict({"event": ev}, **kw), expect)

    def test_bad_definitions_name_the_path_and_store_nothing(self):
        bad = [
            ({"initial": "a", "states": {"a": {"on": {"GO": "nowhere"}}}}, "/states/a/on/GO/target"),
            ({"initial": "a", "states": {"a": {"on": {"GO": {"target": "a", "guard": ".context.x >"}}}}},
             "/states/a/on/GO/guard"),
            ({"initial": "zz", "states": {"a": {}}}, "initial state \"zz\""),
            ({"initial": "a", "states": {"a": {"entry": [{"type": "log"}]}}}, "/states/a/entry/0"),
            ({"initial": "a", "states": {"a": {"invoke": {}}}}, "\"invoke\" is not supported"),
        ]
        for cfg, where in bad:
            out = self.call("POST", "/machines", {"name": "bad", "machine": cfg}, 400)
            self.assertEqual(out["error"]["code"], "invalid")
            self.assertIn(where, out["error"]["message"])
        self.call("GET", "/machines/bad", expect=404)
        self.call("POST", "/machines", {"name": "no such/name", "machine": DOOR}, 400)
        self.call("POST", "/machines", {"name": "x", "machine": DOOR, "extra": 1}, 400)

    def test_events_guards_versions_history(self):
        self.assertEqual(self.machine("door1"), {"name": "door1", "version": 1})
        i = self.start("door1", context={"opened": 0, "log": [], "key": "k1"})
        iid = i["id"]
        self.assertEqual((i["value"], i["version"], i["status"]), ("closed", 1, "active"))
        # the guard fails: the second transition (targetless) is taken
        out = self.send(iid, {"type": "OPEN", "key": "wrong"})
        self.assertEqual((out["value"], out["version"], out["context"]["opened"]), ("closed", 2, 0))
        out = self.send(iid, {"type": "OPEN", "key": "k1"}, version=2)
        self.assertEqual((out["value"], out["version"], out["context"]["opened"]), ("open", 3, 1))
        self.assertEqual(out["context"]["log"], ["opened"])
        # a stale version changes nothing
        err = self.send(iid, {"type": "CLOSE"}, expect=409, version=2)
        self.assertEqual(err["error"]["code"], "conflict")
        self.assertEqual(self.call("GET", "/instances/" + iid)["version"], 3)
        out = self.send(iid, {"type": "HOLD"}, version=3)
        self.assertEqual(out["value"], "held")
        out = self.send(iid, {"type": "NOTHING"})
        self.assertEqual((out["value"], out["version"]), ("held", 5))
        h = self.call("GET", "/instances/%s/history" % iid)["transitions"]
        self.assertEqual([t["version"] for t in h], [1, 2, 3, 4, 5])
        self.assertEqual([t["value"] for t in h], ["closed", "closed", "open", "held", "held"])
        self.assertEqual([t["source"] for t in h], ["start", "api", "api", "api", "api"])
        self.assertEqual(h[2]["event"], {"type": "OPEN", "key": "k1"})
        # bad events: nothing stored
        self.send(iid, {"no": "type"}, expect=400)
        self.send(iid, {"type": "xstate.init"}, expect=400)
        self.assertEqual(self.call("GET", "/instances/" + iid)["version"], 5)
        self.call("POST", "/instances", {"machine": "nope"}, 404)

    def test_final_state_and_versions_of_definitions(self):
        self.machine("door2")
        a = self.start("door2")
        v2 = dict(DOOR, initial="broken")
        self.assertEqual(self.machine("door2", v2)["version"], 2)
        b = self.start("door2")
        self.assertEqual((b["machine_version"], b["status"], b["value"]), (2, "done", "broken"))
        # a keeps its version
        out = self.send(a["id"], {"type": "BREAK"})
        self.assertEqual((out["machine_version"], out["status"]), (1, "done"))
        self.send(a["id"], {"type": "OPEN"}, expect=409)
        self.assertEqual(self.call("GET", "/machines/door2?version=1")["machine"]["initial"], "closed")

    def test_delayed_events_survive_kill9(self):
        self.machine("door3")
        iid = self.start("door3", context={"opened": 0, "log": [], "key": "k"})["id"]
        self.send(iid, {"type": "OPEN", "key": "k"})
        # after 400 ms: closed, on its own
        self.g.wait_for(lambda: self.call("GET", "/instances/" + iid)["value"] == "closed",
                        scaled(10), message="the delayed CLOSE")
        self.send(iid, {"type": "OPEN", "key": "k"})
        out = self.send(iid, {"type": "HOLD"})
        self.assertEqual(out["value"], "held")
        # the 2.5 s timer is pending: kill -9 the kernel, it must still fire
        k = self.g.kernel("state_machine")
        old = k["pid"]
        os.kill(old, signal.SIGKILL)
        self.g.wait_kernel("state_machine", lambda k: k["state"] == "ready" and k["pid"] != old,
                           timeout=scaled(30))
        got = self.call("GET", "/instances/" + iid)
        self.assertEqual(got["context"]["opened"], 2)
        self.g.wait_for(lambda: self.call("GET", "/instances/" + iid)["value"] == "closed",
                        scaled(15), message="the delayed event after the restart")
        h = self.call("GET", "/instances/%s/history" % iid)["transitions"]
        self.assertEqual([t["source"] for t in h][-1], "timer")
        self.assertEqual(h[-1]["event"]["type"], "xstate.after.2500.door.held")
        # fired once, not again
        time.sleep(0.3)
        self.assertEqual(len(self.call("GET", "/instances/%s/history" % iid)["transitions"]), len(h))

    def test_emit_reaches_the_bus(self):
        self.machine("door4")
        iid = self.start("door4", context={"opened": 0, "log": [], "key": "k"})["id"]
        self.send(iid, {"type": "OPEN", "key": "nope"})

        def seen():
            st, _, body = self.g.http("GET", "/bus/subjects")
            return st == 200 and "grace.state_machine.emitted" in str(body)
        self.g.wait_for(seen, scaled(10), message="the emitted event on the bus")

    def test_limits_from_the_configuration(self):
        self.machine("lim")
        iid = self.start("lim")["id"]
        self.send(iid, {"type": "OPEN", "key": "x" * 2000}, expect=413)
        self.call("POST", "/instances", {"machine": "lim", "context": {"big": "y" * 3000}}, 413)
        self.assertEqual(self.call("GET", "/instances/" + iid)["version"], 1)
        self.g.create_user("smcarol", "carol-password-1")
        h = {"Authorization": "Bearer " + self.g.login("smcarol", "carol-password-1")}
        for _ in range(3):
            self.call("POST", "/instances", {"machine": "lim"}, 201, h)
        out = self.call("POST", "/instances", {"machine": "lim"}, 403, h)
        self.assertEqual(out["error"]["code"], "quota_exceeded")

    def test_users_see_only_their_own(self):
        self.g.create_user("smalice", "alice-password-1")
        self.g.create_user("smbob", "bob-password-1")
        ta = self.g.login("smalice", "alice-password-1")
        tb = self.g.login("smbob", "bob-password-1")
        ha = {"Authorization": "Bearer " + ta}
        hb = {"Authorization": "Bearer " + tb}
        self.call("POST", "/machines", {"name": "alices", "machine": DOOR}, 201, ha)
        # bob may not add a version of alice's machine, but may use it
        self.call("POST", "/machines", {"name": "alices", "machine": DOOR}, 403, hb)
        i = self.call("POST", "/instances", {"machine": "alices"}, 201, ha)
        self.assertEqual(i["owner"], "smalice")
        self.call("GET", "/instances/" + i["id"], None, 404, hb)
        self.call("POST", "/instances/%s/events" % i["id"], {"event": {"type": "BREAK"}}, 404, hb)
        mine = self.call("GET", "/instances", None, 200, hb)["instances"]
        self.assertEqual(mine, [])
        self.call("GET", "/instances/" + i["id"], None, 200, ha)
        # an admin sees it
        self.call("GET", "/instances/" + i["id"])


if __name__ == "__main__":
    unittest.main()
