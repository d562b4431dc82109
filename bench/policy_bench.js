// Cedar decisions per second and latency: Grace's engine (C) against
// cedar-wasm (the official build of Cedar's Rust implementation) on node,
// in the same run, on the same policy set and the same requests.
//
//   node bench/policy_bench.js [--cli build/tests/diff/cedar/cedar_cli]
//        [--rounds 20] [--requests 500] [--entities 300] [--policies 60]
//        [--out FILE]
//
// The workload is an RBAC+ABAC policy set (roles as groups, documents in
// folders, ownership, levels, IP ranges, time windows, tags) over an
// entity graph; each request carries its entities, as a request to the
// kernel's /authorize may. Both engines start from the request as JSON
// text, as a server receives it: C parses it with jansson, reads the
// entities and decides; node JSON.parse()s it and calls cedar-wasm's
// statefulIsAuthorized with the policy set parsed once beforehand (the
// fastest way cedar-wasm offers). Latency is per decision, parse included.
// Both must reach the same decisions (checked) or the run fails.
'use strict';

const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const WASM = path.join(ROOT, 'tests', 'node', 'node_modules', '@cedar-policy', 'cedar-wasm', 'nodejs');

function args() {
  const a = { cli: path.join(ROOT, 'build', 'tests', 'diff', 'cedar', 'cedar_cli'), rounds: 20, requests: 500, entities: 300, policies: 60, out: null, seed: 7 };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    const k = v[i].replace(/^--/, '');
    if (!(k in a)) throw new Error('unknown option ' + v[i]);
    a[k] = k === 'cli' || k === 'out' ? v[++i] : Number(v[++i]);
  }
  return a;
}

function rng(seed) {
  let s = seed >>> 0;
  const next = () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = s;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  return { int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)), pick: (xs) => xs[Math.floor(next() * xs.length)], chance: (p) => next() < p };
}

const ACTIONS = ['read', 'write', 'delete', 'share', 'comment', 'admin'];

