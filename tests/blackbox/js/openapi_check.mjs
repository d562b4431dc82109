// Checks Grace's OpenAPI document with tools that are not Grace's:
//   node openapi_check.mjs DOC.json [SAMPLES.json]
// 1. @seriousme/openapi-schema-validator: the document against the
//    OpenAPI 3.1 schema.
// 2. Every $ref resolves inside the document.
// 3. Every Schema Object compiles with ajv's JSON Schema 2020-12 (the
//    dialect of OpenAPI 3.1) in strict mode, formats known: a misspelt
//    keyword or an impossible schema is an error, not an ignored word.
// 4. With SAMPLES (a JSON array of {method, path, status, content_type,
//    body}: real answers of a running Grace, `path` as the document writes
//    it), each body is validated against the schema the document gives for
//    that operation, status and media type.
// Prints one JSON object: {"valid", "version", "errors": [...],
// "schemas_checked", "samples": [{"method","path","status","errors"}]}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const { Validator } = await import(require.resolve('@seriousme/openapi-schema-validator'));
const Ajv2020 = require('ajv/dist/2020').default;
const addFormats = require('ajv-formats').default ?? require('ajv-formats');

const [docPath, samplesPath] = process.argv.slice(2);
const doc = JSON.parse(readFileSync(docPath, 'utf8'));
const out = { valid: false, version: null, errors: [], schemas_checked: 0, samples: [] };

// 1. The OpenAPI schema.
const validator = new Validator();
const res = await validator.validate(doc);
out.version = validator.version ?? null;
if (!res.valid) {
  for (const e of [].concat(res.errors ?? []))
    out.errors.push(`openapi-schema-validator: ${e.instancePath ?? ''} ${e.message ?? JSON.stringify(e)}`);
}
if (out.version !== '3.1')
  out.errors.push(`openapi-schema-validator: version ${out.version}, not 3.1`);

// 2. References, resolved deeply (the document has no recursive schema).
function pointer(ref) {
  if (!ref.startsWith('#/')) throw new Error(`external $ref ${ref}`);
  let node = doc;
  for (const raw of ref.slice(2).split('/')) {
    const key = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    if (node === null || typeof node !== 'object' || !(key in node)) throw new Error(`unresolved $ref ${ref}`);
    node = node[key];
  }
  return node;
}
function deref(node, seen = []) {
  if (Array.isArray(node)) return node.map((v) => deref(v, seen));
  if (node === null || typeof node !== 'object') return node;
  if (typeof node.$ref === 'string') {
    if (seen.includes(node.$ref)) throw new Error(`recursive $ref ${node.$ref}`);
    const target = deref(pointer(node.$ref), [...seen, node.$ref]);
    const { $ref, ...rest } = node;
    // A Schema Object may put keywords beside $ref (3.1); merge them.
    return Object.keys(rest).length ? { ...target, ...deref(rest, seen) } : target;
  }
  const o = {};
  for (const [k, v] of Object.entries(node)) o[k] = deref(v, seen);
  return o;
}
let flat = null;
try {
  flat = deref(doc);
} catch (e) {
  out.errors.push(String(e.message));
}

// 3. Every Schema Object, wherever it sits.
const ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: false, validateFormats: true });
addFormats(ajv);
ajv.addVocabulary(['example', 'discriminator', 'xml', 'externalDocs']);
const compiled = new Map();
function compile(schema, where) {
  try {
    const v = ajv.compile(schema);
    out.schemas_checked++;
    return v;
  } catch (e) {
    out.errors.push(`ajv (JSON Schema 2020-12) at ${where}: ${e.message}`);
    return null;
  }
}
if (flat) {
  for (const [name, s] of Object.entries(flat.components?.schemas ?? {}))
    compile(s, `components.schemas.${name}`);
  for (const [p, item] of Object.entries(flat.paths ?? {})) {
    for (const [method, op] of Object.entries(item)) {
      if (method === 'parameters' || typeof op !== 'object') continue;
      const where = `${method.toUpperCase()} ${p}`;
      for (const prm of [...(item.parameters ?? []), ...(op.parameters ?? [])])
        if (prm.schema) compile(prm.schema, `${where} parameter ${prm.name}`);
      for (const [ct, media] of Object.entries(op.requestBody?.content ?? {}))
        if (media.schema) compile(media.schema, `${where} request ${ct}`);
      for (const [status, r] of Object.entries(op.responses ?? {}))
        for (const [ct, media] of Object.entries(r.content ?? {})) {
          if (!media.schema) continue;
          const v = compile(media.schema, `${where} ${status} ${ct}`);
          if (v) compiled.set(`${method} ${p} ${status} ${ct}`, v);
        }
    }
  }
}

// 4. Real answers against the documented schemas.
if (samplesPath && flat) {
  for (const s of JSON.parse(readFileSync(samplesPath, 'utf8'))) {
    const method = s.method.toLowerCase();
    const r = { method: s.method, path: s.path, status: s.status, errors: [] };
    const op = flat.paths?.[s.path]?.[method];
    const resp = op?.responses?.[String(s.status)];
    const ct = resp && Object.keys(resp.content ?? {}).find((c) => c.split(';')[0] === s.content_type.split(';')[0].trim());
    const v = ct && compiled.get(`${method} ${s.path} ${s.status} ${ct}`);
    if (!op) r.errors.push('the document has no such operation');
    else if (!resp) r.errors.push(`the document gives no ${s.status} response`);
    else if (!ct) r.errors.push(`the document gives no ${s.content_type} content for ${s.status}`);
    else if (!v) r.errors.push('its schema did not compile');
    else if (!v(s.body))
      for (const e of v.errors) r.errors.push(`${e.instancePath || '/'} ${e.message} ${JSON.stringify(e.params)}`);
    out.samples.push(r);
  }
}

out.valid = out.errors.length === 0 && out.samples.every((s) => s.errors.length === 0);
process.stdout.write(JSON.stringify(out) + '\n');
