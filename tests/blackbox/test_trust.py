"""The trust kernel (8112) through `grace serve`: SPIFFE identities for the
kernels. A kernel asking for itself gets a JWT-SVID and an X.509-SVID of its
own SPIFFE ID and no other's; an admin names the workload, a user gets
none. Every SVID is checked by an independent implementation: JWT-SVIDs by
npm `jose` against the trust bundle served as a SPIFFE JWKS, X.509-SVIDs by
`openssl verify` against the CA in the bundle (the SPIFFE ID in the URI
SAN). A tampered, wrong-audience, wrong-key or expired token is refused by
jose and by the kernel's own /jwt-svid/validate. Rotation keeps the old key
in the bundle (overlap), the master key is a 0600 file in the data
directory, and keys survive a restart. Bad input gets JSON errors."""

import base64
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
import time
import unittest

sys.path.insert(0, os.path.dirname(__file__))
from harness import GraceServer, ServerClassCase  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
JWT_VERIFY = os.path.join(HERE, "js", "jwt_verify.mjs")
AUDIT_ID = "spiffe://grace.local/kernel/audit"


def tool(name):
    exe = shutil.which(name)
    if not exe:
        raise AssertionError("%s is needed: run scripts/bootstrap.sh --test" % name)
    return exe


def jose(jwks, cases, forge=None):
    req = {"jwks": jwks, "cases": cases}
    if forge:
        req["forge"] = forge
    r = subprocess.run([tool("node"), JWT_VERIFY], input=json.dumps(req), capture_output=True,
                       text=True, timeout=60)
    if r.returncode != 0:
        raise AssertionError("jwt_verify.mjs failed:\n" + r.stderr)
    return json.loads(r.stdout)


def b64url_flip(token, part):
    """The token with one character of `part` (0 header, 1 claims) changed."""
    parts = token.split(".")
    s = parts[part]
    i = len(s) // 2
    parts[part] = s[:i] + ("A" if s[i] != "A" else "B") + s[i + 1:]
    return ".".join(parts)


