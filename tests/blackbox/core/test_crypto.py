"""Crypto (8111) through `grace serve` and the gateway at /kernels/crypto/*:
keys by name with versions, Ed25519 signatures (checked against the RFC 8032
test vector), XChaCha20-Poly1305 (checked against the draft-irtf-cfrg-xchacha
test vector), sealed boxes, rotation keeping old signatures and ciphertexts
valid, hashes checked with hashlib, random bytes, keys sealed at rest under a
0600 master key, and bad input getting a clear 4xx."""

import base64
import hashlib
import os
import stat
import sys
import unittest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), '..'))
from harness import GraceServer, ServerClassCase  # noqa: E402
from session import AdminApi  # noqa: E402

PREFIX = "/kernels/crypto"

# RFC 8032 section 7.1, TEST 1: the empty message.
RFC8032_SEED = bytes.fromhex("9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60")
RFC8032_PUBLIC = bytes.fromhex("d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a")
RFC8032_SIG = bytes.fromhex(
    "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e06522490155"
    "5fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b")

# draft-irtf-cfrg-xchacha-03, appendix A.3.1.
XC_KEY = bytes(range(0x80, 0xa0))
XC_NONCE = bytes(range(0x40, 0x58))
XC_AAD = bytes.fromhex("50515253c0c1c2c3c4c5c6c7")
XC_PLAINTEXT = (b"Ladies and Gentlemen of the class of '99: If I could offer you only one tip "
                b"for the future, sunscreen would be it.")
XC_CIPHERTEXT = bytes.fromhex(
    "bd6d179d3e83d43b9576579493c0e939572a1700252bfaccbed2902c21396cbb"
    "731c7f1b0b4aa6440bf3a82f4eda7e39ae64c6708c54c216cb96b72e1213b452"
    "2f8c9ba40db5d945b11b69b982c1bb9e3f3fac2bc369488f76b2383565d3fff9"
    "21f9664c97637da9768812f615c68b13b52e"
    "c0875924c1c7987947deafd8780acf49")


def b64(data):
    return base64.b64encode(data).decode()


def b64url(data):
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def token_parts(token):
    prefix, scheme, version, payload = token.split(".")
    raw = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))
    return prefix, scheme, int(version), raw


