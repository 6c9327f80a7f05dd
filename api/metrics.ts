import type { JetStreamManager } from '@nats-io/jetstream'
import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client'
import type { Logger } from '../log.ts'
import type { BatchStats } from '../streams/consumer.ts'
import { readConsumer } from '../streams/status.ts'
import { streamName } from '../streams/subjects.ts'
import { CONSUMERS, type StageName } from '../streams/topology.ts'

// GET /metrics (docs/operating.md §3). One Registry per pipeline, never prom-client's
// global one, so several pipelines in one process (the tests) keep their own numbers. Every name starts hph_.

export interface ConsumerState {
  stream: string
  durable: string
  /** in the stream, not yet delivered */
  pending: number
  /** delivered, not yet acknowledged */
  ackPending: number
  redelivered: number
  /** age of the oldest message not yet acknowledged (0 when nothing waits); null when it cannot be read */
  lagSeconds: number | null
}

export interface JetStreamState {
  consumers: ConsumerState[]
  dlq: { stream: string; messages: number } | null
  /** false when some consumer or the DLQ could not be read */
  complete: boolean
}

export interface MetricsOptions {
  /** reads the durable consumers and the DLQ; called at most once at a time, at scrape time */
  readJetStream: () => Promise<JetStreamState>
  /** how long a scrape waits for JetStream: a NATS outage must never hang it (default 2 s) */
  timeoutMs?: number
  /** the stages this process runs: their counters start at 0, so the first batch is a visible increase */
  stages?: readonly StageName[]
  /** prom-client's process metrics (default true) */
  defaultMetrics?: boolean
}

export interface Metrics {
  registry: Registry
  /** startConsumer's `onBatch` */
  onBatch(s: BatchStats): void
  /** `route` is the route pattern (`/v1/users/:userId/samples`), never the raw URL */
  observeHttp(r: { method: string; route: string; statusCode: number; seconds: number }): void
  /** an audit record failed its schema and was written reduced */
  auditReduced(action: string): void
  /** an audit record could not be written (JetStream refused or was away) */
  auditUnwritten(action: string): void
}

export const METRIC_PREFIX = 'hph_'

const SIZE_BUCKETS = [1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10_000]
const BATCH_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60]
const HTTP_SECONDS_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10]

/** Resolves with undefined after `ms` (or when `p` fails); the late result or error is dropped. */
function within<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<undefined>((resolve) => (timer = setTimeout(resolve, ms, undefined)))
  return Promise.race([p.catch(() => undefined), timeout]).finally(() => clearTimeout(timer))
}

