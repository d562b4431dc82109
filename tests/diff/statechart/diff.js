// The differential test of the state_machine kernel's statechart engine
// against XState itself (npm xstate 5, tests/node). Both run the same
// machines and steps: the hand corpus in corpus/ and generated cases
// (gen.js). After the start and after every step, the state value, the
// context (which logs every entry and exit, so their order is compared
// too), the status and the events emitted must agree.
//
// XState runs each machine in an actor on its SimulatedClock; an advance
// of the clock moves it to each due time in turn, as the kernel fires
// delayed events each at its own time. The kernel's side is sc_cli, the
// engine's test driver (one JSON case a line).
//
//   node diff.js --cli build/tests/diff/statechart/sc_cli [--cases N]
//        [--seed S] [--corpus DIR] [--verbose] [--dump FILE]
//
// GRACE_SANITIZED=1 lowers the default number of generated cases; the
// corpus always runs whole.
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { genCase } = require('./gen.js');

const XSTATE = path.join(__dirname, '..', '..', 'node', 'node_modules', 'xstate');
const MICROSTEPS_MAX = 1000; // the engine's SC_MICROSTEPS_MAX

function args() {
  if (require.main !== module) return {};
  const a = { cases: process.env.GRACE_SANITIZED === '1' ? 100 : 500, seed: 1, corpus: path.join(__dirname, 'corpus'), verbose: false };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--cli') a.cli = v[++i];
    else if (v[i] === '--cases') a.cases = Number(v[++i]);
    else if (v[i] === '--seed') a.seed = Number(v[++i]);
    else if (v[i] === '--corpus') a.corpus = v[++i];
    else if (v[i] === '--verbose') a.verbose = true;
    else if (v[i] === '--dump') a.dump = v[++i];
    else throw new Error('unknown argument ' + v[i]);
  }
  if (!a.cli) throw new Error('--cli PATH is required');
  return a;
}

function loadXState() {
  try {
    return require(XSTATE);
  } catch (e) {
    console.error('xstate is missing (' + XSTATE + '): run scripts/bootstrap.sh --test');
    process.exit(1);
  }
}
const X = loadXState();
// (the benchmark, bench/state_machine_bench.js, requires this file for toXState)

