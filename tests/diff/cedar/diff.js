// The differential test of Grace's Cedar engine against Cedar's reference
// implementation (@cedar-policy/cedar-wasm, the official build of the Rust
// crate). Both engines decide the same cases: the hand corpus in corpus/
// and thousands of generated ones (gen.js). They must agree on whether the
// policy text parses, whether the entities are accepted, and for every
// request on the decision, the determining policies and which policies
// errored. cedar-wasm names policies by position (policy0, policy1 ...):
// the C side answers with positions too.
//
//   node diff.js --cli build/tests/diff/cedar/cedar_cli [--cases N]
//        [--seed S] [--corpus DIR] [--verbose]
//
// GRACE_SANITIZED=1 (the sanitizer run in CI) lowers the default number of
// generated cases; the corpus always runs whole.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { genCase } = require('./gen.js');

const WASM = path.join(__dirname, '..', '..', 'node', 'node_modules', '@cedar-policy', 'cedar-wasm', 'nodejs');

function args() {
  const a = { cases: process.env.GRACE_SANITIZED === '1' ? 300 : 4000, broken: process.env.GRACE_SANITIZED === '1' ? 100 : 1000, seed: 1, corpus: path.join(__dirname, 'corpus'), verbose: false };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--cli') a.cli = v[++i];
    else if (v[i] === '--cases') a.cases = Number(v[++i]);
    else if (v[i] === '--seed') a.seed = Number(v[++i]);
    else if (v[i] === '--broken') a.broken = Number(v[++i]);
    else if (v[i] === '--corpus') a.corpus = v[++i];
    else if (v[i] === '--verbose') a.verbose = true;
    else if (v[i] === '--dump') a.dump = v[++i];
    else throw new Error('unknown argument ' + v[i]);
  }
  if (!a.cli) throw new Error('--cli PATH is required');
  return a;
}

function loadCedar() {
  try {
    return require(WASM);
  } catch (e) {
    console.error('cedar-wasm is missing (' + WASM + '): run scripts/bootstrap.sh --test');
    process.exit(1);
  }
}

const key = (u) => u.type + '\u0000' + u.id;

// What the kernel sees as "store + request entities" is, for Cedar, one
// list: the request's entity replaces a stored one with the same uid.
function mergedEntities(c) {
  if (!c.store) return c.entities || [];
  const over = new Set((c.entities || []).map((e) => key(e.uid)));
  return c.store.filter((e) => !over.has(key(e.uid))).concat(c.entities || []);
}

function policyIndex(id) {
  const m = /^policy(\d+)$/.exec(id);
  if (!m) throw new Error('unexpected policy id ' + id);
  return Number(m[1]);
}

function reference(cedar, c) {
  const parsed = cedar.checkParsePolicySet({ staticPolicies: c.policies });
  if (parsed.type !== 'success') return { parse: false, why: parsed.errors.map((e) => e.message).join('; ') };
  const entities = mergedEntities(c);
  const ents = cedar.checkParseEntities({ entities });
  if (ents.type !== 'success') return { parse: true, entities: false, why: ents.errors.map((e) => e.message).join('; ') };
  const results = c.requests.map((rq) => {
    const ans = cedar.isAuthorized({
      principal: rq.principal, action: rq.action, resource: rq.resource, context: rq.context || {},
      policies: { staticPolicies: c.policies }, entities,
    });
    if (ans.type !== 'success') return { failure: ans.errors.map((e) => e.message).join('; ') };
    return {
      decision: ans.response.decision,
      reasons: ans.response.diagnostics.reason.map(policyIndex).sort((x, y) => x - y),
      errors: ans.response.diagnostics.errors.map((e) => policyIndex(e.policyId)).sort((x, y) => x - y),
      messages: ans.response.diagnostics.errors.map((e) => e.error.message),
    };
  });
  return { parse: true, entities: true, results };
}

function same(a, b) {
  return JSON.stringify(a) === JSON.stringify(b);
}

