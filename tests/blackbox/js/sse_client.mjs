// A real Server-Sent Events client (npm `eventsource`, the spec's
// reconnection and Last-Event-ID included) for the black-box tests.
//   node sse_client.mjs URL TOKEN
// prints one JSON line per event: {"type":"open"} | {"type":"message",
// "id":..,"data":..} | {"type":"error","status":..,"message":..}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const { EventSource } = await import(require.resolve('eventsource'));

const [url, token] = process.argv.slice(2);
const out = (o) => process.stdout.write(JSON.stringify(o) + '\n');
const es = new EventSource(url, {
  fetch: (input, init) =>
    fetch(input, { ...init, headers: { ...init.headers, Authorization: 'Bearer ' + token } }),
});
es.addEventListener('open', () => out({ type: 'open' }));
es.addEventListener('message', (e) => out({ type: 'message', id: e.lastEventId, data: e.data }));
es.addEventListener('error', (e) => out({ type: 'error', status: e.code ?? null, message: e.message ?? '' }));
process.on('SIGTERM', () => { es.close(); process.exit(0); });
