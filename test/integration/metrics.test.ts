import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STAGES, startPipeline, waitForIdle, type Pipeline } from '../../pipeline/start.ts'
import { streamName } from '../../streams/subjects.ts'
import { CONSUMERS } from '../../streams/topology.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/operating.md §3: GET /metrics on the api and on a worker without it, reflecting the work the pipeline did.

let env: TestEnv
const running: Pipeline[] = []
beforeAll(async () => {
  // a long ack wait: no redelivery on a busy machine, so every message is counted exactly once
  env = await testEnv({ HPH_ACK_WAIT_S: '60' })
})
afterAll(async () => {
  for (const p of running) await p.stop()
  await env?.cleanup()
})

async function start(opts: Parameters<typeof startPipeline>[2]): Promise<Pipeline> {
  const p = await startPipeline(env.config, env.log, opts)
  running.push(p)
  return p
}

/** `n` HRV samples of one night, a minute apart from `minute0`. */
const hrvBatch = (batchId: string, n: number, minute0 = 0) => ({
  batchId,
  samples: Array.from({ length: n }, (_, i) => {
    const t = new Date(Date.parse('2026-03-01T10:00:00Z') + (minute0 + i) * 60_000).toISOString()
    return { type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 40 + (i % 20), unit: 'ms', startDate: t, endDate: t }
  }),
})

const post = (url: string, userId: string, body: unknown) =>
  fetch(`${url}/v1/users/${userId}/samples`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) })

interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** Scrapes `url`/metrics and parses the Prometheus text format. */
async function scrape(url: string): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${url}/metrics`)
  expect(res.status).toBe(200)
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  const samples = text
    .split('\n')
    .filter((l) => l && !l.startsWith('#'))
    .map((l) => {
      const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(l)
      if (!m) throw new Error(`not a sample line: ${l}`)
      const labels = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map(([, k, v]) => [k!, v!]))
      return { name: m[1]!, labels, value: Number(m[3]) }
    })
  return { text, samples }
}

/** The one sample of `name` whose labels include `labels`. */
function value(samples: Sample[], name: string, labels: Record<string, string> = {}): number {
  const found = samples.filter((s) => s.name === name && Object.entries(labels).every(([k, v]) => s.labels[k] === v))
  if (found.length !== 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
  return found[0]!.value
}

const stream = (key: 'SAMPLES' | 'CHANGES' | 'INSIGHTS') => streamName(env.config.HPH_PREFIX, key)
const streamState = async (key: 'SAMPLES' | 'CHANGES' | 'INSIGHTS') => (await env.nats.jsm.streams.info(stream(key))).state

function expectIdleConsumers(samples: Sample[]): void {
  for (const spec of Object.values(CONSUMERS)) {
    const labels = { stream: streamName(env.config.HPH_PREFIX, spec.stream), durable: spec.durable }
    expect(value(samples, 'hph_consumer_pending_messages', labels), spec.durable).toBe(0)
    expect(value(samples, 'hph_consumer_ack_pending_messages', labels), spec.durable).toBe(0)
    expect(value(samples, 'hph_consumer_redelivered_messages', labels), spec.durable).toBe(0)
    expect(value(samples, 'hph_consumer_lag_seconds', labels), spec.durable).toBe(0)
  }
  expect(value(samples, 'hph_dlq_messages', { stream: streamName(env.config.HPH_PREFIX, 'DLQ') })).toBe(0)
  expect(value(samples, 'hph_jetstream_up')).toBe(1)
}

const INGEST_ROUTE = { method: 'POST', route: '/v1/users/:userId/samples' }

describe('GET /metrics', () => {
  it('on the api of a whole pipeline, counts what every stage processed, the ingest request, and idle consumers', async () => {
    const up = await start({ stages: STAGES, api: true, prepare: true })
    const res = await post(up.url, 'mia', hrvBatch('mia-1', 30))
    expect(res.status).toBe(202)
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })
    const { text, samples } = await scrape(up.url)

    // one raw batch of 30 HRV samples: one sample event holding all 30
    const samplesMessages = (await streamState('SAMPLES')).messages
    expect(samplesMessages).toBe(1)
    const processed = (stage: string) => value(samples, 'hph_stage_messages_processed_total', { stage })
    const items = (stage: string) => value(samples, 'hph_stage_items_processed_total', { stage })
    expect(processed('normalize')).toBe(1)
    expect(processed('samples-writer')).toBe(samplesMessages)
    expect(items('normalize')).toBe(30)
    expect(items('samples-writer')).toBe(30)
    expect(value(samples, 'hph_stage_bytes_processed_total', { stage: 'samples-writer' })).toBeGreaterThan(1000)
    expect(value(samples, 'hph_stage_bytes_processed_total', { stage: 'samples-writer' })).toBeLessThanOrEqual((await streamState('SAMPLES')).bytes)
    expect(processed('insights-engine')).toBe((await streamState('CHANGES')).last_seq)
    expect(processed('insights-engine')).toBeGreaterThan(0)
    expect(processed('insights-writer')).toBe((await streamState('INSIGHTS')).messages)
    expect(processed('insights-writer')).toBeGreaterThan(0)
    for (const stage of STAGES) {
      expect(value(samples, 'hph_stage_messages_failed_total', { stage, outcome: 'poison' })).toBe(0)
      expect(value(samples, 'hph_stage_messages_failed_total', { stage, outcome: 'retried' })).toBe(0)
    }
    // every message of the stage in some batch; every batch timed
    expect(value(samples, 'hph_stage_batch_size_sum', { stage: 'samples-writer' })).toBe(1)
    const batches = value(samples, 'hph_stage_batch_size_count', { stage: 'samples-writer' })
    expect(batches).toBeGreaterThanOrEqual(1)
    expect(value(samples, 'hph_stage_batch_duration_seconds_count', { stage: 'samples-writer' })).toBe(batches)
    expect(value(samples, 'hph_stage_batch_duration_seconds_sum', { stage: 'samples-writer' })).toBeGreaterThan(0)
    expect(value(samples, 'hph_stage_batch_duration_seconds_bucket', { stage: 'samples-writer', le: '+Inf' })).toBe(batches)

    expect(value(samples, 'hph_http_request_duration_seconds_count', { ...INGEST_ROUTE, status_code: '202' })).toBe(1)
    expect(value(samples, 'hph_http_request_duration_seconds_bucket', { ...INGEST_ROUTE, status_code: '202', le: '+Inf' })).toBe(1)
    // the route pattern, never the URL with the user id
    expect(text).not.toContain('mia')

    expectIdleConsumers(samples)
    expect(value(samples, 'hph_process_cpu_seconds_total')).toBeGreaterThan(0)
    await up.stop()
  })

  it('on a worker without the api: /healthz, /readyz and /metrics with its own counts; the api process counts the requests', async () => {
    const api = await start({ stages: [], api: true, prepare: false })
    const insightsBefore = (await streamState('INSIGHTS')).messages
    const res = await post(api.url, 'noa', hrvBatch('noa-1', 20, 600))
    expect(res.status).toBe(202)
    // no stage runs yet: the batch waits for normalize, and the api's gauges show it, with its age
    await new Promise((r) => setTimeout(r, 1100))
    const waiting = { stream: streamName(env.config.HPH_PREFIX, 'INGEST'), durable: 'normalize' }
    const lagging = (await scrape(api.url)).samples
    expect(value(lagging, 'hph_consumer_pending_messages', waiting)).toBe(1)
    expect(value(lagging, 'hph_consumer_ack_pending_messages', waiting)).toBe(0)
    expect(value(lagging, 'hph_consumer_lag_seconds', waiting)).toBeGreaterThanOrEqual(1)
    expect(value(lagging, 'hph_consumer_lag_seconds', waiting)).toBeLessThan(60)

    const worker = await start({ stages: STAGES, api: false, prepare: false })
    expect(worker.api).toBeUndefined()
    expect(worker.url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/)
    expect(worker.url).not.toBe(api.url)

    expect(await (await fetch(`${worker.url}/healthz`)).json()).toEqual({ status: 'ok' })
    const ready = await fetch(`${worker.url}/readyz`)
    expect(ready.status).toBe(200)
    expect(await ready.json()).toEqual({
      ready: true,
      checks: { nats: 'ok', postgres: 'ok', normalize: 'ok', 'samples-writer': 'ok', 'insights-engine': 'ok', 'insights-writer': 'ok' },
    })
    expect((await post(worker.url, 'noa', hrvBatch('noa-0', 1))).status).toBe(404)

    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 60_000 })

    // this worker's registry counts this worker's work only (the first pipeline's 30 samples are not in it)
    const { samples } = await scrape(worker.url)
    const processed = (stage: string) => value(samples, 'hph_stage_messages_processed_total', { stage })
    expect(processed('normalize')).toBe(1)
    expect(processed('samples-writer')).toBe(1)
    expect(value(samples, 'hph_stage_items_processed_total', { stage: 'samples-writer' })).toBe(20)
    expect(processed('insights-writer')).toBe((await streamState('INSIGHTS')).messages - insightsBefore)
    expect(value(samples, 'hph_stage_batch_size_sum', { stage: 'samples-writer' })).toBe(1)
    expect(value(samples, 'hph_http_request_duration_seconds_count', { method: 'GET', route: '/readyz', status_code: '200' })).toBe(1)
    expect(value(samples, 'hph_http_request_duration_seconds_count', { method: 'POST', route: 'unmatched', status_code: '404' })).toBe(1)
    expect(samples.filter((s) => s.labels.route === INGEST_ROUTE.route)).toEqual([])
    expectIdleConsumers(samples)

    // the api process runs no stage: it has the ingest request and the consumers, no stage counts
    const fromApi = (await scrape(api.url)).samples
    expect(value(fromApi, 'hph_http_request_duration_seconds_count', { ...INGEST_ROUTE, status_code: '202' })).toBe(1)
    expect(fromApi.filter((s) => s.name.startsWith('hph_stage_'))).toEqual([])
    expectIdleConsumers(fromApi)

    await worker.stop()
    await expect(fetch(`${worker.url}/healthz`)).rejects.toThrow()
  })
})