// ---- jq to JavaScript, for the forms the cases use ----
const FORMS = [
  [/^\.context\.(\w+) > (-?\d+)$/, (m) => ({ context }) => context[m[1]] > Number(m[2])],
  [/^\.context\.(\w+) >= (-?\d+)$/, (m) => ({ context }) => context[m[1]] >= Number(m[2])],
  [/^\.context\.(\w+) % 2 == 0$/, (m) => ({ context }) => context[m[1]] % 2 === 0],
  [/^\.event\.(\w+) == (-?\d+)$/, (m) => ({ event }) => event[m[1]] === Number(m[2])],
  [/^\.event\.(\w+) > (-?\d+)$/, (m) => ({ event }) => event[m[1]] > Number(m[2])],
  [/^\.context\.(\w+) \+ 1$/, (m) => ({ context }) => context[m[1]] + 1],
  [/^\(\.context\.(\w+) \* 2\) % 1000$/, (m) => ({ context }) => (context[m[1]] * 2) % 1000],
  [/^\.event\.(\w+) \/\/ 0$/, (m) => ({ event }) => event[m[1]] ?? 0],
  [/^(-?\d+)$/, (m) => () => Number(m[1])],
  [/^\(\.context\.log \+ \["([^"]+)"\]\) \| \.\[-20:\]$/, (m) => ({ context }) => context.log.concat([m[1]]).slice(-20)],
  [/^\{type: "(\w+)", n: \.context\.n\}$/, (m) => ({ context }) => ({ type: m[1], n: context.n })],
  [/^\.context\.(\w+)$/, (m) => ({ context }) => context[m[1]]],
  [/^\.context\.log \+ \["([^"]+)"\]$/, (m) => ({ context }) => context.log.concat([m[1]])],
];
function jsOf(jq) {
  for (const [re, make] of FORMS) {
    const m = re.exec(jq);
    if (m) return make(m);
  }
  throw new Error('no JavaScript form for the jq expression ' + JSON.stringify(jq));
}

function action(a) {
  switch (a.type) {
    case 'assign': {
      const as = {};
      for (const k of Object.keys(a.assignment)) {
        const f = jsOf(a.assignment[k]);
        as[k] = ({ context, event }) => f({ context, event });
      }
      return X.assign(as);
    }
    case 'raise': {
      const ev = typeof a.event === 'string' ? jsOf(a.event) : a.event;
      const opts = {};
      if (a.delay !== undefined) opts.delay = a.delay;
      if (a.id !== undefined) opts.id = a.id;
      return X.raise(ev, opts);
    }
    case 'emit':
      return X.emit(typeof a.event === 'string' ? jsOf(a.event) : a.event);
    case 'cancel':
      return X.cancel(a.id);
    default:
      throw new Error('unknown action ' + a.type);
  }
}
const actions = (v) => (v === undefined ? undefined : (Array.isArray(v) ? v : [v]).map(action));

function trans(t) {
  if (typeof t === 'string' || t === null || t === undefined) return t;
  if (Array.isArray(t)) return t.map(trans);
  const o = { ...t };
  if (typeof o.guard === 'string') o.guard = jsOf(o.guard);
  if (o.actions !== undefined) o.actions = actions(o.actions);
  return o;
}

function toXState(cfg) {
  const o = { ...cfg };
  if (o.entry !== undefined) o.entry = actions(o.entry);
  if (o.exit !== undefined) o.exit = actions(o.exit);
  for (const k of ['on', 'after']) {
    if (o[k]) {
      const m = {};
      for (const e of Object.keys(o[k])) m[e] = trans(o[k][e]);
      o[k] = m;
    }
  }
  if (o.always !== undefined) o.always = trans(o.always);
  if (o.onDone !== undefined) o.onDone = trans(o.onDone);
  if (o.states) {
    const s = {};
    for (const k of Object.keys(o.states)) s[k] = toXState(o.states[k]);
    o.states = s;
  }
  return o;
}

// ---- XState's side ----
function reference(c) {
  let machine;
  try {
    machine = X.createMachine(toXState(c.machine));
  } catch (e) {
    return { parse_error: String(e.message || e) };
  }
  const clock = new X.SimulatedClock();
  let micro = 0;
  const actor = X.createActor(machine, {
    clock,
    inspect: (ev) => {
      if (ev.type === '@xstate.microstep' && ++micro > MICROSTEPS_MAX) throw new Error('microstep loop');
    },
  });
  let emitted = [];
  let failure = null;
  actor.on('*', (ev) => emitted.push(ev));
  actor.subscribe({ error: (e) => { failure = failure || String(e.message || e); } });
  const state = () => {
    const s = actor.getSnapshot();
    if (failure || s.status === 'error') return { error: failure || String(s.error) };
    return { value: s.value, context: s.context, status: s.status === 'done' ? 'done' : 'active', emitted };
  };
  const out = [];
  actor.start();
  out.push(state());
  for (const st of c.steps) {
    if (out[out.length - 1].error || actor.getSnapshot().status !== 'active') break;
    emitted = [];
    micro = 0;
    if (st.event) {
      actor.send(st.event);
    } else {
      const target = clock.now() + st.advance;
      for (;;) {
        let due = Infinity;
        for (const t of clock.timeouts.values()) due = Math.min(due, t.start + t.timeout);
        if (due > target || actor.getSnapshot().status !== 'active' || failure) break;
        micro = 0;
        clock.set(Math.max(due, clock.now()));
      }
      if (clock.now() < target) clock.set(target);
    }
    out.push(state());
  }
  actor.stop();
  return { steps: out };
}

// ---- comparing ----
function canon(v) {
  if (Array.isArray(v)) return v.map(canon);
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v).sort()) if (v[k] !== undefined) o[k] = canon(v[k]);
    return o;
  }
  return v;
}
const same = (a, b) => JSON.stringify(canon(a)) === JSON.stringify(canon(b));

