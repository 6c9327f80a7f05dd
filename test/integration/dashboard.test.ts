import { mkdir } from 'node:fs/promises'
import { join } from 'node:path'
import { sql } from 'kysely'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STAGES, startPipeline, type Pipeline } from '../../pipeline/start.ts'
import type { CptProbabilities } from '../../schema/db.ts'
import { streamName } from '../../streams/subjects.ts'
import { loadDocDemo } from '../helpers/demo.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/operating.md §10: the dashboard in headless Chromium (Debian's, driven by playwright-core; no browser download)
// on the demo data: the charts draw one bar or point per row of the database, with the same tokens as the API.

const ADMIN = 'dash-admin-token'
const ANA = 'dash-ana-token'
const OUT = join('test-output', 'dashboard')
const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
]

/** What the page's functions reach in the browser (this project compiles without the DOM library). */
interface InPage {
  Chart: {
    getChart(id: string):
      | {
          data: { datasets: Array<{ label: string; backgroundColor: unknown; fill?: unknown; type?: string; pointStyle?: unknown }> }
          getDatasetMeta(i: number): { data: unknown[] }
        }
      | undefined
  }
  sessionStorage: { getItem(key: string): string | null }
  location: { hash: string }
  document: { getElementById(id: string): { dataset: Record<string, string | undefined>; textContent: string | null } | null }
}

let env: TestEnv
let p: Pipeline
let browser: Browser
beforeAll(async () => {
  env = await testEnv({ HPH_API_KEYS: `${ADMIN}:admin,${ANA}:user:ana` })
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
  await loadDocDemo(p, ADMIN)
  browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS })
  await mkdir(OUT, { recursive: true })
}, 240_000)
afterAll(async () => {
  await browser?.close()
  await p?.stop()
  await env?.cleanup()
})

/** A fresh tab (its own sessionStorage) that records the requests it makes. */
async function tab(path: string): Promise<{ page: Page; requests: Array<{ url: string; status: number; authorization: string | undefined }>; errors: string[] }> {
  const context = await browser.newContext({ viewport: { width: 1280, height: 1400 } })
  const page = await context.newPage()
  const requests: Array<{ url: string; status: number; authorization: string | undefined }> = []
  const errors: string[] = []
  page.on('response', (r) => requests.push({ url: r.url(), status: r.status(), authorization: r.request().headers().authorization }))
  page.on('pageerror', (e) => errors.push(e.message))
  await page.goto(`${p.url}${path}`)
  return { page, requests, errors }
}

async function signIn(page: Page, token: string): Promise<void> {
  await page.locator('#token-form').waitFor({ state: 'visible' })
  await page.fill('#token', token)
  await page.click('#token-form button[type=submit]')
  await page.waitForSelector('body[data-ready="true"]')
}

const count = async (query: ReturnType<typeof sql<{ n: number }>>) => (await query.execute(p.db)).rows[0]?.n ?? -1