// Returns null when both agree, else a description of the difference.
function compare(ref, got) {
  if (got.bad_case) return 'cedar_cli could not read the case: ' + got.bad_case;
  if (!ref.parse || got.parse_error) {
    if (!ref.parse && got.parse_error) return null;
    return ref.parse ? 'C refused the policies (' + JSON.stringify(got.parse_error) + '), Cedar parsed them'
                     : 'Cedar refused the policies (' + ref.why + '), C parsed them';
  }
  if (!ref.entities || got.entities_error) {
    if (!ref.entities && got.entities_error) return null;
    return ref.entities ? 'C refused the entities (' + got.entities_error + '), Cedar took them'
                        : 'Cedar refused the entities (' + ref.why + '), C took them';
  }
  for (let i = 0; i < ref.results.length; i++) {
    const r = ref.results[i], g = got.results[i];
    if (r.failure || g.request_error) {
      if (r.failure && g.request_error) continue;
      return 'request ' + i + ': ' + (r.failure ? 'Cedar failed (' + r.failure + '), C decided ' + JSON.stringify(g)
                                                 : 'C failed (' + g.request_error + '), Cedar decided ' + JSON.stringify(r));
    }
    const gg = { decision: g.decision, reasons: g.reasons.slice().sort((x, y) => x - y), errors: g.errors.slice().sort((x, y) => x - y) };
    const rr = { decision: r.decision, reasons: r.reasons, errors: r.errors };
    if (!same(gg, rr)) return 'request ' + i + ': Cedar ' + JSON.stringify(rr) + ' ' + JSON.stringify(r.messages) + ', C ' + JSON.stringify(gg) + ' ' + JSON.stringify(g.messages);
  }
  return null;
}

function loadCorpus(dir) {
  const cases = [];
  if (!fs.existsSync(dir)) return cases;
  for (const f of fs.readdirSync(dir).sort()) {
    if (!f.endsWith('.json')) continue;
    const doc = JSON.parse(fs.readFileSync(path.join(dir, f), 'utf8'));
    doc.cases.forEach((c, i) => cases.push(Object.assign({ name: f + '#' + i + (c.note ? ' (' + c.note + ')' : '') }, c)));
  }
  return cases;
}

function runC(cli, cases) {
  const input = cases.map((c) => JSON.stringify({ policies: c.policies, entities: c.entities || [], store: c.store, requests: c.requests })).join('\n') + '\n';
  const out = spawnSync(cli, ['eval'], { input, maxBuffer: 1 << 30, encoding: 'utf8' });
  if (out.status !== 0) {
    console.error('cedar_cli exited with ' + out.status + (out.signal ? ' (signal ' + out.signal + ')' : '') + '\n' + out.stderr);
    process.exit(1);
  }
  const lines = out.stdout.trim().split('\n');
  if (lines.length !== cases.length) {
    console.error('cedar_cli answered ' + lines.length + ' lines for ' + cases.length + ' cases');
    process.exit(1);
  }
  return lines.map((l) => JSON.parse(l));
}

function main() {
  const a = args();
  const cedar = loadCedar();
  const corpus = loadCorpus(a.corpus);
  const generated = [];
  for (let i = 0; i < a.cases; i++) generated.push(Object.assign({ name: 'seed ' + (a.seed + i) }, genCase(a.seed + i)));
  // Broken texts: the same generator with one to three mutations each.
  for (let i = 0; i < a.broken; i++) generated.push(Object.assign({ name: 'broken seed ' + (a.seed + i) }, genCase(a.seed + i, { mutate: true })));
  const all = corpus.concat(generated);
  if (a.dump) fs.writeFileSync(a.dump, all.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const t0 = Date.now();
  const got = runC(a.cli, all);
  const tC = Date.now() - t0;
  const stats = { cases: 0, requests: 0, parse_refused: 0, entities_refused: 0, allow: 0, deny: 0, with_errors: 0, request_failures: 0 };
  const bad = [];
  for (let i = 0; i < all.length; i++) {
    const ref = reference(cedar, all[i]);
    const diff = compare(ref, got[i]);
    stats.cases++;
    if (!ref.parse) stats.parse_refused++;
    else if (!ref.entities) stats.entities_refused++;
    else for (const r of ref.results) {
      stats.requests++;
      if (r.failure) stats.request_failures++;
      else {
        stats[r.decision]++;
        if (r.errors.length) stats.with_errors++;
      }
    }
    if (diff) bad.push({ name: all[i].name, diff, c: all[i] });
  }
  console.log('cedar differential: ' + corpus.length + ' corpus cases and ' + generated.length + ' generated (' + a.broken + ' of them mutated texts; seed ' + a.seed + '); ' + JSON.stringify(stats) + '; C side ' + tC + ' ms');
  for (const b of bad.slice(0, a.verbose ? bad.length : 10)) {
    console.log('DISAGREEMENT ' + b.name + ': ' + b.diff);
    console.log('  case: ' + JSON.stringify({ policies: b.c.policies, entities: b.c.entities, store: b.c.store, requests: b.c.requests }));
  }
  if (bad.length) {
    console.log(bad.length + ' disagreements');
    process.exit(1);
  }
  console.log('no disagreement');
}

main();