function workload(a) {
  const r = rng(a.seed);
  const roles = ['viewer', 'editor', 'owner', 'auditor', 'admin'];
  const depts = ['eng', 'sales', 'ops', 'hr'];
  const policies = [];
  for (const act of ACTIONS) {
    policies.push(`@id("role-${act}")\npermit(principal in Role::"${r.pick(roles)}", action == Action::"${act}", resource);`);
  }
  policies.push('@id("owner")\npermit(principal, action in [Action::"read", Action::"write", Action::"share"], resource is Doc) when { resource.owner == principal };');
  policies.push('@id("dept-read")\npermit(principal is User, action == Action::"read", resource is Doc) when { principal.dept == resource.dept && principal.level >= resource.level };');
  policies.push('@id("folder-read")\npermit(principal is User, action == Action::"read", resource in Folder::"public");');
  policies.push('@id("office-network")\nforbid(principal, action in [Action::"delete", Action::"admin"], resource) unless { context.ip.isInRange(ip("10.0.0.0/8")) };');
  policies.push('@id("suspended")\nforbid(principal, action, resource) when { principal has suspended && principal.suspended };');
  policies.push('@id("classified")\nforbid(principal, action, resource is Doc) when { resource.tags.contains("classified") && !(principal in Role::"auditor") };');
  policies.push('@id("hours")\nforbid(principal is User, action == Action::"write", resource) when { context.time.toTime() < duration("6h") || context.time.toTime() > duration("22h") };');
  policies.push('@id("mfa")\nforbid(principal, action == Action::"admin", resource) unless { context.mfa == true && context.risk.lessThan(decimal("0.5")) };');
  while (policies.length < a.policies) {
    const i = policies.length;
    const d = r.pick(depts);
    switch (i % 4) {
      case 0: policies.push(`@id("p${i}")\npermit(principal in Group::"${d}", action == Action::"${r.pick(ACTIONS)}", resource in Folder::"f${r.int(0, 20)}") when { principal.level > ${r.int(0, 5)} };`); break;
      case 1: policies.push(`@id("p${i}")\npermit(principal, action == Action::"comment", resource is Doc) when { resource.tags.containsAny(["${d}", "shared"]) && principal.email like "*@example.com" };`); break;
      case 2: policies.push(`@id("p${i}")\nforbid(principal, action == Action::"share", resource) when { resource has external && resource.external && principal.level < ${r.int(1, 6)} };`); break;
      default: policies.push(`@id("p${i}")\npermit(principal is User in Group::"${d}", action, resource is Doc) when { context has ticket && context.ticket like "${d.toUpperCase()}-*" && resource.dept == "${d}" };`); break;
    }
  }
  const uid = (type, id) => ({ type, id });
  const folders = [];
  for (let i = 0; i < 21; i++) folders.push({ uid: uid('Folder', 'f' + i), attrs: {}, parents: [uid('Folder', i % 3 === 0 ? 'public' : 'root')] });
  folders.push({ uid: uid('Folder', 'public'), attrs: {}, parents: [uid('Folder', 'root')] }, { uid: uid('Folder', 'root'), attrs: {}, parents: [] });
  const groups = depts.map((d) => ({ uid: uid('Group', d), attrs: {}, parents: [] }));
  const roleEnts = roles.map((ro) => ({ uid: uid('Role', ro), attrs: {}, parents: [] }));
  const actions = ACTIONS.map((ac) => ({ uid: uid('Action', ac), attrs: {}, parents: [] }));
  const users = [], docs = [];
  const nUsers = Math.max(5, Math.floor(a.entities * 0.4)), nDocs = Math.max(5, a.entities - nUsers - folders.length - groups.length - roleEnts.length);
  for (let i = 0; i < nUsers; i++) {
    const attrs = { dept: r.pick(depts), level: r.int(0, 7), email: 'u' + i + (r.chance(0.8) ? '@example.com' : '@other.org') };
    if (r.chance(0.05)) attrs.suspended = true;
    users.push({ uid: uid('User', 'u' + i), attrs, parents: [uid('Group', attrs.dept), uid('Role', r.pick(roles))] });
  }
  for (let i = 0; i < nDocs; i++) {
    const attrs = { owner: { __entity: uid('User', 'u' + r.int(0, nUsers - 1)) }, dept: r.pick(depts), level: r.int(0, 7), tags: [r.pick(depts), r.pick(['shared', 'draft', 'classified', 'final'])] };
    if (r.chance(0.2)) attrs.external = r.chance(0.5);
    docs.push({ uid: uid('Doc', 'd' + i), attrs, parents: [uid('Folder', 'f' + r.int(0, 20))] });
  }
  const all = users.concat(docs, folders, groups, roleEnts, actions);
  const requests = [];
  for (let i = 0; i < a.requests; i++) {
    const ctx = {
      ip: { __extn: { fn: 'ip', arg: r.chance(0.7) ? '10.' + r.int(0, 255) + '.' + r.int(0, 255) + '.' + r.int(1, 254) : '192.168.1.' + r.int(1, 254) } },
      time: { __extn: { fn: 'datetime', arg: '2024-06-' + String(r.int(10, 28)) + 'T' + String(r.int(0, 23)).padStart(2, '0') + ':30:00Z' } },
      mfa: r.chance(0.7),
      risk: { __extn: { fn: 'decimal', arg: '0.' + r.int(0, 9) } },
    };
    if (r.chance(0.3)) ctx.ticket = r.pick(depts).toUpperCase() + '-' + r.int(1, 999);
    requests.push({ principal: r.pick(users).uid, action: uid('Action', r.pick(ACTIONS)), resource: r.pick(docs).uid, context: ctx, entities: all });
  }
  return { policies: policies.join('\n\n'), requests };
}

function percentile(sorted, p) {
  return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))];
}