function compare(c, ref, got) {
  if (ref.parse_error || got.parse_error) {
    if (ref.parse_error && got.parse_error) return null;
    return 'parse: xstate ' + (ref.parse_error || 'ok') + ' / grace ' + (got.parse_error || 'ok');
  }
  const n = Math.max(ref.steps.length, got.steps.length);
  for (let i = 0; i < n; i++) {
    const a = ref.steps[i], b = got.steps[i];
    if (!a || !b) return `step ${i}: xstate has ${ref.steps.length} states, grace ${got.steps.length}`;
    if (a.error || b.error) {
      // both must fail at the same step (an eventless loop, say)
      if (a.error && b.error) return null;
      return `step ${i}: xstate ${a.error ? 'error ' + a.error : 'ok'} / grace ${b.error ? 'error ' + b.error : 'ok'}`;
    }
    for (const k of ['value', 'status', 'context', 'emitted']) {
      if (!same(a[k], b[k])) {
        return `step ${i} (${i ? JSON.stringify(c.steps[i - 1]) : 'start'}): ${k} differs\n  xstate ${JSON.stringify(canon(a[k]))}\n  grace  ${JSON.stringify(canon(b[k]))}`;
      }
    }
  }
  return null;
}

function main() {
  const a = args();
  const cases = [];
  if (a.corpus && fs.existsSync(a.corpus)) {
    for (const f of fs.readdirSync(a.corpus).filter((x) => x.endsWith('.json')).sort()) {
      for (const c of JSON.parse(fs.readFileSync(path.join(a.corpus, f), 'utf8'))) cases.push({ ...c, name: f + ':' + c.name });
    }
  }
  const nCorpus = cases.length;
  for (let i = 0; i < a.cases; i++) cases.push(genCase(a.seed + i));
  if (a.dump) fs.writeFileSync(a.dump, cases.map((c) => JSON.stringify(c)).join('\n') + '\n');
  const input = cases.map((c) => JSON.stringify({ machine: c.machine, steps: c.steps })).join('\n') + '\n';
  const run = spawnSync(a.cli, [], { input, maxBuffer: 1 << 30 });
  if (run.status !== 0) {
    console.error('sc_cli failed: status ' + run.status + ' signal ' + run.signal + '\n' + run.stderr);
    process.exit(1);
  }
  // a sanitizer's report (UBSan does not stop the process) fails the run
  const stderr = run.stderr.toString();
  if (/runtime error|Sanitizer/.test(stderr)) {
    console.error('sc_cli reported:\n' + stderr.slice(0, 4000));
    process.exit(1);
  }
  const lines = run.stdout.toString().split('\n').filter((l) => l.length);
  if (lines.length !== cases.length) {
    console.error(`sc_cli answered ${lines.length} of ${cases.length} cases`);
    process.exit(1);
  }
  let bad = 0, steps = 0, loops = 0, parseErr = 0;
  cases.forEach((c, i) => {
    const ref = reference(c);
    const got = JSON.parse(lines[i]);
    const why = compare(c, ref, got);
    if (ref.steps) {
      steps += ref.steps.length;
      if (ref.steps.some((s) => s.error)) loops++;
    } else parseErr++;
    if (why) {
      bad++;
      if (bad <= 5 || a.verbose) console.log(`MISMATCH ${c.name}: ${why}`);
    }
  });
  console.log(`statechart differential: ${cases.length} cases (${nCorpus} from the corpus, ${a.cases} generated), ${steps} states compared, ${loops} ending in an error on both sides, ${parseErr} refused by both; ${bad} disagree`);
  process.exit(bad ? 1 : 0);
}

if (require.main === module) main();
module.exports = { toXState, canon };