describe('the dashboard', () => {
  it('is served by the api itself, with its charting library, and asks no token for its files', async () => {
    const index = await fetch(`${p.url}/`)
    expect(index.status).toBe(200)
    expect(index.headers.get('content-type')).toMatch(/^text\/html/)
    const html = await index.text()
    expect(html).toContain('<script src="/vendor/chart.umd.min.js"></script>')
    expect(html).not.toMatch(/https?:\/\//) // nothing from elsewhere
    const chart = await fetch(`${p.url}/vendor/chart.umd.min.js`)
    expect(chart.status).toBe(200)
    expect(chart.headers.get('content-type')).toMatch(/javascript/)
    expect(await chart.text()).toMatch(/Chart\.js v4/)
    for (const file of ['/app.js', '/style.css']) expect((await fetch(`${p.url}${file}`)).status, file).toBe(200)
    expect((await fetch(`${p.url}/vendor/chart.js`)).status).toBe(404) // only the one file of the package
    const unknown = await fetch(`${p.url}/nothing-here`)
    expect(unknown.status).toBe(404)
    expect(await unknown.json()).toMatchObject({ error: 'not_found' })
  })

  it("draws a user's last 90 days: a bar per readiness day coloured by label, a point per HRV night with its bands, stacked stages per night", async () => {
    const { page, requests, errors } = await tab('/#/user/ana')
    await signIn(page, ANA)
    await page.waitForFunction(() => (globalThis as unknown as InPage).Chart.getChart('sleep-chart') !== undefined)

    // the window: the 90 days ending with ana's latest day of data
    const latest = (
      await sql<{ day: string }>`select greatest((select max(day) from sleep_daily where user_id = 'ana'), (select max(day) from hrv_daily where user_id = 'ana'),
      (select max(day) from readiness_daily where user_id = 'ana'))::date::text as day`.execute(p.db)
    ).rows[0]!.day
    const inWindow = sql`day between ${latest}::date - 89 and ${latest}::date`
    const readinessDays = await count(sql<{ n: number }>`select count(*)::int as n from readiness_daily where user_id = 'ana' and ${inWindow}`)
    // a point per day with an HRV row of that day's own metric (its baseline_history row says which)
    const hrvNights = await count(
      sql<{
        n: number
      }>`select count(*)::int as n from hrv_daily h join baseline_history b using (user_id, day) where h.user_id = 'ana' and h.metric = b.hrv_metric and ${inWindow}`,
    )
    const sleepNights = await count(sql<{ n: number }>`select count(*)::int as n from sleep_daily where user_id = 'ana' and ${inWindow}`)
    const labels = (await sql<{ label: string; n: number }>`select label, count(*)::int as n from readiness_daily where user_id = 'ana' and ${inWindow} group by 1`.execute(p.db))
      .rows
    expect(readinessDays).toBeGreaterThan(60)

    const drawn = await page.evaluate(() => {
      const { Chart } = globalThis as unknown as InPage
      const meta = (id: string) => {
        const c = Chart.getChart(id)!
        return c.data.datasets.map((d, i) => ({ label: d.label, type: d.type, fill: d.fill, colours: d.backgroundColor, elements: c.getDatasetMeta(i).data.length }))
      }
      return { readiness: meta('readiness-chart'), hrv: meta('hrv-chart'), sleep: meta('sleep-chart') }
    })
    expect(drawn.readiness).toHaveLength(1)
    expect(drawn.readiness[0]!.elements).toBe(readinessDays)
    const colourOf: Record<string, string> = { high: '#2e9e5b', medium: '#e0a526', low: '#d1453b' }
    const colours = drawn.readiness[0]!.colours as string[]
    for (const { label, n } of labels) expect(colours.filter((c) => c === colourOf[label]).length, label).toBe(n)

    expect(drawn.hrv.map((d) => d.label)).toEqual(['nightly HRV', '7-day mean', 'baseline', 'good band (from)', 'medium band (from)'])
    for (const d of drawn.hrv) expect(d.elements, d.label).toBe(hrvNights)
    expect(drawn.hrv.map((d) => d.fill)).toEqual([undefined, undefined, undefined, 'end', '-1']) // the good band above its threshold, the medium band down to its own
    // where ana's metric changes (her ring's RMSSD takes over from the watch's SDNN once it has a week): marked
    const points = (
      await sql<{ day: string; metric: string }>`select h.day::text as day, h.metric from hrv_daily h join baseline_history b using (user_id, day)
      where h.user_id = 'ana' and h.metric = b.hrv_metric and ${inWindow} order by h.day`.execute(p.db)
    ).rows
    const switches = points.filter((r, i) => i > 0 && r.metric !== points[i - 1]!.metric).map((r) => `${r.day}:${r.metric}`)
    expect(switches.length).toBeGreaterThan(0)
    expect(await page.evaluate(() => (globalThis as unknown as InPage).document.getElementById('hrv-metric')!.dataset.changes)).toBe(switches.join(' '))
    expect(await page.evaluate(() => (globalThis as unknown as InPage).document.getElementById('hrv-metric')!.textContent)).toMatch(/^sdnn → rmssd from .+, ms$/)
    const styles = await page.evaluate(() => (globalThis as unknown as InPage).Chart.getChart('hrv-chart')!.data.datasets[0]!.pointStyle as string[])
    expect(styles.filter((x) => x === 'triangle')).toHaveLength(switches.length)

    expect(drawn.sleep.map((d) => d.label)).toEqual(['deep', 'core', 'rem', 'asleep (no stage)', 'awake', 'sleep baseline'])
    for (const d of drawn.sleep) expect(d.elements, d.label).toBe(sleepNights)
    expect(drawn.sleep.at(-1)!.type).toBe('line')

    // asked without a token first (401), then with the one typed in
    const trends = requests.filter((r) => r.url.includes('/v1/users/ana/trends'))
    expect(trends.map((r) => [r.status, r.authorization])).toEqual([
      [401, undefined],
      [200, `Bearer ${ANA}`],
    ])
    expect(await page.evaluate(() => (globalThis as unknown as InPage).sessionStorage.getItem('hph.token'))).toBe(ANA)
    expect(errors).toEqual([])
    await page.screenshot({ path: join(OUT, 'user-ana.png'), fullPage: true })
    await page.context().close()
  })

  it('shows the current CPT as a 3 × 3 heat map of the scores it gives', async () => {
    const { page, errors } = await tab('/#/cpt/ana')
    await signIn(page, ANA)
    await page.locator('#cpt-heatmap td').first().waitFor()
    const cells = await page.$$eval('#cpt-heatmap td', (tds) => tds.map((td) => ({ title: td.getAttribute('title'), score: Number(td.getAttribute('data-score')) })))
    const cpt = (await sql<{ cpt_probabilities: CptProbabilities }>`select cpt_probabilities from user_cpt_tables where user_id = 'ana'`.execute(p.db)).rows[0]!.cpt_probabilities
    const expected = ['good', 'medium', 'poor'].flatMap((sleep) =>
      ['good', 'medium', 'poor'].map((hrv) => {
        const [h, m] = cpt.table[`${sleep}|${hrv}`] as number[]
        return { title: `sleep ${sleep}, HRV ${hrv}`, score: Math.floor(100 * (h! + 0.5 * m!) + 0.5) }
      }),
    )
    expect(cells).toEqual(expected)
    expect(errors).toEqual([])
    await page.screenshot({ path: join(OUT, 'cpt-ana.png'), fullPage: true })
    await page.context().close()
  })

  it("keeps a user token to its own user: another user's page and the operator page are refused", async () => {
    const { page } = await tab('/#/user/ben')
    await signIn(page, ANA)
    await expect.poll(() => page.textContent('#message')).toContain('this token may not access that user')
    await page.evaluate(() => {
      ;(globalThis as unknown as InPage).location.hash = '#/ops'
    })
    await expect.poll(() => page.textContent('#message')).toContain('only an admin token')
    await page.context().close()
  })

  it('shows operators the streams, consumer lag, DLQ depth and stage throughput, refreshing by itself', async () => {
    const { page, errors } = await tab('/?refresh=1#/ops')
    await signIn(page, ADMIN)
    await page.waitForFunction(() => Number((globalThis as unknown as InPage).document.getElementById('page-ops')?.dataset.refreshes ?? 0) >= 3, undefined, { timeout: 20_000 })
    const consumers = await page.$$eval('#ops-consumers tr', (trs) => trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    expect(consumers.map((c) => c[0])).toEqual(STAGES)
    for (const c of consumers) {
      expect(c[5], `lag of ${c[0]}`).toBe('0') // the demo has settled
      expect(c[7], `throughput of ${c[0]}`).toMatch(/^\d+(\.\d+)?$/)
    }
    // rows and rows/s of the output tables beside the messages: samples first, every insight table after
    const tables = await page.$$eval('#ops-tables tr', (trs) => trs.slice(1).map((tr) => [...tr.querySelectorAll('td')].map((td) => td.textContent)))
    expect(tables.map((t) => t[0])).toEqual(['samples', 'hrv_daily', 'sleep_daily', 'baseline_history', 'readiness_daily', 'user_baselines', 'user_cpt_tables'])
    for (const t of tables) expect(t[2], `rows/s of ${t[0]}`).toMatch(/^\d+(\.\d+)?$/)
    const streams = await page.$$eval('#ops-streams tr', (trs) => trs.slice(1).map((tr) => tr.querySelector('td')?.textContent))
    expect(streams).toContain(streamName(env.config.HPH_PREFIX, 'INGEST'))
    const dlq = (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'DLQ'))).state.messages
    expect(dlq).toBe(1) // the demo's batch with a rejected sample
    expect(await page.textContent('#ops-dlq')).toBe(String(dlq))
    const samples = (await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'SAMPLES'))).state.messages
    const row = await page.$$eval(
      '#ops-streams tr',
      (trs, name) => [...trs].find((tr) => tr.querySelector('td')?.textContent === name)?.querySelectorAll('td')[1]?.textContent,
      streamName(env.config.HPH_PREFIX, 'SAMPLES'),
    )
    expect(row).toBe(String(samples))
    const lines = await page.evaluate(() => (globalThis as unknown as InPage).Chart.getChart('throughput-chart')?.data.datasets.length)
    expect(lines).toBe(STAGES.length)
    expect(errors).toEqual([])
    await page.screenshot({ path: join(OUT, 'ops.png'), fullPage: true })
    await page.context().close()
  })

  it('serves the operator figures as JSON to an admin only', async () => {
    expect((await fetch(`${p.url}/v1/ops/status`)).status).toBe(401)
    expect((await fetch(`${p.url}/v1/ops/status`, { headers: { authorization: `Bearer ${ANA}` } })).status).toBe(403)
    const res = await fetch(`${p.url}/v1/ops/status`, { headers: { authorization: `Bearer ${ADMIN}` } })
    expect(res.status).toBe(200)
    const s = (await res.json()) as { at: string; nats: { reachable: boolean }; consumers: Array<{ stage: string }>; dlq: { depth: number }; database: { reachable: boolean } }
    expect(Date.parse(s.at)).toBeGreaterThan(Date.now() - 60_000)
    expect(s).toMatchObject({ nats: { reachable: true }, database: { reachable: true }, dlq: { depth: 1 } })
    expect(s.consumers.map((c) => c.stage)).toEqual(STAGES)
    expect((await fetch(`${p.url}/v1/users`, { headers: { authorization: `Bearer ${ANA}` } })).status).toBe(403)
    expect(await (await fetch(`${p.url}/v1/users`, { headers: { authorization: `Bearer ${ADMIN}` } })).json()).toEqual([
      { userId: 'ana', asOfDay: expect.any(String) },
      { userId: 'ben', asOfDay: expect.any(String) },
    ])
    const bad = await fetch(`${p.url}/v1/users/ana/trends?days=0`, { headers: { authorization: `Bearer ${ADMIN}` } })
    expect(bad.status).toBe(400)
    expect((await fetch(`${p.url}/v1/users/nobody/trends`, { headers: { authorization: `Bearer ${ADMIN}` } })).status).toBe(404)
  })
})