export function createMetrics(opts: MetricsOptions): Metrics {
  const registry = new Registry()
  const registers = [registry]
  const timeoutMs = opts.timeoutMs ?? 2_000
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, prefix: METRIC_PREFIX })

  const processed = new Counter({
    name: 'hph_stage_messages_processed_total',
    help: 'Messages a stage handled and acknowledged',
    labelNames: ['stage'] as const,
    registers,
  })
  const failed = new Counter({
    name: 'hph_stage_messages_failed_total',
    help: 'Messages a stage did not process: poison (dead-lettered) or retried (nak with backoff)',
    labelNames: ['stage', 'outcome'] as const,
    registers,
  })
  // a message is a unit of work, a fact is a unit of truth: samples (normalize, samples-writer), rows (insights-writer)
  const items = new Counter({
    name: 'hph_stage_items_processed_total',
    help: 'Facts the acknowledged messages carried: samples for normalize and samples-writer, rows for insights-writer, changes for insights-engine',
    labelNames: ['stage'] as const,
    registers,
  })
  const bytes = new Counter({
    name: 'hph_stage_bytes_processed_total',
    help: 'Bytes of the messages a stage handled',
    labelNames: ['stage'] as const,
    registers,
  })
  const batchSize = new Histogram({
    name: 'hph_stage_batch_size',
    help: 'Messages per batch a stage handled',
    labelNames: ['stage'] as const,
    buckets: SIZE_BUCKETS,
    registers,
  })
  const batchSeconds = new Histogram({
    name: 'hph_stage_batch_duration_seconds',
    help: 'Time to handle, commit and acknowledge one batch',
    labelNames: ['stage'] as const,
    buckets: BATCH_SECONDS_BUCKETS,
    registers,
  })
  const http = new Histogram({
    name: 'hph_http_request_duration_seconds',
    help: 'HTTP requests by method, route pattern and status code',
    labelNames: ['method', 'route', 'status_code'] as const,
    buckets: HTTP_SECONDS_BUCKETS,
    registers,
  })
  const auditReduced = new Counter({
    name: 'hph_audit_records_reduced_total',
    help: 'Audit records that failed their schema and were written reduced (the failing fields cut or left out)',
    labelNames: ['action'] as const,
    registers,
  })
  const auditUnwritten = new Counter({
    name: 'hph_audit_records_unwritten_total',
    help: 'Audit records that could not be written to HPH_AUDIT',
    labelNames: ['action'] as const,
    registers,
  })
  for (const action of ['write', 'export', 'erase', 'denied']) {
    auditReduced.labels(action).inc(0)
    auditUnwritten.labels(action).inc(0)
  }
  for (const stage of opts.stages ?? []) {
    processed.labels(stage).inc(0)
    items.labels(stage).inc(0)
    bytes.labels(stage).inc(0)
    for (const outcome of ['poison', 'retried']) failed.labels(stage, outcome).inc(0)
  }

  // one JetStream read per scrape, shared by every gauge below (prom-client collects them concurrently);
  // a read still running from a timed-out scrape is joined, never doubled (a JetStream request gives up after its own timeout)
  let reading: Promise<JetStreamState> | undefined
  let scrape: Promise<JetStreamState | undefined> | undefined
  const snapshot = () => {
    reading ??= opts.readJetStream().finally(() => (reading = undefined))
    scrape ??= within(reading, timeoutMs).finally(() => (scrape = undefined))
    return scrape
  }
  const fromJetStream = <L extends string>(fill: (g: Gauge<L>, s: JetStreamState) => void) =>
    async function collect(this: Gauge<L>): Promise<void> {
      const s = await snapshot()
      // no stale numbers: what could not be read is absent, and hph_jetstream_up says why
      this.reset()
      if (s) fill(this, s)
    }
  const consumerGauge = (name: string, help: string, value: (c: ConsumerState) => number | null) =>
    new Gauge({
      name,
      help,
      labelNames: ['stream', 'durable'] as const,
      registers,
      collect: fromJetStream<'stream' | 'durable'>((g, s) => {
        for (const c of s.consumers) {
          const v = value(c)
          if (v !== null) g.labels(c.stream, c.durable).set(v)
        }
      }),
    })
  consumerGauge('hph_consumer_pending_messages', 'Messages in the stream not yet delivered to the durable consumer', (c) => c.pending)
  consumerGauge('hph_consumer_ack_pending_messages', 'Messages delivered to the durable consumer, not yet acknowledged', (c) => c.ackPending)
  consumerGauge('hph_consumer_redelivered_messages', 'Messages delivered more than once and not yet acknowledged', (c) => c.redelivered)
  consumerGauge('hph_consumer_lag_seconds', 'Age of the oldest message the durable consumer has not acknowledged (0 when idle)', (c) => c.lagSeconds)
  new Gauge({
    name: 'hph_dlq_messages',
    help: 'Dead letters in the DLQ stream',
    labelNames: ['stream'] as const,
    registers,
    collect: fromJetStream<'stream'>((g, s) => s.dlq && g.labels(s.dlq.stream).set(s.dlq.messages)),
  })
  new Gauge({
    name: 'hph_jetstream_up',
    help: `1 when this scrape read every consumer and the DLQ from JetStream within ${timeoutMs} ms`,
    registers,
    async collect() {
      this.set((await snapshot())?.complete ? 1 : 0)
    },
  })

  return {
    registry,
    onBatch(s) {
      processed.labels(s.stage).inc(s.ok)
      items.labels(s.stage).inc(s.items)
      bytes.labels(s.stage).inc(s.bytes)
      failed.labels(s.stage, 'poison').inc(s.poison)
      failed.labels(s.stage, 'retried').inc(s.retried)
      batchSize.labels(s.stage).observe(s.size)
      batchSeconds.labels(s.stage).observe(s.ms / 1000)
    },
    observeHttp(r) {
      http.labels(r.method, r.route, String(r.statusCode)).observe(r.seconds)
    },
    auditReduced(action) {
      auditReduced.labels(action).inc()
    },
    auditUnwritten(action) {
      auditUnwritten.labels(action).inc()
    },
  }
}

/** Reads every durable consumer of the pipeline and the DLQ depth, as `hph status` does (streams/status.ts); parts that fail are left out. */
export function jetStreamReader(jsm: JetStreamManager, prefix: string, log: Logger): () => Promise<JetStreamState> {
  return async () => {
    let complete = true
    const unreadable = (err: unknown, what: string) => {
      complete = false
      log.warn({ err, what }, 'metrics: JetStream state unavailable')
    }
    const consumers = await Promise.all(
      Object.values(CONSUMERS).map(async (spec): Promise<ConsumerState | undefined> => {
        const stream = streamName(prefix, spec.stream)
        try {
          const c = await readConsumer(jsm, prefix, spec.durable, spec)
          return { stream, durable: c.durable, pending: c.pending, ackPending: c.ackPending, redelivered: c.redelivered, lagSeconds: c.lagSeconds }
        } catch (err) {
          unreadable(err, `${stream}/${spec.durable}`)
          return undefined
        }
      }),
    )
    const dlqStream = streamName(prefix, 'DLQ')
    const dlq = await jsm.streams.info(dlqStream).then(
      (i) => ({ stream: dlqStream, messages: i.state.messages }),
      (err: unknown) => (unreadable(err, dlqStream), null),
    )
    return { consumers: consumers.filter((c) => c !== undefined), dlq, complete }
  }
}
