// State-machine events per second and latency: Grace's statechart engine
// (C, src/kernels/state_machine) against XState 5 on node, in the same run,
// on the same machine and the same events.
//
//   node bench/state_machine_bench.js [--cli build/tests/diff/statechart/sc_cli]
//        [--rounds 2000] [--out FILE]
//
// The machine: a parallel state with two regions (one nested two deep,
// with a deep history), guards and assignments in jq (functions on the
// XState side), an eventless transition and a done event; 40 events per
// round, a fresh instance each round. Grace's side does what the kernel
// does for each event: load the stored snapshot from its JSON, take the
// event, dump the new snapshot and compute the state value (sc_cli
// bench). XState's side calls its pure transition() on the snapshot in
// memory (no JSON round trip, so it is favoured). Both must agree on the
// final state value (checked).
'use strict';

const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const ROOT = path.join(__dirname, '..');
const X = require(path.join(ROOT, 'tests', 'node', 'node_modules', 'xstate'));
const { toXState, canon } = require(path.join(ROOT, 'tests', 'diff', 'statechart', 'diff.js'));

function args() {
  const a = { cli: path.join(ROOT, 'build', 'tests', 'diff', 'statechart', 'sc_cli'), rounds: 2000, out: null };
  const v = process.argv.slice(2);
  for (let i = 0; i < v.length; i++) {
    if (v[i] === '--cli') a.cli = v[++i];
    else if (v[i] === '--rounds') a.rounds = Number(v[++i]);
    else if (v[i] === '--out') a.out = v[++i];
    else throw new Error('unknown argument ' + v[i]);
  }
  return a;
}

const inc = (k) => ({ type: 'assign', assignment: { [k]: `.context.${k} + 1` } });
const MACHINE = {
  id: 'bench', type: 'parallel', context: { n: 0, a: 0 },
  states: {
    work: {
      initial: 'idle',
      states: {
        idle: { on: { START: { target: 'busy', actions: [inc('n')] } } },
        busy: {
          initial: 'fetch',
          on: { PAUSE: 'paused', STOP: 'idle' },
          states: {
            fetch: { on: { OK: { target: 'parse', guard: '.event.v > 0' }, RETRY: { target: 'fetch', reenter: true, actions: [inc('a')] } } },
            parse: { on: { OK: 'store' } },
            store: { always: { target: 'done', guard: '.context.n % 2 == 0' }, on: { OK: 'done' } },
            done: { type: 'final' },
            hist: { type: 'history', history: 'deep' },
          },
          onDone: { target: 'idle', actions: [inc('n')] },
        },
        paused: { on: { RESUME: 'busy.hist' } },
      },
    },
    health: {
      initial: 'up',
      states: { up: { on: { FAIL: { target: 'down', actions: [inc('a')] } } }, down: { on: { HEAL: 'up' } } },
    },
  },
};
const ONE = ['START', 'OK', 'RETRY', 'OK', 'PAUSE', 'RESUME', 'OK', 'OK', 'FAIL', 'HEAL'];
const EVENTS = [];
for (let r = 0; r < 4; r++) for (const t of ONE) EVENTS.push({ type: t, v: 1 });

function pct(sorted, p) { return sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * p))]; }

function xstate(rounds) {
  const machine = X.createMachine(toXState(MACHINE));
  const lat = [];
  let last;
  const t0 = process.hrtime.bigint();
  for (let r = 0; r < rounds; r++) {
    let [snap] = X.initialTransition(machine);
    for (const ev of EVENTS) {
      const a = process.hrtime.bigint();
      [snap] = X.transition(machine, snap, ev);
      lat.push(Number(process.hrtime.bigint() - a) / 1000);
    }
    last = snap.value;
  }
  const secs = Number(process.hrtime.bigint() - t0) / 1e9;
  lat.sort((x, y) => x - y);
  return { events: lat.length, events_per_s: lat.length / secs, p50_us: pct(lat, 0.5), p99_us: pct(lat, 0.99), value: last };
}

function grace(cli, rounds) {
  const file = path.join(require('os').tmpdir(), 'sm_bench_' + process.pid + '.json');
  fs.writeFileSync(file, JSON.stringify({ machine: MACHINE, steps: EVENTS.map((e) => ({ event: e })) }));
  const r = spawnSync(cli, ['bench', file, String(rounds)]);
  const v = spawnSync(cli, [], { input: JSON.stringify({ machine: MACHINE, steps: EVENTS.map((e) => ({ event: e })) }) + '\n' });
  fs.unlinkSync(file);
  if (r.status !== 0) throw new Error('sc_cli bench failed: ' + r.stderr);
  const out = JSON.parse(r.stdout.toString());
  const steps = JSON.parse(v.stdout.toString()).steps;
  out.value = steps[steps.length - 1].value;
  return out;
}

function main() {
  const a = args();
  const g = grace(a.cli, a.rounds);
  const x = xstate(a.rounds);
  if (JSON.stringify(canon(g.value)) !== JSON.stringify(canon(x.value))) {
    console.error('the engines disagree: grace ' + JSON.stringify(g.value) + ', xstate ' + JSON.stringify(x.value));
    process.exit(1);
  }
  const lines = [
    `state machine events, ${a.rounds} rounds of ${EVENTS.length} events (a fresh instance each round)`,
    `  grace engine (load + event + dump):  ${g.events_per_s.toFixed(0)} events/s, p50 ${g.p50_us.toFixed(1)} us, p99 ${g.p99_us.toFixed(1)} us`,
    `  xstate ${require(path.join(ROOT, 'tests', 'node', 'node_modules', 'xstate', 'package.json')).version} transition():      ${x.events_per_s.toFixed(0)} events/s, p50 ${x.p50_us.toFixed(1)} us, p99 ${x.p99_us.toFixed(1)} us`,
    `  ratio grace/xstate: ${(g.events_per_s / x.events_per_s).toFixed(2)}x throughput, p99 ${(g.p99_us / x.p99_us).toFixed(2)}x`,
  ];
  console.log(lines.join('\n'));
  if (a.out) fs.appendFileSync(a.out, lines.join('\n') + '\n');
}

main();