class Trust(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"trust": {}})

    def kcall(self, method, path, body=None, caller="audit", expect=200, headers=None):
        h = dict(headers or {})
        if caller:
            h["X-Grace-Caller"] = caller
        st, hdrs, out = self.g.kernel_http("trust", method, path, body, h)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def err(self, method, path, body, status, code, caller="audit", headers=None):
        out = self.kcall(method, path, body, caller, status, headers)
        self.assertIn("error", out, out)
        self.assertEqual(out["error"]["code"], code, out)
        self.assertTrue(out["error"]["message"])
        self.assertTrue(out["error"]["request_id"])
        return out

    def bundle(self):
        return self.kcall("GET", "/bundle")

    def jwt(self, audience="svc", caller="audit", **kw):
        body = dict({"audience": audience}, **kw)
        return self.kcall("POST", "/jwt-svid", body, caller)["svids"][0]

    def validate(self, token, audience="svc", expect=200):
        return self.kcall("POST", "/jwt-svid/validate", {"svid": token, "audience": audience},
                          expect=expect)

    # -- the bundle

    def test_bundle_is_a_spiffe_jwks(self):
        b = self.bundle()
        self.assertIsInstance(b["spiffe_sequence"], int)
        self.assertGreater(b["spiffe_refresh_hint"], 0)
        uses = sorted(k["use"] for k in b["keys"])
        self.assertIn("jwt-svid", uses)
        self.assertIn("x509-svid", uses)
        for k in b["keys"]:
            if k["use"] == "jwt-svid":
                self.assertEqual((k["kty"], k["crv"]), ("OKP", "Ed25519"))
                self.assertTrue(k["kid"])
            else:
                self.assertEqual((k["kty"], k["crv"]), ("EC", "P-256"))
                self.assertEqual(len(k["x5c"]), 1)
        # through the gateway, for an admin
        st, _, out = self.g.http("GET", "/kernels/trust/bundle")
        self.assertEqual(st, 200, out)
        self.assertEqual(out["keys"], b["keys"])

    # -- JWT-SVIDs

    def test_jwt_svid_verified_by_jose_and_by_us(self):
        svid = self.jwt(["svc", "other"], ttl_s=120)
        self.assertEqual(svid["spiffe_id"], AUDIT_ID)
        now = time.time()
        self.assertTrue(now + 100 < svid["expires_at"] <= now + 125, svid)
        tok = svid["svid"]
        header = json.loads(base64.urlsafe_b64decode(tok.split(".")[0] + "=="))
        self.assertEqual(header["alg"], "EdDSA")
        jwks = self.bundle()
        fake_kid = [k for k in jwks["keys"] if k["use"] == "jwt-svid"][-1]["kid"]
        cases = [
            {"token": tok, "audience": "svc"},
            {"token": tok, "audience": "nope"},
            {"token": b64url_flip(tok, 1), "audience": "svc"},
            {"token": b64url_flip(tok, 0), "audience": "svc"},
            {"token": tok, "audience": "svc", "at_ms": int((now + 200) * 1000)},
        ]
        out = jose(jwks, cases, forge={"kid": fake_kid, "sub": AUDIT_ID, "aud": "svc"})
        res = out["results"]
        self.assertTrue(res[0]["ok"], res[0])
        self.assertEqual(res[0]["payload"]["sub"], AUDIT_ID)
        self.assertEqual(res[0]["payload"]["aud"], ["svc", "other"])
        self.assertEqual(res[1]["error"], "ERR_JWT_CLAIM_VALIDATION_FAILED")
        self.assertFalse(res[2]["ok"], res[2])
        self.assertFalse(res[3]["ok"], res[3])
        self.assertEqual(res[4]["error"], "ERR_JWT_EXPIRED")
        forged = out["forged"]
        res2 = jose(jwks, [{"token": forged, "audience": "svc"}])["results"]
        self.assertEqual(res2[0]["error"], "ERR_JWS_SIGNATURE_VERIFICATION_FAILED")
        # our own verifier agrees
        ok = self.validate(tok)
        self.assertEqual(ok["spiffe_id"], AUDIT_ID)
        self.assertEqual(ok["claims"]["aud"], ["svc", "other"])
        for bad, why in ((self.validate(tok, "nope", 400), "audience"),
                         (self.validate(b64url_flip(tok, 1), expect=400), "signature"),
                         (self.validate(forged, expect=400), "signature"),
                         (self.validate("x.y", expect=400), "three")):
            self.assertEqual(bad["error"]["code"], "invalid_token", bad)
            self.assertIn(why, bad["error"]["message"])

    def test_expired_token_refused_by_both(self):
        svid = self.jwt(ttl_s=10)
        res = jose(self.bundle(), [{"token": svid["svid"], "audience": "svc",
                                    "at_ms": (svid["expires_at"] + 1) * 1000}])["results"]
        self.assertEqual(res[0]["error"], "ERR_JWT_EXPIRED")
        # our side: the unit test drives the clock (tests/unit/test_trust.c);
        # here the token is still fresh and must pass.
        self.assertEqual(self.validate(svid["svid"])["spiffe_id"], AUDIT_ID)

    def test_identity_is_the_callers_own(self):
        self.assertEqual(self.jwt(caller="scheduler")["spiffe_id"],
                         "spiffe://grace.local/kernel/scheduler")
        # The main process's identity is not had on the internal token: it
        # proves itself with an attestation only it holds (test_trust_attest).
        self.err("POST", "/jwt-svid", {"audience": "svc"}, 403, "forbidden", caller="grace")
        self.err("POST", "/jwt-svid", {"audience": "svc"}, 403, "forbidden", caller="gateway")
        self.err("POST", "/jwt-svid", {"audience": "svc", "for": "crypto"}, 403, "forbidden")
        self.err("POST", "/jwt-svid", {"audience": "svc"}, 403, "forbidden", caller="nosuch")
        self.err("POST", "/jwt-svid", {"audience": "svc"}, 403, "forbidden", caller=None)
        user = {"X-Grace-User": "bob", "X-Grace-Role": "user"}
        self.err("POST", "/jwt-svid", {"audience": "svc", "for": "audit"}, 403, "forbidden",
                 caller="grace", headers=user)
        self.err("POST", "/rotate", {"kind": "jwt"}, 403, "forbidden", caller="grace",
                 headers=user)
        self.err("POST", "/rotate", {"kind": "jwt"}, 403, "forbidden")
        # an admin names the workload, through the gateway
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid",
                                 {"audience": "svc", "for": "crypto"})
        self.assertEqual(st, 200, out)
        self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/kernel/crypto")
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid",
                                 {"audience": "svc", "for": "grace"})
        self.assertEqual(st, 200, out)
        self.assertEqual(out["svids"][0]["spiffe_id"], "spiffe://grace.local/grace")
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid", {"audience": "svc"})
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)
        st, _, out = self.g.http("POST", "/kernels/trust/jwt-svid",
                                 {"audience": "svc", "for": "nosuch"})
        self.assertEqual((st, out["error"]["code"]), (400, "invalid"), out)

    def test_bad_input(self):
        P = "/jwt-svid"
        self.err("POST", P, {}, 400, "invalid")
        self.err("POST", P, {"audience": ""}, 400, "invalid")
        self.err("POST", P, {"audience": []}, 400, "invalid")
        self.err("POST", P, {"audience": ["a"] * 17}, 400, "invalid")
        self.err("POST", P, {"audience": "x" * 257}, 400, "invalid")
        self.err("POST", P, {"audience": "a", "ttl_s": 3601}, 400, "invalid")
        self.err("POST", P, {"audience": "a", "ttl_s": 9}, 400, "invalid")
        self.err("POST", P, {"audience": "a", "ttl_s": "60"}, 400, "invalid")
        self.err("POST", P, {"audience": "a", "aud": "b"}, 400, "invalid")
        self.err("POST", P, {"audience": "a", "for": 3}, 400, "invalid")
        self.err("POST", "/x509-svid", {"ttl_s": 86401}, 400, "invalid")
        self.err("POST", "/jwt-svid/validate", {"svid": "a.b.c"}, 400, "invalid")
        self.err("POST", "/jwt-svid/validate", {"svid": "a" * 9000, "audience": "a"}, 400,
                 "invalid_token")
        self.err("POST", "/rotate", {"kind": "rsa"}, 400, "invalid", caller="grace",
                 headers={"X-Grace-User": "admin", "X-Grace-Role": "admin"})
        self.err("POST", P, {"audience": "a" * 20000}, 413, "too_large")
        st, _, out = self.g.kernel_http("trust", "POST", P, b"{not json",
                                        {"X-Grace-Caller": "audit"})
        self.assertEqual(st, 400, out)
        self.assertIn("error", out)

    # -- X.509-SVIDs

    def test_x509_svid_verified_by_openssl(self):
        out = self.kcall("POST", "/x509-svid", {"ttl_s": 600})["svids"][0]
        self.assertEqual(out["spiffe_id"], AUDIT_ID)
        ca_b64 = [k for k in self.bundle()["keys"] if k["use"] == "x509-svid"]
        openssl = tool("openssl")
        with tempfile.TemporaryDirectory() as d:
            leaf, key, ca = (os.path.join(d, n) for n in ("leaf.pem", "key.pem", "ca.pem"))
            for path, text in ((leaf, out["x509_svid"]), (key, out["x509_svid_key"]),
                               (ca, out["bundle"])):
                with open(path, "w") as f:
                    f.write(text)
            # the CA handed out is one in the bundle (x5c)
            der = subprocess.run([openssl, "x509", "-in", ca, "-outform", "DER"],
                                 capture_output=True, check=True).stdout
            self.assertIn(base64.b64encode(der).decode(), [k["x5c"][0] for k in ca_b64])
            for purpose in ("sslclient", "sslserver"):
                r = subprocess.run([openssl, "verify", "-x509_strict", "-purpose", purpose,
                                    "-CAfile", ca, leaf], capture_output=True, text=True)
                self.assertEqual(r.returncode, 0, r.stdout + r.stderr)
                self.assertIn("OK", r.stdout)
            r = subprocess.run([openssl, "x509", "-in", leaf, "-noout", "-ext",
                                "subjectAltName,basicConstraints"], capture_output=True, text=True,
                               check=True)
            self.assertIn("URI:" + AUDIT_ID, r.stdout)
            self.assertIn("CA:FALSE", r.stdout)
            pub_cert = subprocess.run([openssl, "x509", "-in", leaf, "-noout", "-pubkey"],
                                      capture_output=True, check=True).stdout
            pub_key = subprocess.run([openssl, "pkey", "-in", key, "-pubout"],
                                     capture_output=True, check=True).stdout
            self.assertEqual(pub_cert, pub_key)
            # another CA does not verify it
            other = os.path.join(d, "other.pem")
            subprocess.run([openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt",
                            "ec_paramgen_curve:P-256", "-nodes", "-subj", "/O=other",
                            "-keyout", os.path.join(d, "o.key"), "-out", other, "-days", "1"],
                           capture_output=True, check=True)
            r = subprocess.run([openssl, "verify", "-CAfile", other, leaf],
                               capture_output=True, text=True)
            self.assertNotEqual(r.returncode, 0, r.stdout)

    # -- rotation, storage, restart (last: it restarts the server)

    def test_zz_rotation_overlap_and_restart(self):
        before = self.bundle()
        old = self.jwt()
        admin = {"X-Grace-User": "admin", "X-Grace-Role": "admin"}
        after = self.kcall("POST", "/rotate", {"kind": "jwt"}, caller="grace", headers=admin)
        self.assertGreater(after["spiffe_sequence"], before["spiffe_sequence"])
        kids = [k["kid"] for k in after["keys"] if k["use"] == "jwt-svid"]
        self.assertEqual(len(kids), len([k for k in before["keys"] if k["use"] == "jwt-svid"]) + 1)
        new = self.jwt()
        kid = lambda t: json.loads(base64.urlsafe_b64decode(t.split(".")[0] + "=="))["kid"]
        self.assertNotEqual(kid(old["svid"]), kid(new["svid"]))
        self.assertEqual(kid(new["svid"]), kids[-1])
        # both verify, by jose and by us: the old key overlaps
        res = jose(after, [{"token": old["svid"], "audience": "svc"},
                           {"token": new["svid"], "audience": "svc"}])["results"]
        self.assertTrue(res[0]["ok"] and res[1]["ok"], res)
        self.validate(old["svid"])
        self.validate(new["svid"])
        # the new bundle without the old key refuses the old token (jose)
        only_new = {"keys": [k for k in after["keys"] if k.get("kid") != kid(old["svid"])]}
        res = jose(only_new, [{"token": old["svid"], "audience": "svc"}])["results"]
        self.assertFalse(res[0]["ok"], res)
        x = self.kcall("POST", "/rotate", {"kind": "x509"}, caller="grace", headers=admin)
        self.assertEqual(len([k for k in x["keys"] if k["use"] == "x509-svid"]),
                         len([k for k in after["keys"] if k["use"] == "x509-svid"]) + 1)
        # the master key: a 0600 file of 32 bytes in the data directory
        master = os.path.join(self.g.data_dir, "trust.master")
        st = os.stat(master)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)
        # a restart keeps every key: old SVIDs still validate
        self.g.stop()
        self.g.start()
        self.assertEqual(self.bundle()["keys"], x["keys"])
        self.validate(old["svid"])
        self.assertEqual(kid(self.jwt()["svid"]), kids[-1])


if __name__ == "__main__":
    unittest.main()
