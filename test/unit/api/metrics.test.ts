import { readFileSync } from 'node:fs'
import { Histogram, type Registry } from 'prom-client'
import { describe, expect, it } from 'vitest'
import { createMetrics, type JetStreamState } from '../../../api/metrics.ts'

const idle: JetStreamState = { consumers: [], dlq: null, complete: true }

interface Target {
  expr: string
}
interface Panel {
  title: string
  type: string
  targets?: Target[]
  panels?: Panel[]
}
const dashboard = JSON.parse(readFileSync(new URL('../../../infra/grafana/hph-dashboard.json', import.meta.url), 'utf8')) as {
  uid: string
  schemaVersion: number
  templating: { list: Array<{ name: string; type: string; query: string }> }
  panels: Panel[]
}
const exprs = dashboard.panels.flatMap((p) => [p, ...(p.panels ?? [])]).flatMap((p) => (p.targets ?? []).map((t) => t.expr))

/** A series name in an expression → the registry's metric it belongs to (histogram series carry a suffix). */
function metricOf(registry: Registry, series: string): { name: string; labelNames: readonly string[] } | undefined {
  const direct = registry.getSingleMetric(series)
  if (direct) return { name: series, labelNames: (direct as unknown as { labelNames: string[] }).labelNames }
  const m = /^(.*)_(bucket|sum|count)$/.exec(series)
  const base = m ? registry.getSingleMetric(m[1]!) : undefined
  if (!(base instanceof Histogram)) return undefined
  const labels = (base as unknown as { labelNames: string[] }).labelNames
  return { name: m![1]!, labelNames: m![2] === 'bucket' ? [...labels, 'le'] : labels }
}

/** Every problem of the dashboard against a registry: unknown series, unknown labels in selectors. */
function drift(registry: Registry, expressions: readonly string[]): string[] {
  const problems: string[] = []
  for (const expr of expressions) {
    for (const [, series, selector] of expr.matchAll(/\b(hph_[a-z0-9_]+)(?:\{([^}]*)\})?/g)) {
      const metric = metricOf(registry, series!)
      if (!metric) {
        problems.push(`${series}: not exported`)
        continue
      }
      for (const [, label] of (selector ?? '').matchAll(/([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)/g)) {
        // job and instance are added by Prometheus to every series it scrapes
        if (!metric.labelNames.includes(label!) && label !== 'job' && label !== 'instance') problems.push(`${series}: no label ${label}`)
      }
    }
  }
  return problems
}

describe('the Grafana dashboard', () => {
  it('is a dashboard model with a Prometheus datasource variable, every query on it', () => {
    expect(dashboard.uid).toBeTruthy()
    expect(dashboard.schemaVersion).toBeGreaterThanOrEqual(36)
    expect(dashboard.templating.list).toContainEqual(expect.objectContaining({ name: 'datasource', type: 'datasource', query: 'prometheus' }))
    const queried = dashboard.panels.filter((p) => p.type !== 'row')
    expect(queried.length).toBeGreaterThanOrEqual(10)
    expect(JSON.stringify(queried.map((p) => (p as { datasource?: unknown }).datasource))).not.toContain('"uid":"prometheus"')
    for (const p of queried) expect(p, p.title).toMatchObject({ datasource: { type: 'prometheus', uid: '${datasource}' } })
  })

  it('queries only metrics and labels the registry exports', () => {
    const { registry } = createMetrics({ readJetStream: async () => idle })
    expect(exprs.length).toBeGreaterThanOrEqual(15)
    expect(drift(registry, exprs)).toEqual([])
    // the check itself finds drift
    expect(drift(registry, ['rate(hph_stage_messages_done_total[5m])', 'hph_consumer_lag_seconds{stage="x"}', 'hph_dlq_messages_bucket'])).toEqual([
      'hph_stage_messages_done_total: not exported',
      'hph_consumer_lag_seconds: no label stage',
      'hph_dlq_messages_bucket: not exported',
    ])
  })

  it('shows every metric of the pipeline itself (beyond the process defaults)', () => {
    const { registry } = createMetrics({ readJetStream: async () => idle, defaultMetrics: false })
    const shown = new Set(exprs.flatMap((e) => [...e.matchAll(/\bhph_[a-z0-9_]+/g)].map((m) => metricOf(registry, m[0])?.name)))
    const own = registry.getMetricsAsArray().map((m) => (m as unknown as { name: string }).name)
    expect(own.length).toBe(15)
    expect(own.filter((n) => !shown.has(n))).toEqual([])
  })
})

