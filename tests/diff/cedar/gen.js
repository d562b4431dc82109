// Random Cedar cases for the differential test: a policy set, an entity
// graph and a few requests, from a seed. Every operator of the language is
// drawn, mostly well typed (so that decisions vary) and sometimes not (so
// that errors are compared too), plus broken policy texts (so that both
// parsers must refuse the same inputs).
'use strict';

function rng(seed) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const r = {
    next,
    int: (lo, hi) => lo + Math.floor(next() * (hi - lo + 1)),
    pick: (xs) => xs[Math.floor(next() * xs.length)],
    chance: (p) => next() < p,
  };
  return r;
}

const TYPES = ['User', 'Group', 'Doc', 'Folder', 'NS::Thing'];
const IDS = ['alice', 'bob', 'carol', 'dave', 'g1', 'g2', 'root', 'x', 'a b', 'é', '', 'quote"q', 'back\\slash'];
const ACTIONS = ['view', 'edit', 'delete', 'admin', 'read'];
const STRINGS = ['', 'a', 'abc', 'hello world', 'Hello', 'x*y', 'a\\*b', 'zz', 'é', 'tab\there', 'line\nnext'];
const ATTRS = ['owner', 'level', 'name', 'tags', 'flag', 'info', 'n', 'd', 'ip', 'when', 'span', 'a b'];
const DECIMALS = ['1.0', '1.5', '-2.25', '0.0001', '100.0', '922337203685477.5807', '-922337203685477.5808', '1.23456', '1', 'x.5', '1.00'];
const IPS = ['10.0.0.1', '10.0.0.0/8', '192.168.1.0/24', '127.0.0.1', '224.0.0.1', '::1', 'fe80::1/64', 'ff02::1', '1.2.3', '01.2.3.4', '::ffff:1.2.3.4', '10.0.0.0/33', '2001:db8::/32'];
const DATETIMES = ['2024-01-01', '2024-06-15T12:30:00Z', '2024-06-15T12:30:00.250Z', '2024-06-15T12:30:00+0200', '1970-01-01', '2024-02-30', '2023-12-31T23:59:59-0130', 'bad'];
const DURATIONS = ['1d', '2h30m', '-1h', '1d2h3m4s5ms', '500ms', '0ms', '1x', '-'];

// Random text forms for the extension constructors: mostly near-valid, so
// that the edges of each format are crossed.
function randDigits(r, lo, hi) {
  let s = '';
  for (let n = r.int(lo, hi); n > 0; n--) s += String(r.int(0, 9));
  return s;
}

function randDecimal(r) {
  if (r.chance(0.5)) return r.pick(DECIMALS);
  return (r.chance(0.3) ? '-' : '') + randDigits(r, 0, r.chance(0.1) ? 17 : 4) + (r.chance(0.9) ? '.' : '') + randDigits(r, 0, r.chance(0.2) ? 6 : 4);
}

function randIp(r) {
  if (r.chance(0.4)) return r.pick(IPS);
  let s;
  if (r.chance(0.5)) {
    s = Array.from({ length: r.chance(0.9) ? 4 : r.int(3, 5) }, () => String(r.chance(0.1) ? r.int(0, 300) : r.int(0, 255)).padStart(r.chance(0.05) ? 3 : 1, '0')).join('.');
  } else {
    const groups = Array.from({ length: r.int(1, 8) }, () => r.int(0, 65535).toString(16).padStart(r.chance(0.1) ? 4 : 1, '0'));
    if (r.chance(0.6)) groups.splice(r.int(0, groups.length), 0, '');
    s = groups.join(':');
    if (s.startsWith(':') && !s.startsWith('::')) s = ':' + s;
    if (s.endsWith(':') && !s.endsWith('::')) s += ':';
  }
  if (r.chance(0.4)) s += '/' + (r.chance(0.1) ? '0' : '') + r.int(0, 130);
  return s;
}

function randDatetime(r) {
  if (r.chance(0.3)) return r.pick(DATETIMES);
  const p2 = (n) => String(n).padStart(2, '0');
  let s = String(r.int(0, 9999)).padStart(4, '0') + '-' + p2(r.int(0, 13)) + '-' + p2(r.int(0, 32));
  if (r.chance(0.7)) {
    s += 'T' + p2(r.int(0, 24)) + ':' + p2(r.int(0, 60)) + ':' + p2(r.int(0, 60));
    if (r.chance(0.4)) s += '.' + String(r.int(0, 999)).padStart(3, '0');
    s += r.chance(0.5) ? 'Z' : r.chance(0.9) ? r.pick(['+', '-']) + p2(r.int(0, 25)) + p2(r.int(0, 61)) : '';
  }
  return s;
}

