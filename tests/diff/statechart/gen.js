// Generates statechart cases for the differential test (diff.js): a
// machine in the kernel's dialect (an XState configuration whose guards
// and assignments are jq) and a sequence of steps (events and advances of
// the clock). Every expression is one of the forms diff.js can also write
// as a JavaScript function, so XState runs the same machine.
//
// The shapes: nested compound and parallel states, final states and
// onDone, shallow and deep history (with and without a default), targets
// by #id and by sibling key, reenter, targetless transitions, wildcards,
// eventless transitions (guarded by a counter they reset, or unguarded and
// going forward in document order so that a macrostep ends), delayed
// transitions (`after`) and delayed raises, entry and exit actions that
// log their state into the context (so order is compared too), raised
// internal events and emitted events.
'use strict';

function rng(seed) {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13; s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5; s >>>= 0;
    return s / 4294967296;
  };
}

function genCase(seed) {
  const r = rng(seed * 2654435761 + 7);
  const int = (n) => Math.floor(r() * n);
  const pick = (a) => a[int(a.length)];
  const chance = (p) => r() < p;

  // ---- the tree ----
  let count = 0;
  const nodes = []; // document order: {id, key, kind, parent, children, cfg}
  function make(parent, key, depth, kindWanted) {
    const id = 'n' + count++;
    const n = { id, key, parent, children: [], cfg: { id } };
    nodes.push(n);
    let kind = kindWanted;
    if (!kind) {
      const leafy = depth >= 3 || count > 22;
      kind = leafy ? 'atomic' : pick(['atomic', 'atomic', 'compound', 'compound', 'parallel']);
    }
    n.kind = kind;
    if (kind === 'final') n.cfg.type = 'final';
    if (kind === 'history') {
      n.cfg.type = 'history';
      n.cfg.history = chance(0.5) ? 'deep' : 'shallow';
    }
    if (kind === 'compound' || kind === 'parallel') {
      if (kind === 'parallel') n.cfg.type = 'parallel';
      n.cfg.states = {};
      const k = kind === 'parallel' ? 2 + int(2) : 2 + int(3);
      for (let i = 0; i < k; i++) {
        const ck = 's' + i;
        const child = make(n, ck, depth + 1, kind === 'parallel' ? pick(['compound', 'compound', 'atomic']) : null);
        n.cfg.states[ck] = child.cfg;
        n.children.push(child);
      }
      if (kind === 'compound') {
        if (chance(0.35)) {
          const fk = 'f';
          const f = make(n, fk, depth + 1, 'final');
          n.cfg.states[fk] = f.cfg;
          n.children.push(f);
        }
        if (chance(0.3)) {
          const hk = 'h';
          const h = make(n, hk, depth + 1, 'history');
          n.cfg.states[hk] = h.cfg;
          n.children.push(h);
        }
        const real = n.children.filter((c) => c.kind !== 'history' && c.kind !== 'final');
        n.cfg.initial = pick(real).key;
      }
    }
    return n;
  }
  const root = make(null, '', 0, pick(['compound', 'compound', 'parallel']));
  const machine = root.cfg;
  machine.context = { n: 0, a: 0, log: [] };

  const targetable = nodes.filter((n) => n.parent && n.kind !== 'final' || n.kind === 'final');
  const nonRoot = nodes.filter((n) => n.parent);
  const isDesc = (x, anc) => { for (let p = x.parent; p; p = p.parent) if (p === anc) return true; return false; };
  const index = (n) => nodes.indexOf(n);

  function targetOf(src) {
    const t = pick(nonRoot);
    if (t.parent && src.parent && t.parent === src.parent && chance(0.4)) return t.key;
    return '#' + t.id;
  }

  // Two atomic states in different regions of one parallel state, when
  // there is one: a transition with several targets.
  function multiTarget() {
    const pars = nodes.filter((n) => n.kind === 'parallel' && n.children.length >= 2);
    if (!pars.length) return null;
    const p = pick(pars);
    const leafIn = (c) => { const l = nodes.filter((x) => (x === c || isDesc(x, c)) && x.kind === 'atomic'); return l.length ? pick(l) : null; };
    const a = leafIn(p.children[0]), b = leafIn(p.children[1]);
    return a && b ? ['#' + a.id, '#' + b.id] : null;
  }

  const logAct = (what) => ({ type: 'assign', assignment: { log: `(.context.log + ["${what}"]) | .[-20:]` } });
  const guards = () => pick([
    `.context.n > ${int(4)}`,
    '.context.n % 2 == 0',
    `.event.v == ${int(3)}`,
    `.event.v > ${int(3)}`,
  ]);
  function eventActions() {
    const acts = [];
    const k = int(3);
    for (let i = 0; i < k; i++) {
      const c = int(9);
      if (c === 0) acts.push({ type: 'assign', assignment: { n: '.context.n + 1' } });
      else if (c === 1) acts.push({ type: 'assign', assignment: { n: '(.context.n * 2) % 1000', a: '.context.a + 1' } });
      else if (c === 2) acts.push({ type: 'assign', assignment: { n: '.event.v // 0' } });
      else if (c === 3) acts.push({ type: 'raise', event: { type: pick(['R0', 'R1']) } });
      else if (c === 4) acts.push({ type: 'emit', event: { type: 'out', k: int(5) } });
      else if (c === 5) acts.push({ type: 'emit', event: '{type: "out", n: .context.n}' });
      else if (c === 6) acts.push({ type: 'raise', event: { type: pick(['E0', 'E1', 'R0']) }, delay: pick([30, 70, 120]) });
      else acts.push({ type: 'assign', assignment: { a: '.context.a + 1' } });
    }
    return acts;
  }
  function transition(src, opts) {
    const t = {};
    const c = int(10);
    if (c < 8) t.target = targetOf(src);
    else if (c === 8) { const m = multiTarget(); if (m) t.target = m; }
    if (opts.guard && chance(0.35)) t.guard = guards();
    if (chance(0.15)) t.reenter = true;
    const acts = opts.internal ? [logAct('t' + src.id)] : eventActions();
    if (acts.length) t.actions = acts;
    return t;
  }

  for (const n of nodes) {
    if (n.kind === 'history') {
      if (chance(0.4)) {
        const sib = n.parent.children.filter((c) => c.kind !== 'history');
        n.cfg.target = pick(sib).key;
      }
      continue;
    }
    n.cfg.entry = [logAct('+' + n.id)];
    n.cfg.exit = [logAct('-' + n.id)];
    if (n.kind === 'final') continue;
    const on = {};
    const ne = n.parent ? int(3) : 1 + int(2);
    for (let i = 0; i < ne; i++) {
      const ev = chance(0.08) ? '*' : pick(['E0', 'E1', 'E2', 'E3']);
      const k = 1 + int(2);
      const list = [];
      for (let j = 0; j < k; j++) list.push(transition(n, { guard: true }));
      on[ev] = list.length === 1 && chance(0.5) ? list[0] : list;
    }
    if (chance(0.3)) on[pick(['R0', 'R1'])] = transition(n, { guard: false, internal: true });
    if (Object.keys(on).length) n.cfg.on = on;
    if (n.parent && chance(0.2)) {
      n.cfg.after = {};
      n.cfg.after[pick([50, 100, 250])] = { target: targetOf(n) };
    }
    if (n.parent && chance(0.15)) {
      // counter-guarded: taking it resets the counter, so it cannot loop
      n.cfg.always = { guard: `.context.a >= ${1 + int(3)}`, target: targetOf(n),
        actions: [{ type: 'assign', assignment: { a: '0' } }] };
    } else if (n.parent && n.kind === 'atomic' && chance(0.08)) {
      const later = nodes.filter((x) => index(x) > index(n) && x.kind === 'atomic' && !isDesc(n, x));
      if (later.length) n.cfg.always = { target: '#' + pick(later).id };
    }
    if ((n.kind === 'compound' || n.kind === 'parallel') && chance(0.5)) {
      const later = nodes.filter((x) => index(x) > index(n) && x.kind === 'atomic' && !isDesc(x, n));
      n.cfg.onDone = later.length && chance(0.7) ? { target: '#' + pick(later).id }
        : { actions: [logAct('done' + n.id)] };
    }
  }

  // ---- the steps ----
  const steps = [];
  const ns = 4 + int(12);
  for (let i = 0; i < ns; i++) {
    if (chance(0.2)) steps.push({ advance: pick([20, 60, 110, 300]) });
    else {
      const ev = { type: pick(['E0', 'E1', 'E2', 'E3', 'E0', 'E1', 'R0']) };
      if (chance(0.6)) ev.v = int(4);
      steps.push({ event: ev });
    }
  }
  return { name: 'gen-' + seed, machine, steps };
}

module.exports = { genCase };