function benchWasm(cedar, w, rounds) {
  const id = 'bench';
  const pre = cedar.preparsePolicySet(id, { staticPolicies: w.policies });
  if (pre.type !== 'success') throw new Error('cedar-wasm refused the policies: ' + JSON.stringify(pre.errors));
  const bodies = w.requests.map((q) => JSON.stringify(q));
  const lat = new Float64Array(bodies.length * rounds);
  const decisions = [];
  let allow = 0;
  // One untimed round warms the JIT, as the C side needs none.
  for (const b of bodies) {
    const q = JSON.parse(b);
    const ans = cedar.statefulIsAuthorized({ principal: q.principal, action: q.action, resource: q.resource, context: q.context, entities: q.entities, preparsedPolicySetId: id });
    if (ans.type !== 'success') throw new Error('cedar-wasm failed: ' + JSON.stringify(ans.errors));
    decisions.push(ans.response.decision);
  }
  const t0 = process.hrtime.bigint();
  let k = 0;
  for (let round = 0; round < rounds; round++) {
    for (const b of bodies) {
      const s = process.hrtime.bigint();
      const q = JSON.parse(b);
      const ans = cedar.statefulIsAuthorized({ principal: q.principal, action: q.action, resource: q.resource, context: q.context, entities: q.entities, preparsedPolicySetId: id });
      if (ans.response.decision === 'allow') allow++;
      lat[k++] = Number(process.hrtime.bigint() - s) / 1e3;
    }
  }
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort();
  return { decisions: k, seconds, per_second: k / seconds, p50_us: percentile(lat, 0.5), p99_us: percentile(lat, 0.99), allow, first: decisions };
}

function benchC(cli, file, rounds) {
  const out = spawnSync(cli, ['bench', file, String(rounds)], { encoding: 'utf8', maxBuffer: 1 << 26 });
  if (out.status !== 0) throw new Error('cedar_cli bench failed: ' + out.stderr);
  return JSON.parse(out.stdout);
}

function decisionsC(cli, w) {
  const c = { policies: w.policies, entities: w.requests[0].entities, requests: w.requests.map((q) => ({ principal: q.principal, action: q.action, resource: q.resource, context: q.context })) };
  const out = spawnSync(cli, ['eval'], { input: JSON.stringify(c) + '\n', encoding: 'utf8', maxBuffer: 1 << 26 });
  const res = JSON.parse(out.stdout);
  if (!res.results) throw new Error('cedar_cli: ' + out.stdout);
  return res.results.map((x) => x.decision);
}

function main() {
  const a = args();
  let cedar;
  try {
    cedar = require(WASM);
  } catch (e) {
    console.error('cedar-wasm is missing: run scripts/bootstrap.sh --test');
    process.exit(1);
  }
  if (!fs.existsSync(a.cli)) {
    console.error(a.cli + ' is missing: build it with ninja -C build tests/diff/cedar/cedar_cli');
    process.exit(1);
  }
  const w = workload(a);
  const file = path.join(os.tmpdir(), 'grace-policy-bench-' + process.pid + '.json');
  fs.writeFileSync(file, JSON.stringify(w));
  try {
    const wasm = benchWasm(cedar, w, a.rounds);
    const c = benchC(a.cli, file, a.rounds);
    const cd = decisionsC(a.cli, w);
    const mismatch = cd.findIndex((d, i) => d !== wasm.first[i]);
    if (mismatch >= 0) throw new Error('the engines disagree on request ' + mismatch + ': C ' + cd[mismatch] + ', cedar-wasm ' + wasm.first[mismatch]);
    const lines = [
      'policy engine benchmark: ' + w.policies.split(';').length + ' policies, ' + w.requests[0].entities.length + ' entities per request, ' + w.requests.length + ' requests x ' + a.rounds + ' rounds (' + cedar.getCedarVersion() + ' wasm on node ' + process.version + ')',
      'decisions agree: ' + cd.length + ' requests, ' + cd.filter((d) => d === 'allow').length + ' allowed',
      'grace (C)    ' + c.per_second.toFixed(0).padStart(9) + ' decisions/s   p50 ' + c.p50_us.toFixed(1).padStart(7) + ' us   p99 ' + c.p99_us.toFixed(1).padStart(7) + ' us',
      'cedar-wasm   ' + wasm.per_second.toFixed(0).padStart(9) + ' decisions/s   p50 ' + wasm.p50_us.toFixed(1).padStart(7) + ' us   p99 ' + wasm.p99_us.toFixed(1).padStart(7) + ' us',
      'ratio grace / cedar-wasm: ' + (c.per_second / wasm.per_second).toFixed(2) + 'x throughput, p50 ' + (wasm.p50_us / c.p50_us).toFixed(2) + 'x faster, p99 ' + (wasm.p99_us / c.p99_us).toFixed(2) + 'x faster (goal >= 1.0x)',
    ];
    console.log(lines.join('\n'));
    if (a.out) fs.writeFileSync(a.out, lines.join('\n') + '\n');
  } finally {
    fs.unlinkSync(file);
  }
}

main();