function randDuration(r) {
  if (r.chance(0.3)) return r.pick(DURATIONS);
  let s = r.chance(0.3) ? '-' : '';
  for (const u of ['d', 'h', 'm', 's', 'ms']) if (r.chance(0.4)) s += String(r.chance(0.05) ? r.int(0, 2 ** 31) * 2 ** 22 : r.int(0, 100)) + u;
  if (r.chance(0.05)) s += r.pick(['d', 'x', '1']);
  return s;
}

function cedarString(s) {
  let out = '"';
  for (const ch of s) {
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '\n') out += '\\n';
    else if (ch === '\t') out += '\\t';
    else out += ch;
  }
  return out + '"';
}

function uidText(u) {
  return u.type + '::' + cedarString(u.id);
}

// Entity graphs: a DAG of groups and folders above users and documents,
// edges only from lower to higher indexes (a cycle is added on purpose
// now and then); attributes mostly of one type per name.
function genEntities(r, uids) {
  const ents = uids.map((uid) => ({ uid, attrs: {}, parents: [] }));
  for (let i = 0; i < ents.length; i++) {
    const n = r.int(0, 2);
    for (let k = 0; k < n && i + 1 < ents.length; k++)
      ents[i].parents.push(ents[r.int(i + 1, ents.length - 1)].uid);
    const na = r.int(0, 6);
    for (let k = 0; k < na; k++) {
      const name = r.pick(ATTRS);
      ents[i].attrs[name] = genJsonValue(r, name, uids, 0);
    }
    if (r.chance(0.15)) ents[i].tags = { t: genJsonValue(r, r.pick(ATTRS), uids, 0), u: 'tagged' };
  }
  if (r.chance(0.03) && ents.length > 2) ents[ents.length - 1].parents.push(ents[0].uid);
  return ents;
}

function extn(fn, arg) {
  return { __extn: { fn, arg } };
}

function genJsonValue(r, name, uids, depth) {
  const wrongType = r.chance(0.08);
  const kind = wrongType ? r.pick(ATTRS) : name;
  switch (kind) {
    case 'owner': return { __entity: r.pick(uids) };
    case 'level': case 'n': return r.pick([0, 1, 2, 5, 10, -3, 100, 9007199254740991, -9007199254740991]);
    case 'name': return r.pick(STRINGS);
    case 'tags': return [...new Set(Array.from({ length: r.int(0, 3) }, () => r.pick(STRINGS)))];
    case 'flag': return r.chance(0.5);
    case 'info':
      if (depth > 2) return {};
      return { level: r.int(-2, 5), name: r.pick(STRINGS), nested: depth < 2 && r.chance(0.5) ? genJsonValue(r, 'info', uids, depth + 1) : r.int(0, 3) };
    case 'd': return extn('decimal', r.pick(DECIMALS.slice(0, 7)));
    case 'ip': return extn('ip', r.pick(IPS.slice(0, 7)));
    case 'when': return extn('datetime', r.pick(DATETIMES.slice(0, 5)));
    case 'span': return extn('duration', r.pick(DURATIONS.slice(0, 6)));
    default: return r.pick([1, 'x', true, [1, 2], { k: 1 }]);
  }
}