class Crypto(ServerClassCase):
    @classmethod
    def make_server(cls):
        return GraceServer(kernels={"crypto": {}})

    @classmethod
    def prepare(cls):
        cls.api = AdminApi(cls.g)

    def call(self, method, path, body=None, expect=200):
        st, _, out = self.api.http(method, PREFIX + path, body)
        self.assertEqual(st, expect, "%s %s -> %s %r" % (method, path, st, out))
        return out

    def error(self, method, path, body, status, code=None):
        out = self.call(method, path, body, expect=status)
        self.assertIsInstance(out, dict, out)
        self.assertTrue(out["error"]["message"])
        if code:
            self.assertEqual(out["error"]["code"], code, out)
        return out

    def create(self, name, type_, secret=None):
        body = {"name": name, "type": type_}
        if secret is not None:
            body["import"] = b64(secret)
        return self.call("POST", "/keys", body, expect=201)

    def decrypt(self, key, token, **extra):
        body = {"key": key, "ciphertext": token}
        body.update(extra)
        return self.call("POST", "/decrypt", body)

    def assert_no_secret(self, obj, secrets=()):
        text = repr(obj)
        for word in ("private", "secret", "seed", "sealed"):
            self.assertNotIn(word, text.lower())
        for s in secrets:
            self.assertNotIn(b64(s), text)
            self.assertNotIn(s.hex(), text)

    # -- keys

    def test_01_keys(self):
        k = self.create("signer", "ed25519")
        self.assertEqual((k["name"], k["type"], k["latest_version"]), ("signer", "ed25519", 1))
        self.assertEqual(len(base64.b64decode(k["versions"][0]["public_key"])), 32)
        x = self.create("box", "x25519")
        self.assertEqual(len(base64.b64decode(x["versions"][0]["public_key"])), 32)
        s = self.create("vault", "symmetric")
        self.assertNotIn("public_key", s["versions"][0])
        self.error("POST", "/keys", {"name": "signer", "type": "ed25519"}, 409, "exists")
        names = {k["name"]: k for k in self.call("GET", "/keys")["keys"]}
        self.assertTrue({"signer", "box", "vault"} <= set(names))
        self.assertEqual(names["vault"]["type"], "symmetric")
        got = self.call("GET", "/keys/signer")
        self.assertEqual(got, k)
        self.assert_no_secret(self.call("GET", "/keys"))
        self.assert_no_secret(got)

    def test_02_ed25519_matches_rfc8032(self):
        k = self.create("rfc8032", "ed25519", RFC8032_SEED)
        self.assertEqual(base64.b64decode(k["versions"][0]["public_key"]), RFC8032_PUBLIC)
        self.assert_no_secret(k, [RFC8032_SEED])
        out = self.call("POST", "/sign", {"key": "rfc8032", "data_b64": ""})
        self.assertEqual(base64.b64decode(out["signature"]), RFC8032_SIG)
        self.assertEqual(out["version"], 1)
        v = self.call("POST", "/verify", {"key": "rfc8032", "data_b64": "",
                                          "signature": b64(RFC8032_SIG)})
        self.assertEqual((v["valid"], v["version"]), (True, 1))

    def test_03_sign_verify_and_rotation(self):
        self.create("rotating", "ed25519")
        s1 = self.call("POST", "/sign", {"key": "rotating", "data": "hello"})
        self.assertEqual(s1["version"], 1)
        ok = self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                           "signature": s1["signature"]})
        self.assertEqual((ok["valid"], ok["version"]), (True, 1))
        # The same bytes as base64 verify too; other bytes do not.
        ok = self.call("POST", "/verify", {"key": "rotating", "data_b64": b64(b"hello"),
                                           "signature": s1["signature"]})
        self.assertTrue(ok["valid"])
        bad = self.call("POST", "/verify", {"key": "rotating", "data": "hellp",
                                            "signature": s1["signature"]})
        self.assertEqual((bad["valid"], bad["version"]), (False, None))
        flipped = bytearray(base64.b64decode(s1["signature"]))
        flipped[5] ^= 1
        self.assertFalse(self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                                       "signature": b64(bytes(flipped))})["valid"])

        r = self.call("POST", "/keys/rotating/rotate")
        self.assertEqual(r["latest_version"], 2)
        self.assertEqual([v["version"] for v in r["versions"]], [1, 2])
        self.assertNotEqual(r["versions"][0]["public_key"], r["versions"][1]["public_key"])
        s2 = self.call("POST", "/sign", {"key": "rotating", "data": "hello"})
        self.assertEqual(s2["version"], 2)
        self.assertNotEqual(s2["signature"], s1["signature"])
        # Old signatures still verify, with the version that made them.
        old = self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                            "signature": s1["signature"]})
        self.assertEqual((old["valid"], old["version"]), (True, 1))
        self.assertTrue(self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                                      "signature": s1["signature"],
                                                      "version": 1})["valid"])
        self.assertFalse(self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                                       "signature": s1["signature"],
                                                       "version": 2})["valid"])
        new = self.call("POST", "/verify", {"key": "rotating", "data": "hello",
                                            "signature": s2["signature"]})
        self.assertEqual((new["valid"], new["version"]), (True, 2))
        self.error("POST", "/verify", {"key": "rotating", "data": "hello",
                                       "signature": s1["signature"], "version": 3}, 404)

    def test_04_xchacha20poly1305_matches_the_draft_vector(self):
        self.create("draft", "symmetric", XC_KEY)
        token = "grace1.xchacha20poly1305.1." + b64url(XC_NONCE + XC_CIPHERTEXT)
        out = self.call("POST", "/decrypt", {"key": "draft", "ciphertext": token,
                                             "aad_b64": b64(XC_AAD)})
        self.assertEqual(base64.b64decode(out["plaintext_b64"]), XC_PLAINTEXT)
        self.assertEqual(out["plaintext"], XC_PLAINTEXT.decode())
        self.assertEqual(out["version"], 1)
        # Without the associated data it does not authenticate.
        self.error("POST", "/decrypt", {"key": "draft", "ciphertext": token}, 400,
                   "decrypt_failed")

    def test_05_symmetric_round_trip_and_rotation(self):
        self.create("sym", "symmetric")
        enc = self.call("POST", "/encrypt", {"key": "sym", "plaintext": "attack at dawn",
                                             "aad": "ctx-1"})
        prefix, scheme, version, payload = token_parts(enc["ciphertext"])
        self.assertEqual((prefix, scheme, version), ("grace1", "xchacha20poly1305", 1))
        self.assertEqual(len(payload), 24 + len("attack at dawn") + 16)
        self.assertNotIn(b"attack", payload)
        dec = self.call("POST", "/decrypt", {"key": "sym", "ciphertext": enc["ciphertext"],
                                             "aad": "ctx-1"})
        self.assertEqual((dec["plaintext"], dec["version"]), ("attack at dawn", 1))
        # Same plaintext, fresh nonce: a different ciphertext.
        again = self.call("POST", "/encrypt", {"key": "sym", "plaintext": "attack at dawn",
                                               "aad": "ctx-1"})
        self.assertNotEqual(again["ciphertext"], enc["ciphertext"])
        self.error("POST", "/decrypt", {"key": "sym", "ciphertext": enc["ciphertext"],
                                        "aad": "ctx-2"}, 400, "decrypt_failed")
        tampered = bytearray(payload)
        tampered[-1] ^= 1
        self.error("POST", "/decrypt", {"key": "sym", "ciphertext": "grace1.xchacha20poly1305.1."
                                        + b64url(bytes(tampered)), "aad": "ctx-1"}, 400,
                   "decrypt_failed")
        binary = os.urandom(200)
        enc_b = self.call("POST", "/encrypt", {"key": "sym", "plaintext_b64": b64(binary)})
        dec_b = self.call("POST", "/decrypt", {"key": "sym", "ciphertext": enc_b["ciphertext"]})
        self.assertEqual(base64.b64decode(dec_b["plaintext_b64"]), binary)

        self.call("POST", "/keys/sym/rotate")
        enc2 = self.call("POST", "/encrypt", {"key": "sym", "plaintext": "later", "aad": "ctx-1"})
        self.assertEqual(enc2["version"], 2)
        self.assertEqual(token_parts(enc2["ciphertext"])[2], 2)
        # Both generations still decrypt.
        self.assertEqual(self.decrypt("sym", enc["ciphertext"], aad="ctx-1")["plaintext"],
                         "attack at dawn")
        self.assertEqual(self.decrypt("sym", enc2["ciphertext"], aad="ctx-1")["plaintext"],
                         "later")
        # A token claiming the other version does not open.
        forged = enc["ciphertext"].replace(".1.", ".2.", 1)
        self.error("POST", "/decrypt", {"key": "sym", "ciphertext": forged, "aad": "ctx-1"},
                   400, "decrypt_failed")

    def test_06_sealed_boxes(self):
        self.create("inbox", "x25519")
        enc = self.call("POST", "/encrypt", {"key": "inbox", "plaintext": "for your eyes"})
        prefix, scheme, version, payload = token_parts(enc["ciphertext"])
        self.assertEqual((scheme, version, len(payload)), ("sealedbox", 1, 48 + 13))
        dec = self.call("POST", "/decrypt", {"key": "inbox", "ciphertext": enc["ciphertext"]})
        self.assertEqual(dec["plaintext"], "for your eyes")
        self.error("POST", "/encrypt", {"key": "inbox", "plaintext": "x", "aad": "y"}, 400)
        self.call("POST", "/keys/inbox/rotate")
        enc2 = self.call("POST", "/encrypt", {"key": "inbox", "plaintext": "newer"})
        self.assertEqual(enc2["version"], 2)
        self.assertEqual(self.decrypt("inbox", enc["ciphertext"])["plaintext"], "for your eyes")
        # A sealed box for another key does not open here.
        self.create("other-inbox", "x25519")
        self.error("POST", "/decrypt", {"key": "other-inbox", "ciphertext": enc["ciphertext"]},
                   400, "decrypt_failed")
        # Nor is a sealed box a symmetric ciphertext.
        self.error("POST", "/decrypt", {"key": "sym", "ciphertext": enc["ciphertext"]}, 400,
                   "invalid")

    def test_07_hashes(self):
        data = b"grace \x00\xff hashes"
        for alg, ref in (("sha256", hashlib.sha256(data)), ("sha512", hashlib.sha512(data)),
                         ("blake2b", hashlib.blake2b(data, digest_size=32))):
            out = self.call("POST", "/hash", {"algorithm": alg, "data_b64": b64(data)})
            self.assertEqual(out["hash"], ref.hexdigest(), alg)
        out = self.call("POST", "/hash", {"algorithm": "blake2b", "data": "abc", "bytes": 64})
        self.assertEqual(out["hash"], hashlib.blake2b(b"abc").hexdigest())
        out = self.call("POST", "/hash", {"algorithm": "sha256", "data": "☃"})
        self.assertEqual(out["hash"], hashlib.sha256("☃".encode()).hexdigest())
        self.error("POST", "/hash", {"algorithm": "md5", "data": "x"}, 400)
        self.error("POST", "/hash", {"algorithm": "blake2b", "data": "x", "bytes": 8}, 400)
        self.error("POST", "/hash", {"algorithm": "sha256"}, 400)

    def test_08_random(self):
        a = self.call("GET", "/random?bytes=16")
        self.assertEqual(a["bytes"], 16)
        self.assertEqual(len(base64.b64decode(a["data_b64"])), 16)
        b = self.call("GET", "/random?bytes=16")
        self.assertNotEqual(a["data_b64"], b["data_b64"])
        self.assertEqual(len(base64.b64decode(self.call("GET", "/random?bytes=1024")["data_b64"])),
                         1024)
        self.assertEqual(len(base64.b64decode(self.call("GET", "/random")["data_b64"])), 32)
        for bad in ("0", "1025", "-1", "x"):
            self.error("GET", "/random?bytes=" + bad, None, 400)

    def test_09_bad_input(self):
        self.error("POST", "/sign", {"key": "nope", "data": "x"}, 404, "not_found")
        self.error("GET", "/keys/nope", None, 404, "not_found")
        self.error("POST", "/keys/nope/rotate", None, 404, "not_found")
        self.error("POST", "/encrypt", {"key": "nope", "plaintext": "x"}, 404)
        self.error("POST", "/sign", {"key": "signer", "data_b64": "@@@"}, 400, "bad_base64")
        self.error("POST", "/sign", {"key": "signer", "data": "a", "data_b64": "YQ=="}, 400)
        self.error("POST", "/sign", {"key": "signer", "data": 5}, 400)
        self.error("POST", "/sign", {"key": "signer"}, 400)
        self.error("POST", "/sign", {"key": "vault", "data": "x"}, 400)  # not ed25519
        self.error("POST", "/sign", "not json at all", 400, "bad_json")
        self.error("POST", "/sign", [1, 2], 400, "bad_json")
        self.error("POST", "/encrypt", {"key": "vault", "plaintext": "x", "add": "typo"}, 400)
        self.error("POST", "/encrypt", {"key": "signer", "plaintext": "x"}, 400)
        self.error("POST", "/verify", {"key": "signer", "data": "x", "signature": "!!"}, 400,
                   "bad_base64")
        self.error("POST", "/verify", {"key": "signer", "data": "x", "signature": b64(b"short")},
                   400)
        self.error("POST", "/verify", {"key": "signer", "data": "x", "signature": b64(bytes(64)),
                                       "version": 0}, 400)
        self.error("POST", "/decrypt", {"key": "vault", "ciphertext": "garbage"}, 400)
        for token in ("grace1.xchacha20poly1305.1.!!", "grace1.xchacha20poly1305.1.AAAA",
                      "grace1.xchacha20poly1305.0.AAAA", "grace9.xchacha20poly1305.1.AAAA"):
            self.error("POST", "/decrypt", {"key": "vault", "ciphertext": token}, 400, "invalid")
        self.error("POST", "/keys", {"name": "k", "type": "rsa"}, 400)
        self.error("POST", "/keys", {"name": "bad name/../x", "type": "ed25519"}, 400)
        self.error("POST", "/keys", {"name": "", "type": "ed25519"}, 400)
        self.error("POST", "/keys", {"name": "imp", "type": "ed25519", "import": "AAAA"}, 400,
                   "bad_base64")
        self.error("POST", "/keys", {"name": "imp", "type": "symmetric", "import": "%%%%"}, 400,
                   "bad_base64")
        self.error("POST", "/keys", {"type": "ed25519"}, 400)
        self.error("POST", "/keys/signer/rotate", {"import": "AA=="}, 400, "bad_base64")
        # DELETE /keys/NAME exists now (deletion: test_crypto_delete.py); PUT does not.
        self.error("PUT", "/keys/signer", None, 405)

    def test_10_sealed_at_rest(self):
        secret = os.urandom(32)
        self.create("at-rest", "symmetric", secret)
        master = os.path.join(self.g.data_dir, "crypto.master")
        st = os.stat(master)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(st.st_size, 32)
        with open(master, "rb") as f:
            master_key = f.read()
        blob = b""
        for suffix in ("", "-wal"):
            p = os.path.join(self.g.data_dir, "crypto.db" + suffix)
            if os.path.exists(p):
                with open(p, "rb") as f:
                    blob += f.read()
        self.assertNotIn(secret, blob)
        self.assertNotIn(RFC8032_SEED, blob)
        self.assertNotIn(master_key, blob)
        # The imported key works, so it is in there, sealed.
        enc = self.call("POST", "/encrypt", {"key": "at-rest", "plaintext": "x"})
        self.assertEqual(self.decrypt("at-rest", enc["ciphertext"])["plaintext"], "x")

    def test_11_master_key_with_loose_mode_is_refused(self):
        # Runs last: it stops and restarts the kernel.
        g, api = self.g, self.api
        sig = self.call("POST", "/sign", {"key": "signer", "data": "before"})
        master = os.path.join(g.data_dir, "crypto.master")
        st, _, body = api.http("POST", "/kernel-ports/crypto/stop")
        self.assertEqual(st, 202, body)
        api.wait_kernel("crypto", lambda k: k["state"] == "stopped")
        os.chmod(master, 0o644)
        st, _, body = api.http("POST", "/kernel-ports/crypto/start")
        self.assertEqual(st, 202, body)
        g.wait_for(lambda: "it must be 0600" in g.log(),
                   message="the kernel refuses the master key")
        k = api.wait_kernel("crypto", lambda k: k["state"] in ("restarting", "failed"))
        self.assertNotEqual(k["state"], "ready")
        st, _, _ = api.http("POST", PREFIX + "/sign", {"key": "signer", "data": "x"})
        self.assertGreaterEqual(st, 500)
        # Fixed, the kernel comes back with every key.
        os.chmod(master, 0o600)
        api.http("POST", "/kernel-ports/crypto/restart")
        api.http("POST", "/kernel-ports/crypto/start")
        api.wait_kernel("crypto", lambda k: k["state"] == "ready")
        v = self.call("POST", "/verify", {"key": "signer", "data": "before",
                                          "signature": sig["signature"]})
        self.assertTrue(v["valid"])


if __name__ == "__main__":
    unittest.main()
