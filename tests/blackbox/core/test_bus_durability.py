"""The message bus loses nothing it acknowledged across a kill -9.

10,000 messages are published (batched arrays and single publishes from
several threads at once, so group commit is exercised) and every one is
acknowledged. A consumer group then works through them; midway the bus
kernel is killed with SIGKILL while a publisher keeps publishing. The
supervisor restarts it on the same port and the consumer carries on.

Checked: every acknowledged publish (before and during the kill) is
delivered at least once with the payload it was published with; the
messages delivered by the last poll before the kill and never acked come
back after the restart with a higher delivery count; the kernel really was
restarted."""

import http.client
import os
import signal
import sys
import threading
import time
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, GraceTestCase, scaled  # noqa: E402
from test_bus import Bus  # noqa: E402

N_BATCHED = 8000  # in arrays of BATCH
BATCH = 200
N_SINGLE = 2000   # one message per request, from SINGLE_THREADS threads
SINGLE_THREADS = 16
VISIBILITY_MS = 1500
POLL_MAX = 250
HELD_BACK = 100   # delivered before the kill and never acked by us


class Durability(GraceTestCase):
    def test_kill9_midway_through_consumption(self):
        with GraceServer(kernels={"message_bus": {}}) as g:
            bus = Bus(g)
            published = {}  # offset -> payload id, acknowledged publishes only
            lock = threading.Lock()

            def note(answer, ids):
                answer = answer if isinstance(answer, list) else [answer]
                with lock:
                    for a, i in zip(answer, ids):
                        published[a["offset"]] = i

            for start in range(0, N_BATCHED, BATCH):
                ids = list(range(start, start + BATCH))
                note(bus.publish([{"subject": "dur.b.%d" % (i % 7), "payload": {"id": i}}
                                  for i in ids]), ids)

            def singles(t):
                for i in range(N_BATCHED + t, N_BATCHED + N_SINGLE, SINGLE_THREADS):
                    note(bus.publish({"subject": "dur.s", "payload": {"id": i}}), [i])
            ts = [threading.Thread(target=singles, args=(t,)) for t in range(SINGLE_THREADS)]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            self.assertEqual(len(published), N_BATCHED + N_SINGLE)
            stats = bus.ok("GET", "/stats")
            # Concurrent singles shared commits.
            self.assertLess(stats["batches"], N_BATCHED // BATCH + N_SINGLE)

            delivered = {}  # offset -> (payload id, max delivery count)
            held = []
            kill = {"done": False, "pid": bus.pid()}
            errors = []

            def call(method, path, body=None):
                """Retries across the restart; None if it never got an answer."""
                deadline = time.monotonic() + scaled(20)
                while time.monotonic() < deadline:
                    try:
                        st, _, out = bus.req(method, path, body, timeout=10)
                    except (OSError, http.client.HTTPException) as e:
                        errors.append(repr(e))
                        time.sleep(0.05)
                        continue
                    if st == 200:
                        return out
                    errors.append((st, out))
                    time.sleep(0.05)
                return None

            # A publisher that keeps going through the kill: what it got an
            # answer for must survive too.
            stop = threading.Event()
            during_ids = iter(range(10**6, 2 * 10**6))
            lost = {"n": 0}

            def publisher():
                while not stop.is_set():
                    i = next(during_ids)
                    try:
                        st, _, out = bus.req("POST", "/publish",
                                             {"subject": "dur.live", "payload": {"id": i}})
                    except (OSError, http.client.HTTPException):
                        lost["n"] += 1
                        continue  # no answer: not acknowledged
                    if st == 200:
                        note(out, [i])
                    time.sleep(0.002)
            pub = threading.Thread(target=publisher)

            # The group's settings go with its first poll; max with every one.
            q = "subject=dur.>&visibility_ms=%d&" % VISIBILITY_MS
            deadline = time.monotonic() + scaled(60)
            polls_after_kill = 0
            try:
                while True:
                    self.assertLess(time.monotonic(), deadline,
                                    "still missing %d messages"
                                    % len(set(published) - set(delivered)))
                    out = call("GET", "/groups/dur/poll?%smax=%d&wait_ms=200" % (q, POLL_MAX))
                    q = ""
                    self.assertIsNotNone(out, errors[-5:])
                    msgs = out["messages"]
                    for m in msgs:
                        pid = m["payload"]["id"]
                        prev = delivered.get(m["offset"])
                        self.assertTrue(prev is None or prev[0] == pid, m)
                        count = max(m["deliveries"], prev[1] if prev else 0)
                        delivered[m["offset"]] = (pid, count)
                    kill_now = not kill["done"] and \
                        len(delivered) >= (N_BATCHED + N_SINGLE) // 2
                    if kill_now:
                        # In flight when the bus dies: they must come back.
                        held = [m["offset"] for m in msgs[:HELD_BACK]]
                        msgs = msgs[HELD_BACK:]
                    if msgs:
                        # An ack lost in the kill is fine: that message comes again.
                        call("POST", "/groups/dur/ack",
                             {"receipts": [m["receipt"] for m in msgs]})
                    if pub.ident is None and not stop.is_set() and \
                            len(delivered) >= (N_BATCHED + N_SINGLE) // 4:
                        pub.start()  # a while before the kill, and through it
                    if kill["done"]:
                        polls_after_kill += 1
                    elif kill_now:
                        # From another thread, a moment later: most likely
                        # while our next poll is in the kernel's hands.
                        threading.Timer(0.05, os.kill, (kill["pid"], signal.SIGKILL)).start()
                        kill["done"] = True
                    # The publisher runs on a little past the restart.
                    if polls_after_kill == 5:
                        stop.set()
                        if pub.ident is not None:
                            pub.join()
                    if stop.is_set() and set(published) <= set(delivered) and \
                            all(delivered[o][1] >= 2 for o in held):
                        break
            finally:
                stop.set()
                if pub.ident is not None:
                    pub.join()

            # Every acknowledged publish came out, with its own payload.
            missing = set(published) - set(delivered)
            self.assertEqual(missing, set())
            for off, pid in published.items():
                self.assertEqual(delivered[off][0], pid)
            # The held-back ones were delivered again, after the restart.
            self.assertEqual(len(held), HELD_BACK)
            self.assertTrue(all(delivered[o][1] >= 2 for o in held))
            during = [o for o, i in published.items() if i >= 10**6]
            self.assertGreater(len(during), 0)
            # The bus really died and came back on its port.
            self.assertNotEqual(bus.pid(), kill["pid"])
            st, _, k = bus.api("GET", "/kernel-ports/message_bus")
            self.assertEqual(st, 200, k)
            self.assertGreaterEqual(k["restarts"], 1)
            stored = sum(x["count"] for x in bus.subjects("dur.>").values())
            self.assertGreaterEqual(stored, len(published))
            redelivered = sum(1 for _, n in delivered.values() if n >= 2)
            sys.stderr.write("published %d (%d during the kill), delivered %d, redelivered %d, "
                             "%d consumer errors and %d unanswered publishes around the kill\n"
                             % (len(published), len(during), len(delivered), redelivered,
                                len(errors), lost["n"]))

if __name__ == "__main__":
    unittest.main()
