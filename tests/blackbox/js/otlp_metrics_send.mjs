// A counter, a gauge and a histogram made by the OpenTelemetry JS SDK
// (sdk-metrics) and sent by its OTLP/HTTP metrics exporters to Grace's
// telemetry kernel, for the black-box tests.
//   node otlp_metrics_send.mjs BASE_URL MODES TOKEN
// MODES: a comma list of json | proto | delta (JSON, delta temporality).
// The protobuf exporter is built exactly as
// @opentelemetry/exporter-metrics-otlp-proto 0.200 builds it (the
// exporter base of -http, the OTLP HTTP delegate and the protobuf
// serializer of otlp-transformer: every piece installed already). Each
// mode collects and exports twice (the counter gets 5, then 7 more);
// prints one JSON line per mode: {"mode", "job", "results": [{code,
// error}, ...]}.
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '../../node/package.json'));
const { MeterProvider, MetricReader } = require('@opentelemetry/sdk-metrics');
const { resourceFromAttributes } = require('@opentelemetry/resources');
const { OTLPMetricExporter, OTLPMetricExporterBase, AggregationTemporalityPreference } =
  require('@opentelemetry/exporter-metrics-otlp-http');
const { ProtobufMetricsSerializer } = require('@opentelemetry/otlp-transformer');
const { createOtlpHttpExportDelegate, convertLegacyHttpOptions } =
  require('@opentelemetry/otlp-exporter-base/node-http');

const [base, modes, token] = process.argv.slice(2);
const headers = token ? { Authorization: 'Bearer ' + token } : {};

function exporterFor(mode) {
  const config = { url: base + '/v1/metrics', headers };
  if (mode === 'delta')
    config.temporalityPreference = AggregationTemporalityPreference.DELTA;
  if (mode !== 'proto')
    return new OTLPMetricExporter(config);
  return new OTLPMetricExporterBase(createOtlpHttpExportDelegate(
    convertLegacyHttpOptions(config, 'METRICS', 'v1/metrics',
      { 'Content-Type': 'application/x-protobuf' }),
    ProtobufMetricsSerializer), config);
}

// A reader collected by hand: the test decides when points go.
class HandReader extends MetricReader {
  async onForceFlush() {}
  async onShutdown() {}
}

for (const mode of modes.split(',')) {
  const job = 'bbm-' + mode + '-' + process.pid;
  const exporter = exporterFor(mode);
  const reader = new HandReader({
    aggregationTemporalitySelector: (t) => exporter.selectAggregationTemporality(t),
  });
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': job, 'service.instance.id': 'i-1' }),
    readers: [reader],
  });
  const meter = provider.getMeter('grace-bb', '1.2.3');
  const counter = meter.createCounter('bb.requests', { unit: '{request}' });
  const gauge = meter.createGauge('bb.temperature', { unit: 'Cel' });
  const hist = meter.createHistogram('bb.latency',
    { unit: 'ms', advice: { explicitBucketBoundaries: [10, 100] } });
  const attrs = { 'http.route': '/a', code: 200 };
  const results = [];
  const send = async () => {
    const { resourceMetrics } = await reader.collect();
    const r = await new Promise((ok) => exporter.export(resourceMetrics, ok));
    results.push({ code: r.code, error: r.error ? String(r.error.message || r.error) : null });
  };
  counter.add(5, attrs);
  gauge.record(18.5, attrs);
  hist.record(3, attrs);
  hist.record(30, attrs);
  await send();
  // Later: the sums go on (a delta exporter sends only the 7 and the 300).
  await new Promise((r) => setTimeout(r, 20));
  counter.add(7, attrs);
  gauge.record(21.5, attrs);
  hist.record(300, attrs);
  await send();
  await exporter.shutdown();
  process.stdout.write(JSON.stringify({ mode, job, results }) + '\n');
}