describe('the metrics registry', () => {
  it('counts a batch as processed and failed messages, and observes its size and duration per stage', async () => {
    const m = createMetrics({ readJetStream: async () => idle, stages: ['normalize', 'samples-writer'], defaultMetrics: false })
    m.onBatch({ stage: 'samples-writer', size: 1000, bytes: 8_000_000, items: 31_000, ok: 997, poison: 1, retried: 2, ms: 250 })
    m.onBatch({ stage: 'samples-writer', size: 3, bytes: 900, items: 3, ok: 3, poison: 0, retried: 0, ms: 4 })
    const text = await m.registry.metrics()
    // the samples the messages carried beside the messages
    expect(text).toContain('hph_stage_items_processed_total{stage="samples-writer"} 31003')
    expect(text).toContain('hph_stage_bytes_processed_total{stage="samples-writer"} 8000900')
    expect(text).toContain('hph_stage_messages_processed_total{stage="samples-writer"} 1000')
    expect(text).toContain('hph_stage_messages_failed_total{stage="samples-writer",outcome="poison"} 1')
    expect(text).toContain('hph_stage_messages_failed_total{stage="samples-writer",outcome="retried"} 2')
    // a stage that has not handled anything yet starts at 0
    expect(text).toContain('hph_stage_messages_processed_total{stage="normalize"} 0')
    expect(text).toContain('hph_stage_batch_size_sum{stage="samples-writer"} 1003')
    expect(text).toContain('hph_stage_batch_size_count{stage="samples-writer"} 2')
    expect(text).toContain('hph_stage_batch_size_bucket{le="5",stage="samples-writer"} 1')
    expect(text).toContain('hph_stage_batch_duration_seconds_sum{stage="samples-writer"} 0.254')
    expect(text).toContain('hph_stage_batch_duration_seconds_bucket{le="0.005",stage="samples-writer"} 1')
    expect(text).toContain('hph_stage_batch_duration_seconds_bucket{le="0.25",stage="samples-writer"} 2')
  })

  it('keeps pipelines apart: two registries in one process, each with the default process metrics', async () => {
    const a = createMetrics({ readJetStream: async () => idle })
    const b = createMetrics({ readJetStream: async () => idle })
    a.onBatch({ stage: 'normalize', size: 1, bytes: 100, items: 1, ok: 1, poison: 0, retried: 0, ms: 1 })
    expect(await a.registry.metrics()).toContain('hph_stage_messages_processed_total{stage="normalize"} 1')
    expect(await b.registry.metrics()).not.toContain('hph_stage_messages_processed_total{stage="normalize"}')
    expect(await b.registry.metrics()).toMatch(/^hph_process_cpu_seconds_total \d/m)
  })

  it('reads JetStream once a scrape for every gauge, and leaves out what it could not read', async () => {
    let reads = 0
    const m = createMetrics({
      defaultMetrics: false,
      readJetStream: async () => {
        reads++
        return {
          consumers: [
            { stream: 'X_SAMPLES', durable: 'samples-writer', pending: 7, ackPending: 2, redelivered: 1, lagSeconds: 12.5 },
            { stream: 'X_CHANGES', durable: 'insights-engine', pending: 1, ackPending: 0, redelivered: 0, lagSeconds: null },
          ],
          dlq: { stream: 'X_DLQ', messages: 3 },
          complete: false,
        }
      },
    })
    const text = await m.registry.metrics()
    expect(reads).toBe(1)
    expect(text).toContain('hph_consumer_pending_messages{stream="X_SAMPLES",durable="samples-writer"} 7')
    expect(text).toContain('hph_consumer_ack_pending_messages{stream="X_SAMPLES",durable="samples-writer"} 2')
    expect(text).toContain('hph_consumer_redelivered_messages{stream="X_SAMPLES",durable="samples-writer"} 1')
    expect(text).toContain('hph_consumer_lag_seconds{stream="X_SAMPLES",durable="samples-writer"} 12.5')
    expect(text).toContain('hph_consumer_pending_messages{stream="X_CHANGES",durable="insights-engine"} 1')
    expect(text).not.toContain('hph_consumer_lag_seconds{stream="X_CHANGES"')
    expect(text).toContain('hph_dlq_messages{stream="X_DLQ"} 3')
    expect(text).toMatch(/^hph_jetstream_up 0$/m)
    await m.registry.metrics()
    expect(reads).toBe(2)
  })

  it('answers a scrape within its timeout when JetStream does not answer, with no stale gauges', async () => {
    let reads = 0
    let answer: ((s: JetStreamState) => void) | undefined
    const m = createMetrics({
      defaultMetrics: false,
      timeoutMs: 200,
      // the first read hangs (NATS away); later ones answer at once
      readJetStream: () =>
        ++reads === 1 ? new Promise((resolve) => (answer = resolve)) : Promise.resolve({ consumers: [], dlq: { stream: 'X_DLQ', messages: 0 }, complete: true }),
    })
    const t0 = performance.now()
    const text = await m.registry.metrics()
    expect(performance.now() - t0).toBeLessThan(2_000)
    expect(text).toMatch(/^hph_jetstream_up 0$/m)
    expect(text).not.toMatch(/^hph_consumer_pending_messages\{/m)
    expect(text).not.toMatch(/^hph_dlq_messages\{/m)
    // the next scrape joins the read still under way instead of starting another
    await m.registry.metrics()
    expect(reads).toBe(1)
    answer?.({ consumers: [], dlq: null, complete: false })
    await new Promise((r) => setTimeout(r, 0))
    const after = await m.registry.metrics()
    expect(reads).toBe(2)
    expect(after).toMatch(/^hph_jetstream_up 1$/m)
    expect(after).toContain('hph_dlq_messages{stream="X_DLQ"} 0')
  })

  it('labels HTTP requests by method, route pattern and status code', async () => {
    const m = createMetrics({ readJetStream: async () => idle, defaultMetrics: false })
    m.observeHttp({ method: 'POST', route: '/v1/users/:userId/samples', statusCode: 202, seconds: 0.02 })
    expect(await m.registry.metrics()).toContain('hph_http_request_duration_seconds_count{method="POST",route="/v1/users/:userId/samples",status_code="202"} 1')
  })
})