// Expressions by the type they should have; `bad` swaps in a wrong type
// now and then.
function gen(r, type, depth, env) {
  if (r.chance(0.04) && depth > 0) type = r.pick(['bool', 'long', 'string', 'entity', 'set', 'record']);
  const leaf = depth >= env.maxDepth || r.chance(0.25);
  const sub = (t) => gen(r, t, depth + 1, env);
  const attr = () => {
    const name = r.pick(ATTRS);
    return name === 'a b' || r.chance(0.1) ? '[' + cedarString(name) + ']' : '.' + name;
  };
  const entityExpr = () => r.pick(['principal', 'resource', 'action', uidText(r.pick(env.uids)), uidText(r.pick(env.uids)), 'principal.owner', 'resource.owner']);
  switch (type) {
    case 'bool': {
      if (leaf) return r.pick(['true', 'false', 'context.flag', 'principal.flag', 'resource.flag', 'principal has flag', 'context has n']);
      switch (r.int(0, 31)) {
        case 30: {
          // The same computed record both ways round: equal whatever the key order.
          const keys = ['b', 'a', 'c', '"z z"'].slice(0, r.int(1, 4));
          const vals = keys.map(() => gen(r, r.pick(['long', 'string', 'entity']), env.maxDepth, env));
          const lhs = '{' + keys.map((k, i) => k + ': ' + vals[i]).join(', ') + '}';
          const order = keys.map((_, i) => i).reverse();
          const rhs = '{' + order.map((i) => keys[i] + ': ' + vals[i]).join(', ') + '}';
          return lhs + (r.chance(0.8) ? ' == ' : ' != ') + rhs;
        }
        case 31: return '[' + sub('long') + ', ' + sub('long') + '].contains(' + sub('long') + ')';
        case 0: return sub('bool') + ' && ' + sub('bool');
        case 1: return sub('bool') + ' || ' + sub('bool');
        case 2: return '!' + paren(sub('bool'));
        case 3: return 'if ' + sub('bool') + ' then ' + sub('bool') + ' else ' + sub('bool');
        case 4: return paren(sub('long')) + ' ' + r.pick(['<', '<=', '>', '>=', '==', '!=']) + ' ' + paren(sub('long'));
        case 5: return paren(sub('string')) + ' ' + r.pick(['==', '!=']) + ' ' + paren(sub('string'));
        case 6: return paren(entityExpr()) + ' in ' + paren(entityExpr());
        case 7: return paren(entityExpr()) + ' in [' + Array.from({ length: r.int(0, 3) }, entityExpr).join(', ') + ']';
        case 8: return paren(entityExpr()) + ' is ' + r.pick(TYPES);
        case 9: return paren(entityExpr()) + ' is ' + r.pick(TYPES) + ' in ' + paren(entityExpr());
        case 10: return paren(r.pick(['principal', 'resource', 'context', 'principal.info', 'context.info', sub('record')])) + ' has ' + r.pick(['owner', 'level', 'name', 'tags', 'flag', 'info', '"a b"', 'info.level', 'info.nested.level', 'nested']);
        case 11: return paren(sub('string')) + ' like ' + cedarString(r.pick(['*', 'a*', '*c', 'a*c', '*ll*', 'h*o*d', '', 'abc', '\\*', '*\\**', 'é*'])).replace(/\\\\\*/g, '\\*');
        case 12: return paren(sub('set')) + '.contains(' + sub(r.pick(['long', 'string', 'entity'])) + ')';
        case 13: return paren(sub('set')) + '.containsAll(' + sub('set') + ')';
        case 14: return paren(sub('set')) + '.containsAny(' + sub('set') + ')';
        case 15: return paren(sub('set')) + '.isEmpty()';
        case 16: return paren(sub('decimal')) + '.' + r.pick(['lessThan', 'lessThanOrEqual', 'greaterThan', 'greaterThanOrEqual']) + '(' + sub('decimal') + ')';
        case 17: return paren(sub('ip')) + '.' + r.pick(['isIpv4()', 'isIpv6()', 'isLoopback()', 'isMulticast()', 'isInRange(' + sub('ip') + ')']);
        case 18: return paren(sub('datetime')) + ' ' + r.pick(['<', '<=', '>', '>=', '==']) + ' ' + paren(sub('datetime'));
        case 19: return paren(sub('duration')) + ' ' + r.pick(['<', '>=', '==']) + ' ' + paren(sub('duration'));
        case 20: return paren(entityExpr()) + ' == ' + paren(entityExpr());
        case 21: return paren(sub('set')) + ' == ' + paren(sub('set'));
        case 22: return paren(sub('record')) + ' == ' + paren(sub('record'));
        case 23: return paren(entityExpr()) + '.hasTag(' + cedarString(r.pick(['t', 'u', 'v'])) + ')';
        case 24: return paren(sub('decimal')) + ' ' + r.pick(['==', '<']) + ' ' + paren(sub('decimal'));
        case 25: return paren(sub('ip')) + ' == ' + paren(sub('ip'));
        case 26: return 'principal' + attr() + ' == resource' + attr();
        case 27: return paren(sub('any')) + ' == ' + paren(sub('any'));
        case 28: return 'context' + attr() + ' ' + r.pick(['==', '<']) + ' ' + sub('long');
        default: return r.pick(['principal', 'resource']) + ' in ' + r.pick(['principal', 'resource']) + '.owner';
      }
    }
    case 'long': {
      if (leaf) return r.pick(['0', '1', '7', '-3', '9223372036854775807', '-9223372036854775808', String(r.int(-100, 100)), 'context.n', 'principal.level', 'resource.level', 'context.info.level']);
      switch (r.int(0, 6)) {
        case 0: return paren(sub('long')) + ' + ' + paren(sub('long'));
        case 1: return paren(sub('long')) + ' - ' + paren(sub('long'));
        case 2: return paren(sub('long')) + ' * ' + paren(sub('long'));
        case 3: return '-' + paren(sub('long'));
        case 4: return 'if ' + sub('bool') + ' then ' + sub('long') + ' else ' + sub('long');
        case 5: return paren(sub('duration')) + '.' + r.pick(['toDays()', 'toHours()', 'toMinutes()', 'toSeconds()', 'toMilliseconds()']);
        default: return paren(entityExpr()) + '.getTag("t")';
      }
    }
    case 'string':
      if (leaf || r.chance(0.5)) return r.pick([cedarString(r.pick(STRINGS)), 'principal.name', 'resource.name', 'context.name', 'context.info.name', '"\\u{e9}"', '"\\x41"']);
      return 'if ' + sub('bool') + ' then ' + sub('string') + ' else ' + sub('string');
    case 'entity':
      return entityExpr();
    case 'set':
      if (leaf || r.chance(0.4)) return r.pick(['[]', '[1, 2, 3]', '["a", "abc"]', '[1, "a", true]', 'principal.tags', 'resource.tags', 'context.tags', '[[1], [1, 2]]', '[' + uidText(r.pick(env.uids)) + ']']);
      return '[' + Array.from({ length: r.int(0, 3) }, () => sub(r.pick(['long', 'string', 'entity', 'bool']))).join(', ') + ']';
    case 'record':
      if (leaf || r.chance(0.4)) return r.pick(['{}', 'context', 'context.info', 'principal.info', '{a: 1, b: "x"}', '{"a b": 1}', '{level: 2, name: "a"}']);
      return '{' + Array.from({ length: r.int(0, 3) }, (_, i) => r.pick(['level', 'name', 'flag', '"k' + i + '"', 'owner']) + ': ' + sub(r.pick(['long', 'string', 'bool']))).filter((v, i, a) => a.findIndex((w) => w.split(':')[0] === v.split(':')[0]) === i).join(', ') + '}';
    case 'decimal':
      return r.chance(0.6) ? 'decimal(' + cedarString(randDecimal(r)) + ')' : r.pick(['principal.d', 'resource.d', 'context.d']);
    case 'ip':
      return r.chance(0.6) ? 'ip(' + cedarString(randIp(r)) + ')' : r.pick(['principal.ip', 'context.ip']);
    case 'datetime':
      if (r.chance(0.2)) return paren(sub('datetime')) + '.offset(' + sub('duration') + ')';
      if (r.chance(0.1)) return paren(sub('datetime')) + r.pick(['.toDate()']);
      return r.chance(0.6) ? 'datetime(' + cedarString(randDatetime(r)) + ')' : r.pick(['principal.when', 'context.when']);
    case 'duration':
      if (r.chance(0.15)) return paren(sub('datetime')) + '.durationSince(' + sub('datetime') + ')';
      if (r.chance(0.1)) return paren(sub('datetime')) + '.toTime()';
      return r.chance(0.6) ? 'duration(' + cedarString(randDuration(r)) + ')' : r.pick(['principal.span', 'context.span']);
    default:
      return sub(r.pick(['bool', 'long', 'string', 'entity', 'set', 'record', 'decimal', 'ip']));
  }
}

