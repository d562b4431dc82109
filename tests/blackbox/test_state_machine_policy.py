"""The state_machine kernel with the policy kernel deciding each event when
it happens (docs/state_machine.md "Authorization"): a policy that forbids
one event type to users makes it 403 for a user and leaves it to an admin;
a delayed event of a user whose permission was removed meanwhile is denied
when it fires and recorded in the instance's history (the state unchanged);
a user's emitted events reach the bus as that user's; and with the policy
kernel stopped, an event is refused 503 (fail closed)."""

import os
import sys
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase, scaled  # noqa: E402

P = "/state-machine"
USER, USER_PW = "smeve", "eve-password-123"

LAMP = {
    "id": "lamp",
    "initial": "off",
    "states": {
        "off": {"on": {"ON": "on", "BREAK": "broken", "ARM": "armed"}},
        "on": {"on": {"OFF": "off"},
               "entry": [{"type": "emit", "event": {"type": "lit"}}]},
        # armed: switches itself on after a while, as its owner
        "armed": {"after": {"1500": "on"}, "on": {"OFF": "off"}},
        "broken": {"type": "final"},
    },
}

NO_BREAK = ('@id("no-break-for-users")\n'
            'forbid (principal in Role::"user", action == Action::"state_machine.send", resource)\n'
            '  when { context.event == "BREAK" };')
NO_EVE = ('@id("no-eve")\n'
          'forbid (principal == User::"%s", action == Action::"state_machine.send", resource);' % USER)


