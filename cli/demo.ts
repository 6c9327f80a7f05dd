import { sql } from 'kysely'
import type { CommandContext } from './context.ts'
import { untilSignal } from './signal.ts'
import { demoBatches, type DemoBatch } from './demo-data.ts'
import { STAGES, startPipeline, waitForIdle, type Pipeline } from '../pipeline/start.ts'

/**
 * The demo data set, every night over before `today`: ana has 75 nights from an Apple Watch (with the
 * iPhone's in-bed samples) and a ring, so she has a personal baseline and readiness; ben has three weeks
 * from one watch that also sends heartbeat series (RMSSD derived from beats next to its SDNN; a blended
 * baseline) and one batch with a rejected and an ignored sample.
 */
export function demoDataSet(today = new Date()): Array<{ userId: string; batches: DemoBatch[] }> {
  const since = (nights: number) => new Date(today.getTime() - (nights + 2) * 86_400_000).toISOString().slice(0, 10)
  const ana = demoBatches({ userId: 'ana', nights: 75, firstNight: since(75), offsetMin: -480, seed: 1, ring: true })
  const first = since(21)
  const ben = demoBatches({ userId: 'ben', nights: 21, firstNight: first, offsetMin: 60, seed: 2, beats: true })
  ben.push({
    batchId: 'demo-ben-bad',
    source: { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' },
    samples: [
      { type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 900, unit: 'ms', startDate: `${first}T03:00:00+01:00`, endDate: `${first}T03:01:00+01:00` },
      { type: 'HKQuantityTypeIdentifierStepCount', value: 1200, unit: 'count', startDate: `${first}T09:00:00+01:00`, endDate: `${first}T10:00:00+01:00` },
    ],
  })
  return [
    { userId: 'ana', batches: ana },
    { userId: 'ben', batches: ben },
  ]
}

export interface DemoLoad {
  accepted: number
  rejected: number
  ignored: number
  /** rows of the demo users in `samples` */
  rows: number
  /** from the first post until every stage was idle */
  ms: number
}

/**
 * Posts the demo data set (as of `today`) to a running pipeline over HTTP, then waits until every
 * accepted sample is a row and every stage is idle: the insights are settled when it resolves.
 */
export async function loadDemo(p: Pick<Pipeline, 'url' | 'db' | 'nats' | 'config'>, opts: { today?: Date; token?: string } = {}): Promise<DemoLoad> {
  const headers = { 'content-type': 'application/json', ...(opts.token ? { authorization: `Bearer ${opts.token}` } : {}) }
  const t0 = Date.now()
  let accepted = 0
  let rejected = 0
  let ignored = 0
  const dataSet = demoDataSet(opts.today)
  for (const { userId, batches } of dataSet) {
    for (const b of batches) {
      const res = await fetch(`${p.url}/v1/users/${userId}/samples`, { method: 'POST', headers, body: JSON.stringify(b) })
      const body = (await res.json()) as { accepted?: number; rejected?: unknown[]; ignored?: number; message?: string }
      if (res.status >= 300) throw new Error(`POST ${userId} batch ${b.batchId}: ${res.status} ${body.message ?? ''}`)
      accepted += body.accepted ?? 0
      rejected += body.rejected?.length ?? 0
      ignored += body.ignored ?? 0
    }
  }
  // the pipeline is asynchronous: wait until every accepted sample is a row and every stage is idle
  const users = dataSet.map((u) => u.userId)
  let rows = 0
  const posted = Date.now()
  while (Date.now() - posted < 60_000) {
    rows = (await sql<{ n: number }>`select count(*)::int as n from samples where user_id = any(${users})`.execute(p.db)).rows[0]?.n ?? 0
    if (rows >= accepted) break
    await new Promise((res) => setTimeout(res, 200))
  }
  if (rows < accepted) throw new Error(`only ${rows} of ${accepted} samples reached the table within 60 s`)
  await waitForIdle(p.nats, p.config.HPH_PREFIX, { timeoutMs: 120_000 })
  return { accepted, rejected, ignored, rows, ms: Date.now() - t0 }
}

/** `hph demo`: the whole pipeline with demo data posted to it over HTTP. */
export async function runDemo({ config, log, logFormat, flags }: CommandContext): Promise<number> {
  const p = await startPipeline(config, log, { stages: STAGES, api: true, prepare: true, requestLogs: logFormat === 'pretty' ? 'debug' : 'info' })
  let loaded: DemoLoad
  try {
    loaded = await loadDemo(p, p.adminKey ? { token: p.adminKey } : {})
  } catch (err) {
    await p.stop()
    throw err
  }
  const { accepted, rejected, ignored, rows } = loaded
  log.info({ accepted, rejected, ignored }, 'demo data posted')
  const users = demoDataSet().map((u) => u.userId)
  process.stdout.write(`\nposted ${accepted} samples (${rejected} rejected, ${ignored} ignored); ${rows} rows in table samples; insights settled after ${loaded.ms} ms\n`)
  const perTable = await sql<{ user_id: string; samples: number; sleep_daily: number; hrv_daily: number; readiness_daily: number }>`
    select u.user_id,
      (select count(*)::int from samples s where s.user_id = u.user_id) as samples,
      (select count(*)::int from sleep_daily s where s.user_id = u.user_id) as sleep_daily,
      (select count(*)::int from hrv_daily s where s.user_id = u.user_id) as hrv_daily,
      (select count(*)::int from readiness_daily s where s.user_id = u.user_id) as readiness_daily
    from unnest(${users}::text[]) as u(user_id) order by 1`.execute(p.db)
  console.table(perTable.rows)
  const baselines = await sql<Record<string, unknown>>`
    select user_id, as_of_day, hrv_metric, round(hrv_baseline_sdnn::numeric, 1) as hrv_ms, hrv_days,
      round(sleep_baseline_hours::numeric, 2) as sleep_h, sleep_days, baseline_source, round(data_quality_score::numeric, 3) as quality
    from user_baselines where user_id = any(${users}) order by 1`.execute(p.db)
  process.stdout.write('\nuser_baselines\n')
  console.table(baselines.rows)
  const week = await sql<Record<string, unknown>>`
    select r.day, r.score, r.label, r.sleep_state, r.hrv_state, round((s.total_sleep_min / 60)::numeric, 2) as sleep_h, round(h.value_ms::numeric, 1) as sdnn_ms
    from readiness_daily r left join sleep_daily s using (user_id, day) left join hrv_daily h on h.user_id = r.user_id and h.day = r.day and h.metric = 'sdnn'
    where r.user_id = 'ana' order by r.day desc limit 7`.execute(p.db)
  process.stdout.write('\nana: readiness of the last 7 days\n')
  console.table(week.rows)
  if (flags.exit) {
    await p.stop()
    return 0
  }
  process.stdout.write(
    `\nthe pipeline keeps running at ${p.url}; open ${p.url}/ for the dashboard, or try:\n  curl -s '${p.url}/v1/users/ana/readiness?from=${demoDataSet()[0]?.batches[0]?.samples[0]?.startDate.slice(0, 10)}&to=${new Date().toISOString().slice(0, 10)}'\n  curl -s ${p.url}/v1/users/ana/baseline\n  psql ${config.DATABASE_URL} -c 'select * from ${config.HPH_DB_SCHEMA}.samples limit 5'\nCtrl-C stops it.\n`,
  )
  await untilSignal(log)
  await p.stop()
  return 0
}