function paren(s) {
  return /^[\w.:"\[\]{}]+$/.test(s) && !/\s/.test(s) ? s : '(' + s + ')';
}

function genScope(r, v, env) {
  const ents = env.uids.filter((u) => u.type !== 'Action');
  if (v === 'action') {
    const acts = env.actions;
    switch (r.int(0, 4)) {
      case 0: return 'action == ' + uidText(r.pick(acts));
      case 1: return 'action in ' + uidText(r.pick(acts));
      case 2: return 'action in [' + Array.from({ length: r.int(0, 3) }, () => uidText(r.pick(acts))).join(', ') + ']';
      default: return 'action';
    }
  }
  switch (r.int(0, 6)) {
    case 0: return v + ' == ' + uidText(r.pick(ents));
    case 1: return v + ' in ' + uidText(r.pick(ents));
    case 2: return v + ' is ' + r.pick(TYPES);
    case 3: return v + ' is ' + r.pick(TYPES) + ' in ' + uidText(r.pick(ents));
    default: return v;
  }
}

function genPolicy(r, env, index) {
  let text = '';
  if (r.chance(0.3)) text += '@id("p' + index + '")\n';
  if (r.chance(0.1)) text += '@advice("see \\"docs\\"")\n';
  text += (r.chance(0.3) ? 'forbid' : 'permit') + '(\n  ' + genScope(r, 'principal', env) + ',\n  ' + genScope(r, 'action', env) + ',\n  ' + genScope(r, 'resource', env) + '\n)';
  const nc = r.pick([0, 1, 1, 1, 2, 3]);
  for (let i = 0; i < nc; i++) text += (r.chance(0.75) ? ' when { ' : ' unless { ') + gen(r, 'bool', 0, env) + ' }';
  return text + ';';
}

// A broken copy of a policy text: a character dropped, doubled or swapped
// for punctuation, or a token inserted.
function mutate(r, text) {
  const i = r.int(0, Math.max(0, text.length - 1));
  switch (r.int(0, 4)) {
    case 0: return text.slice(0, i) + text.slice(i + 1);
    case 1: return text.slice(0, i) + text[i] + text.slice(i);
    case 2: return text.slice(0, i) + r.pick(['(', ')', ';', ',', '"', '.', '::', '==', '!', '-', '[', ']', '{', '}', 'if ', ' then ', ' else ', ' in ', ' has ', ' like ', ' is ', '@x ', '?principal', '?foo', '/', '%', '=', '0', '9223372036854775808', 'true', 'principal', 'context', ':', '\\', '\\u{', '&&', '||', '<', '*', 'x', '.foo', '()', '[]', '{}']) + text.slice(i);
    case 3: return text.slice(0, i) + r.pick([' ', '\n', '// c\n', '  ']) + text.slice(i);
    default: return text.replace(r.pick(['permit', 'when', 'principal', 'action', 'resource', '&&', '||', 'true']), r.pick(['permitt', 'whenever', 'principals', 'actor', '', '&', '|', 'True']));
  }
}

function genCase(seed, opts = {}) {
  const r = rng(seed);
  const uids = [];
  const nEnt = r.int(3, 10);
  for (let i = 0; i < nEnt; i++) {
    const u = { type: r.pick(TYPES), id: r.pick(IDS) };
    if (!uids.some((v) => v.type === u.type && v.id === u.id)) uids.push(u);
  }
  const actions = ACTIONS.map((id) => ({ type: 'Action', id }));
  const env = { uids: uids.concat(actions.slice(0, 2)), actions, maxDepth: r.int(1, 4) };
  let entities = genEntities(r, uids);
  // Actions in groups of actions, as schemas would have them.
  entities.push({ uid: actions[0], attrs: {}, parents: [actions[3]] });
  entities.push({ uid: actions[4], attrs: {}, parents: [actions[0]] });
  const np = r.int(1, 6);
  const policies = [];
  for (let i = 0; i < np; i++) policies.push(genPolicy(r, env, i));
  let text = policies.join(r.pick(['\n', '\n\n', ' ', '\n// between\n']));
  if (opts.mutate) for (let k = r.int(1, 3); k > 0; k--) text = mutate(r, text);
  else if (r.chance(0.08)) text = mutate(r, text);
  const pickUid = () => (r.chance(0.1) ? { type: r.pick(TYPES), id: 'nobody' } : r.pick(uids));
  const requests = [];
  const nr = r.int(1, 4);
  for (let i = 0; i < nr; i++) {
    const ctx = {};
    const nc = r.int(0, 5);
    for (let k = 0; k < nc; k++) {
      const name = r.pick(ATTRS);
      ctx[name] = genJsonValue(r, name, uids, 0);
    }
    if (r.chance(0.02)) ctx.bad = 1.5;
    requests.push({ principal: pickUid(), action: r.pick(actions), resource: pickUid(), context: ctx });
  }
  const c = { seed, policies: text, entities, requests };
  // Now and then a kept store under the request's entities, some of them
  // replacing stored ones.
  if (r.chance(0.25) && entities.length > 2) {
    const cut = r.int(1, entities.length - 1);
    c.store = entities.slice(0, cut);
    c.entities = entities.slice(cut);
    if (r.chance(0.3)) {
      const over = JSON.parse(JSON.stringify(r.pick(c.store)));
      over.attrs = { flag: r.chance(0.5), level: r.int(0, 5) };
      over.parents = over.parents.slice(0, 1);
      c.entities.push(over);
    }
  }
  return c;
}

module.exports = { genCase, rng };
