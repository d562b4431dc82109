// Spans and log records made by the OpenTelemetry JS SDK and sent by its
// own OTLP/HTTP exporters (protobuf or JSON) to Grace's telemetry kernel,
// for the black-box tests.
//   node otlp_send.mjs BASE_URL MODES TOKEN
// MODES: a comma list of traces-proto | traces-json | logs-json |
// logs-proto (the SDK's protobuf serializer, POSTed as the exporter
// would). Prints one JSON line per mode, in order: {"mode", "result":
// {code, error}, "sent": [what the SDK recorded]}. (One process for all:
// node and the SDK take seconds to load on a busy machine.)
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const api = require('@opentelemetry/api');
const { BasicTracerProvider, SimpleSpanProcessor, InMemorySpanExporter } =
  require('@opentelemetry/sdk-trace-base');
const { resourceFromAttributes } = require('@opentelemetry/resources');

const [base, modes, token] = process.argv.slice(2);
const headers = token ? { Authorization: 'Bearer ' + token } : {};
const ns = (hr) => (BigInt(hr[0]) * 1000000000n + BigInt(hr[1])).toString();
let mode, tag, resource;
const done = (result, sent) => {
  process.stdout.write(JSON.stringify({ mode, result, sent }) + '\n');
};

async function traces(proto) {
  const mem = new InMemorySpanExporter();
  const provider = new BasicTracerProvider({ resource, spanProcessors: [new SimpleSpanProcessor(mem)] });
  const tracer = provider.getTracer('grace-bb', '1.2.3');
  const root = tracer.startSpan('checkout ' + tag, {
    kind: api.SpanKind.SERVER,
    attributes: { 'http.method': 'POST', 'http.status_code': 201, retry: true, ratio: 0.25,
                  tags: ['a', 'b'], tag },
  });
  const ctx = api.trace.setSpan(api.context.active(), root);
  const child = tracer.startSpan('db.query', { kind: api.SpanKind.CLIENT,
                                               attributes: { 'db.system': 'sqlite', rows: 3 } }, ctx);
  child.addEvent('retry', { attempt: 2 });
  child.setStatus({ code: api.SpanStatusCode.ERROR, message: 'locked' });
  const grand = tracer.startSpan('fsync', {}, api.trace.setSpan(ctx, child));
  grand.setStatus({ code: api.SpanStatusCode.OK });
  grand.end();
  child.end();
  const linked = tracer.startSpan('audit ' + tag, { kind: api.SpanKind.PRODUCER,
                                                    links: [{ context: root.spanContext(), attributes: { why: 'follows' } }] }, ctx);
  linked.end();
  root.end();
  const spans = mem.getFinishedSpans();
  const mod = proto ? '@opentelemetry/exporter-trace-otlp-proto' : '@opentelemetry/exporter-trace-otlp-http';
  const { OTLPTraceExporter } = require(mod);
  const exporter = new OTLPTraceExporter({ url: base + '/v1/traces', headers });
  const result = await new Promise((r) => exporter.export(spans, r));
  await exporter.shutdown();
  done({ code: result.code, error: result.error ? String(result.error.message || result.error) : null },
    spans.map((s) => ({
      traceId: s.spanContext().traceId, spanId: s.spanContext().spanId,
      parentSpanId: s.parentSpanContext ? s.parentSpanContext.spanId : null,
      name: s.name, kind: s.kind, start: ns(s.startTime), end: ns(s.endTime),
      status: s.status, attributes: s.attributes, events: s.events.map((e) => e.name),
      links: s.links.map((l) => l.context.spanId), service: 'bb-' + tag,
    })));
}

async function logs(proto) {
  const { LoggerProvider, SimpleLogRecordProcessor, InMemoryLogRecordExporter } =
    require('@opentelemetry/sdk-logs');
  const mem = new InMemoryLogRecordExporter();
  const provider = new LoggerProvider({ resource });
  provider.addLogRecordProcessor(new SimpleLogRecordProcessor(mem));
  const logger = provider.getLogger('grace-bb', '1.2.3');
  const { BasicTracerProvider: P } = require('@opentelemetry/sdk-trace-base');
  const span = new P({ resource }).getTracer('t').startSpan('with-logs ' + tag);
  const ctx = api.trace.setSpan(api.context.active(), span);
  logger.emit({ severityNumber: 9, severityText: 'INFO', body: 'hello ' + tag,
                attributes: { tag, n: 7 }, context: ctx });
  logger.emit({ severityNumber: 17, severityText: 'ERROR', body: 'boom ' + tag, context: ctx });
  span.end();
  const records = mem.getFinishedLogRecords();
  let result;
  if (proto) {
    const { ProtobufLogsSerializer } = require('@opentelemetry/otlp-transformer');
    const body = ProtobufLogsSerializer.serializeRequest(records);
    const res = await fetch(base + '/v1/logs', { method: 'POST', body,
      headers: { ...headers, 'Content-Type': 'application/x-protobuf' } });
    await res.arrayBuffer();
    result = { code: res.ok ? 0 : 1, error: res.ok ? null : 'HTTP ' + res.status };
  } else {
    const { OTLPLogExporter } = require('@opentelemetry/exporter-logs-otlp-http');
    const exporter = new OTLPLogExporter({ url: base + '/v1/logs', headers });
    const r = await new Promise((ok) => exporter.export(records, ok));
    await exporter.shutdown();
    result = { code: r.code, error: r.error ? String(r.error.message || r.error) : null };
  }
  done(result, records.map((r) => ({
    traceId: r.spanContext.traceId, spanId: r.spanContext.spanId, body: r.body,
    severityNumber: r.severityNumber, severityText: r.severityText, time: ns(r.hrTime),
    attributes: r.attributes, service: 'bb-' + tag,
  })));
}

for (mode of modes.split(',')) {
  tag = mode + '-' + process.pid;
  resource = resourceFromAttributes({ 'service.name': 'bb-' + tag, 'deployment.environment': 'test' });
  if (mode === 'traces-proto') await traces(true);
  else if (mode === 'traces-json') await traces(false);
  else if (mode === 'logs-proto') await logs(true);
  else if (mode === 'logs-json') await logs(false);
  else { console.error('unknown mode ' + mode); process.exit(2); }
}
