#!/usr/bin/env python3
"""The learning kernel's regret on the issue's simulated fault, through its
real routes (run by hand):

    python3 bench/learning_bench.py [--decisions 1000] [--runs 3]

A fault that one playbook heals 90 % of the time and another 20 %, the
weaker one first in the static order (as a healer's table can have it).
Each run is a fresh learner (a kernel name of its own: a context bucket
of its own) making --decisions decisions through POST
/kernels/learning/decide, each rewarded through POST /reward from a
seeded draw of the environment. Compared in the same simulation (the
same environment seed per run):

  - thompson        the kernel's default (Thompson sampling, 5 % floor)
  - epsilon_greedy  the kernel with [learning] epsilon 10 %
  - fixed order     the static order: always the 20 % playbook
  - oracle          always the 90 % playbook (regret 0 by definition)

Regret is the pseudo-regret, sum over decisions of 0.9 - P(heal | the
playbook run), so the fixed order's is 0.7 a decision. The table prints
the mean cumulative regret at checkpoints (the curve: it flattens when
the learner has found the better playbook), the ratio to the fixed
order, and the share of the last 100 decisions that ran the 90 %
playbook. Uses tests/blackbox/harness.py to start `grace serve` with the
learning kernel alone in a temporary directory.
"""

import argparse
import os
import random
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "blackbox"))

from harness import GraceServer  # noqa: E402

GOOD, BAD = "good_fix", "weak_fix"
HEAL_P = {GOOD: 0.9, BAD: 0.2}
L = "/kernels/learning"


def run_policy(g, policy, run, decisions, seed):
    """One fresh learner; returns the cumulative regret per decision and
    the arms it ran."""
    env = random.Random(seed)
    regret, cum, arms = 0.0, [], []
    kernel = "sim_%s_%d" % (policy, run)
    for _ in range(decisions):
        st, _, d = g.http("POST", L + "/decide",
                          {"issue": "process_hung", "kernel": kernel, "arms": [BAD, GOOD]})
        if st != 200:
            raise SystemExit("decide: %s %r" % (st, d))
        arm = d["chosen"]
        r = 1 if env.random() < HEAL_P[arm] else 0
        st, _, a = g.http("POST", L + "/reward",
                          {"decision_id": d["decision_id"], "arm": arm, "reward": r})
        if st != 200:
            raise SystemExit("reward: %s %r" % (st, a))
        regret += HEAL_P[GOOD] - HEAL_P[arm]
        cum.append(regret)
        arms.append(arm)
    return cum, arms


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--decisions", type=int, default=1000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    n = args.decisions
    checkpoints = [c for c in (10, 50, 100, 250, 500, 1000, 2000, 5000) if c <= n]
    if n not in checkpoints:
        checkpoints.append(n)
    config = {"learning": {"seed": "1", "relapse_window_ms": "0", "epsilon_percent": "10"}}
    results = {}
    t0 = time.monotonic()
    with GraceServer(kernels={"learning": {}}, config=config) as g:
        for policy in ("thompson", "epsilon_greedy"):
            st, _, ans = g.http("POST", L + "/policy", {"policy": policy, "reason": "bench"})
            if st != 201:
                raise SystemExit("policy: %s %r" % (st, ans))
            curves, last = [], []
            for run in range(args.runs):
                cum, arms = run_policy(g, policy, run, n, seed=1000 + run)
                curves.append(cum)
                last.append(arms[-100:].count(GOOD) / len(arms[-100:]))
                sys.stderr.write("%s run %d: regret %.1f\n" % (policy, run + 1, cum[-1]))
            results[policy] = ([sum(c[i - 1] for c in curves) / len(curves)
                                for i in checkpoints], sum(last) / len(last))
    elapsed = time.monotonic() - t0
    fixed = [(HEAL_P[GOOD] - HEAL_P[BAD]) * i for i in checkpoints]
    results["fixed order"] = (fixed, 0.0)
    results["oracle"] = ([0.0 for _ in checkpoints], 1.0)
    print("Cumulative regret (mean of %d runs; %d decisions each, through the routes; "
          "%.0f s in all)" % (args.runs, n, elapsed))
    head = "| policy | " + " | ".join("t=%d" % c for c in checkpoints) + \
        " | / fixed order at t=%d | 90 %% playbook in the last 100 |" % n
    print(head)
    print("|" + "---|" * (len(checkpoints) + 3))
    for name in ("thompson", "epsilon_greedy", "fixed order", "oracle"):
        curve, share = results[name]
        ratio = curve[-1] / fixed[-1]
        print("| %s | %s | %.3f | %.0f %% |" % (name, " | ".join("%.1f" % v for v in curve),
                                                ratio, 100 * share))


if __name__ == "__main__":
    main()
