import { sql } from 'kysely'
import { parseApiKeys } from '../api/auth.ts'
import type { CommandContext } from './commands.ts'
import { untilSignal } from './commands.ts'
import { demoBatches, type DemoBatch } from './demo-data.ts'
import { STAGES, startPipeline } from './pipeline.ts'

/** The demo data set: two users, a few weeks of nights, and one batch with a rejected sample. */
export function demoDataSet(today = new Date()): Array<{ userId: string; batches: DemoBatch[] }> {
  const first = new Date(today.getTime() - 28 * 86_400_000).toISOString().slice(0, 10)
  const ana = demoBatches({ userId: 'ana', nights: 28, firstNight: first, offsetMin: -480, seed: 1 })
  const ben = demoBatches({ userId: 'ben', nights: 21, firstNight: first, offsetMin: 60, seed: 2 })
  ben.push({
    batchId: 'demo-ben-bad', source: { name: 'Apple Watch', bundleId: 'com.apple.health.5C8D', device: 'Watch6,2' },
    samples: [
      { type: 'HKQuantityTypeIdentifierHeartRateVariabilitySDNN', value: 900, unit: 'ms', startDate: `${first}T03:00:00+01:00`, endDate: `${first}T03:01:00+01:00` },
      { type: 'HKQuantityTypeIdentifierStepCount', value: 1200, unit: 'count', startDate: `${first}T09:00:00+01:00`, endDate: `${first}T10:00:00+01:00` },
    ],
  })
  return [{ userId: 'ana', batches: ana }, { userId: 'ben', batches: ben }]
}

/** `hph demo`: the whole pipeline with demo data posted to it over HTTP. */
export async function runDemo({ config, log, flags }: CommandContext): Promise<number> {
  const p = await startPipeline(config, log, { stages: STAGES, api: true, prepare: true })
  const admin = [...parseApiKeys(config.HPH_API_KEYS)].find(([, pr]) => pr.kind === 'admin')?.[0]
  const headers = { 'content-type': 'application/json', ...(admin ? { authorization: `Bearer ${admin}` } : {}) }
  let accepted = 0
  let rejected = 0
  let ignored = 0
  for (const { userId, batches } of demoDataSet()) {
    for (const b of batches) {
      const res = await fetch(`${p.url}/v1/users/${userId}/samples`, { method: 'POST', headers, body: JSON.stringify(b) })
      const body = (await res.json()) as { accepted?: number; rejected?: unknown[]; ignored?: number; message?: string }
      if (res.status >= 300) throw new Error(`POST ${userId} batch ${b.batchId}: ${res.status} ${body.message ?? ''}`)
      accepted += body.accepted ?? 0
      rejected += body.rejected?.length ?? 0
      ignored += body.ignored ?? 0
    }
  }
  log.info({ accepted, rejected, ignored }, 'demo data posted')

  // wait until every accepted sample is a row (the pipeline is asynchronous)
  const t0 = Date.now()
  let rows = 0
  while (Date.now() - t0 < 60_000) {
    const r = await sql<{ n: number }>`select count(*)::int as n from samples where user_id in ('ana', 'ben')`.execute(p.db)
    rows = r.rows[0]?.n ?? 0
    if (rows >= accepted) break
    await new Promise((res) => setTimeout(res, 200))
  }
  const perUser = await sql<{ user_id: string; metric: string; n: number }>`
    select user_id, metric, count(*)::int as n from samples where user_id in ('ana', 'ben') group by 1, 2 order by 1, 2`.execute(p.db)
  process.stdout.write(`\nposted ${accepted} samples (${rejected} rejected, ${ignored} ignored); ${rows} rows in table samples after ${Date.now() - t0} ms\n`)
  console.table(perUser.rows)
  if (rows < accepted) {
    await p.stop()
    throw new Error(`only ${rows} of ${accepted} samples reached the table within 60 s`)
  }
  if (flags.exit) {
    await p.stop()
    return 0
  }
  process.stdout.write(`\nthe pipeline keeps running at ${p.url}; try:\n  curl -s ${p.url}/readyz\n  psql ${config.DATABASE_URL} -c 'select * from ${config.HPH_DB_SCHEMA}.samples limit 5'\nCtrl-C stops it.\n`)
  await untilSignal(log)
  await p.stop()
  return 0
}
