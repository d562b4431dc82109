// An independent JWT-SVID verifier (npm `jose`) for the black-box tests.
//   node jwt_verify.mjs < {"jwks":{...},"cases":[{"token","audience","at_ms"?}],
//                          "forge":{"kid","sub","aud"}?}
// prints {"results":[{"ok":true,"payload":{...}} | {"ok":false,"error":"..."}],
//         "forged":"<a token signed by a fresh Ed25519 key with that kid>"?}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const jose = await import(require.resolve('jose'));

let input = '';
for await (const chunk of process.stdin) input += chunk;
const req = JSON.parse(input);
// A SPIFFE bundle marks its JWT authorities "use": "jwt-svid"; jose, a
// generic JOSE library, takes only "sig" (or none). Read it as a SPIFFE
// verifier does: the jwt-svid keys, their use understood.
const jwtKeys = req.jwks.keys.filter((k) => k.use === 'jwt-svid').map(({ use, ...k }) => k);
const jwks = jose.createLocalJWKSet({ keys: jwtKeys });
const results = [];
for (const c of req.cases) {
  try {
    const opts = { audience: c.audience, algorithms: ['EdDSA'], requiredClaims: ['sub', 'exp', 'aud'] };
    if (c.at_ms) opts.currentDate = new Date(c.at_ms);
    const { payload } = await jose.jwtVerify(c.token, jwks, opts);
    results.push({ ok: true, payload });
  } catch (e) {
    results.push({ ok: false, error: e.code || String(e) });
  }
}
const out = { results };
if (req.forge) {
  const { privateKey } = await jose.generateKeyPair('EdDSA', { crv: 'Ed25519' });
  out.forged = await new jose.SignJWT({ sub: req.forge.sub, aud: req.forge.aud })
    .setProtectedHeader({ alg: 'EdDSA', kid: req.forge.kid, typ: 'JWT' })
    .setIssuedAt()
    .setExpirationTime('5m')
    .sign(privateKey);
}
process.stdout.write(JSON.stringify(out) + '\n');
