#!/usr/bin/env python3
"""Trust benchmark (issue 12): JWT-SVID issue and verify rates, Grace's
trust kernel against npm `jose` on Node.js in the same run.

    python3 bench/trust_bench.py [--n 2000] [--rounds 3]

Starts `grace serve` with the trust kernel alone (the tests' harness, in a
temporary directory, on a port offset of its own) and measures, over one
keep-alive connection to the kernel's port as a kernel would call it:
`POST /jwt-svid` (issue: parse, key lookup in SQLite, Ed25519 sign, JSON)
and `POST /jwt-svid/validate` (verify against the bundle). Then `jose` in
one Node process signs the same claims with its own Ed25519 key and
verifies Grace's tokens against Grace's bundle, in a loop with no HTTP.
The ratio (jose / Grace) is therefore what the HTTP round trip and the
store cost over the bare cryptography of a mature JOSE library; each
figure is the best of --rounds. Everything started is stopped by pid.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(REPO, "tests", "blackbox"))
from grace_bench import KeepAlive  # noqa: E402
from harness import GraceServer  # noqa: E402

JOSE = r"""
import { createRequire } from 'node:module';
const require = createRequire(process.argv[2] + '/package.json');
const jose = await import(require.resolve('jose'));
const req = JSON.parse(require('fs').readFileSync(0, 'utf8'));
const keys = req.jwks.keys.filter((k) => k.use === 'jwt-svid').map(({ use, ...k }) => k);
const jwks = jose.createLocalJWKSet({ keys });
const { privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
let t = performance.now();
for (let i = 0; i < req.n; i++)
  await new jose.SignJWT({ sub: 'spiffe://grace.local/kernel/audit', aud: ['bench'] })
    .setProtectedHeader({ alg: 'EdDSA', kid: 'k', typ: 'JWT' }).setIssuedAt()
    .setExpirationTime('5m').sign(privateKey);
const sign = (performance.now() - t) / 1000;
t = performance.now();
for (let i = 0; i < req.n; i++)
  await jose.jwtVerify(req.tokens[i % req.tokens.length], jwks, { audience: 'bench' });
const verify = (performance.now() - t) / 1000;
console.log(JSON.stringify({ sign, verify }));
"""


def grace_round(conn, n):
    body = json.dumps({"audience": "bench"}).encode()
    t = time.perf_counter()
    tokens = []
    for _ in range(n):
        st, data = conn.request("POST", "/jwt-svid", body)
        assert st == 200, data
        tokens.append(json.loads(data)["svids"][0]["svid"])
    issue = time.perf_counter() - t
    t = time.perf_counter()
    for tok in tokens:
        st, data = conn.request("POST", "/jwt-svid/validate",
                                json.dumps({"svid": tok, "audience": "bench"}).encode())
        assert st == 200, data
    return issue, time.perf_counter() - t, tokens


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=2000)
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args()
    g = GraceServer(kernels={"trust": {}})
    try:
        g.start()
        conn = KeepAlive(g.kernel_port("trust"),
                         headers=dict(g.token_headers(), **{"X-Grace-Caller": "audit"}))
        st, data = conn.request("GET", "/bundle")
        jwks = json.loads(data)
        best = {"g_issue": 1e9, "g_verify": 1e9, "j_sign": 1e9, "j_verify": 1e9}
        for _ in range(a.rounds):
            issue, verify, tokens = grace_round(conn, a.n)
            best["g_issue"] = min(best["g_issue"], issue)
            best["g_verify"] = min(best["g_verify"], verify)
            with tempfile.NamedTemporaryFile("w", suffix=".mjs") as js:
                js.write(JOSE)
                js.flush()
                r = subprocess.run(["node", js.name, os.path.join(REPO, "tests", "node")],
                                   input=json.dumps({"jwks": jwks, "tokens": tokens, "n": a.n}),
                                   capture_output=True, text=True, check=False)
            if r.returncode:
                sys.exit("node: " + r.stderr)
            j = json.loads(r.stdout)
            best["j_sign"] = min(best["j_sign"], j["sign"])
            best["j_verify"] = min(best["j_verify"], j["verify"])
        rate = {k: a.n / v for k, v in best.items()}
        print("JWT-SVIDs, n=%d, best of %d" % (a.n, a.rounds))
        print("  issue:  grace %8.0f/s (HTTP)   jose sign   %8.0f/s (in process)   jose/grace %.2f"
              % (rate["g_issue"], rate["j_sign"], rate["j_sign"] / rate["g_issue"]))
        print("  verify: grace %8.0f/s (HTTP)   jose verify %8.0f/s (in process)   jose/grace %.2f"
              % (rate["g_verify"], rate["j_verify"], rate["j_verify"] / rate["g_verify"]))
    finally:
        g.close()


if __name__ == "__main__":
    main()