class StateMachinePolicy(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"state_machine": {}, "message_bus": {}, "policy": {}})

    @classmethod
    def prepare(cls):
        cls.g.create_user(USER, USER_PW)

    def setUp(self):
        self.g.set_test_policy(None)
        self.user = {"Authorization": "Bearer " + self.g.login(USER, USER_PW)}

    def tearDown(self):
        self.g.set_test_policy(None)

    def call(self, method, path, body=None, expect=200, headers=None):
        st, _, out = self.g.http(method, P + path, body, headers)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def machine(self, name):
        st, _, out = self.g.http("POST", P + "/machines", {"name": name, "machine": LAMP})
        self.assertIn(st, (201, 403), out)  # 403: stored by the admin already

    def send_status(self, iid, ev, headers=None):
        st, _, out = self.g.http("POST", P + "/instances/%s/events" % iid, {"event": {"type": ev}}, headers)
        return st, out

    def test_one_event_forbidden_to_users_allowed_to_admins(self):
        self.machine("lamp1")
        mine = self.call("POST", "/instances", {"machine": "lamp1"}, 201, self.user)["id"]
        admins = self.call("POST", "/instances", {"machine": "lamp1"}, 201)["id"]
        # the default set: a user drives their own instance
        self.assertEqual(self.send_status(mine, "ON", self.user)[0], 200)
        self.assertEqual(self.send_status(mine, "OFF", self.user)[0], 200)
        self.g.set_test_policy(NO_BREAK)
        # the kernel's watch brings the new set within a moment
        self.g.wait_for(lambda: self.send_status(mine, "BREAK", self.user)[0] == 403, scaled(5),
                        message="BREAK refused to the user")
        st, out = self.send_status(mine, "BREAK", self.user)
        self.assertEqual((st, out["error"]["code"]), (403, "forbidden"))
        self.assertIn("BREAK", out["error"]["message"])
        got = self.call("GET", "/instances/" + mine, headers=self.user)
        self.assertEqual((got["value"], got["version"]), ("off", 3))
        # other events still go; an admin may send BREAK, to its own or to the user's
        self.assertEqual(self.send_status(mine, "ON", self.user)[0], 200)
        self.assertEqual(self.send_status(admins, "BREAK")[0], 200)
        self.assertEqual(self.send_status(mine, "OFF")[0], 200)
        st, out = self.send_status(mine, "BREAK")
        self.assertEqual((st, out["status"]), (200, "done"))
        # the history has no trace of the refused sends
        h = self.call("GET", "/instances/%s/history" % mine, headers=self.user)["transitions"]
        self.assertEqual([t["event"]["type"] for t in h],
                         ["xstate.init", "ON", "OFF", "ON", "OFF", "BREAK"])

    def test_delayed_event_denied_when_it_fires_and_recorded(self):
        self.machine("lamp2")
        iid = self.call("POST", "/instances", {"machine": "lamp2"}, 201, self.user)["id"]
        out = self.call("POST", "/instances/%s/events" % iid, {"event": {"type": "ARM"}}, 200, self.user)
        self.assertEqual(out["value"], "armed")
        # the user's permission is removed before the 1.5 s timer fires
        self.g.set_test_policy(NO_EVE)
        self.g.wait_for(lambda: self.send_status(iid, "NOTHING", self.user)[0] == 403, scaled(5),
                        message="the user's sends refused")

        def denial():
            h = self.call("GET", "/instances/%s/history" % iid)["transitions"]
            return h if h[-1].get("denied") else None
        h = self.g.wait_for(denial, scaled(10), message="the delayed event's denial in the history")
        last = h[-1]
        self.assertEqual(last["source"], "timer")
        self.assertEqual(last["event"]["type"], "xstate.after.1500.lamp.armed")
        self.assertEqual(last["value"], "armed")
        self.assertIn("policy", last["denied"])
        got = self.call("GET", "/instances/" + iid)
        self.assertEqual((got["value"], got["version"]), ("armed", 3))
        # no other row carries a denial; the timer is gone (never fires later)
        self.assertEqual([bool(t.get("denied")) for t in h], [False, False, True])
        self.g.set_test_policy(None)
        self.g.wait_for(lambda: self.send_status(iid, "OFF", self.user)[0] == 200, scaled(5),
                        message="the user's sends allowed again")
        self.assertEqual(self.call("GET", "/instances/" + iid)["value"], "off")

    def test_delayed_event_allowed_acts_as_owner_and_emits_as_owner(self):
        self.machine("lamp3")
        iid = self.call("POST", "/instances", {"machine": "lamp3"}, 201, self.user)["id"]
        self.call("POST", "/instances/%s/events" % iid, {"event": {"type": "ARM"}}, 200, self.user)
        self.g.wait_for(lambda: self.call("GET", "/instances/" + iid)["value"] == "on", scaled(10),
                        message="the delayed event, allowed")
        h = self.call("GET", "/instances/%s/history" % iid)["transitions"]
        self.assertEqual(h[-1]["source"], "timer")
        self.assertNotIn("denied", h[-1])

        # entering "on" emitted, as the user: on state_machine.emitted (grace. is not theirs)
        def seen():
            st, _, body = self.g.http("GET", "/bus/subjects?subject=state_machine.emitted")
            return st == 200 and "state_machine.emitted" in str(body)
        self.g.wait_for(seen, scaled(10), message="the user's emitted event on the bus")

    def test_fail_closed_without_the_policy_kernel(self):
        self.machine("lamp4")
        iid = self.call("POST", "/instances", {"machine": "lamp4"}, 201, self.user)["id"]
        st, _, out = self.g.http("POST", "/kernel-ports/policy/stop")
        self.assertIn(st, (200, 202), out)
        try:
            self.g.wait_kernel("policy", lambda k: k["state"] != "ready", timeout=scaled(15))
            # the gateway refuses the user first; the kernel itself, asked
            # directly as that user, refuses too
            hdr = dict(self.g.token_headers())
            hdr.update({"X-Grace-User": USER, "X-Grace-Role": "user", "X-Grace-Caller": "gateway"})
            self.g.wait_for(lambda: self.g.kernel_http("state_machine", "POST", "/instances/%s/events" % iid,
                                                        {"event": {"type": "ON"}}, hdr)[0] == 503,
                            scaled(10), message="503 from the kernel")
            st, hd, out = self.g.kernel_http("state_machine", "POST", "/instances/%s/events" % iid,
                                             {"event": {"type": "ON"}}, hdr)
            self.assertEqual(out["error"]["code"], "policy_unavailable")
        finally:
            st, _, out = self.g.http("POST", "/kernel-ports/policy/start")
            self.g.wait_kernel("policy", lambda k: k["state"] == "ready", timeout=scaled(30))
        self.g.wait_for(lambda: self.send_status(iid, "ON", self.user)[0] == 200, scaled(10),
                        message="allowed again")


if __name__ == "__main__":
    unittest.main()
