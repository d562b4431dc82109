// Validates JSON documents against a JSON Schema with npm ajv (draft-07,
// strict, formats from ajv-formats), an implementation that is not Grace's:
//   node oscal_validate.mjs SCHEMA.json < DOCS.json   (a JSON array of documents)
// prints {"results": [{"valid", "errors"}], one per document}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { readFileSync } from 'node:fs';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const Ajv = require('ajv').default;
const addFormats = require('ajv-formats').default ?? require('ajv-formats');

const [schemaPath] = process.argv.slice(2);
const schema = JSON.parse(readFileSync(schemaPath, 'utf8'));
const docs = JSON.parse(readFileSync(0, 'utf8'));
const ajv = new Ajv({ strict: true, allErrors: true });
addFormats(ajv);
const validate = ajv.compile(schema);
const results = docs.map((d) => {
  const valid = validate(d);
  return { valid, errors: valid ? [] : validate.errors.map((e) => `${e.instancePath} ${e.message}`) };
});
process.stdout.write(JSON.stringify({ results }) + '\n');
