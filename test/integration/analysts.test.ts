import { readFile } from 'node:fs/promises'
import { sql } from 'kysely'
import pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { STAGES, startPipeline, type Pipeline } from '../../pipeline/start.ts'
import { rebuildProjection } from '../../projections/rebuild.ts'
import { pgCode } from '../../schema/db.ts'
import { ANALYST_VIEWS } from '../../schema/migrations/0004_analyst_views.ts'
import { loadDocDemo } from '../helpers/demo.ts'
import { testEnv, type TestEnv } from '../helpers/env.ts'

// docs/analysts.md is a product. Every query it documents runs as hph_analyst on the demo data it
// describes and returns the rows it states — before and after `hph rebuild insights` re-creates the views;
// and hph_analyst writes nothing.

interface DocQuery {
  title: string
  sql: string
  columns: string[]
  rows: string[][]
}

/** The fenced sql blocks of the doc, each with the markdown table that follows it. */
function parseDocQueries(markdown: string): DocQuery[] {
  const found = [...markdown.matchAll(/^### (.+)\n[\s\S]*?```sql\n([\s\S]*?)```\n\n((?:\|.*\|\n?)+)/gm)]
  const cells = (line: string) =>
    line
      .trim()
      .replace(/^\||\|$/g, '')
      .split('|')
      .map((c) => c.trim())
  return found.map(([, title, text, table]) => {
    const [header, , ...rows] = table!.trim().split('\n')
    return { title: title!, sql: text!.trim(), columns: cells(header!), rows: rows.map(cells) }
  })
}

let env: TestEnv
let p: Pipeline
let analyst: pg.Client
let queries: DocQuery[]
beforeAll(async () => {
  env = await testEnv()
  p = await startPipeline(env.config, env.log, { stages: STAGES, api: true, prepare: true })
  await loadDocDemo(p)
  queries = parseDocQueries(await readFile('docs/analysts.md', 'utf8'))
  // a session as an analyst would have it: every value as PostgreSQL prints it, and the analyst's rights
  analyst = new pg.Client({ connectionString: env.config.DATABASE_URL, types: { getTypeParser: () => (v: string) => v } })
  await analyst.connect()
  await analyst.query(`set role ${env.config.HPH_ANALYST_ROLE}`)
}, 240_000)
afterAll(async () => {
  await analyst?.end()
  await p?.stop()
  await env?.cleanup()
})

async function run(q: DocQuery): Promise<{ columns: string[]; rows: string[][] }> {
  const r = await analyst.query<string[]>({ text: q.sql, rowMode: 'array' })
  return { columns: r.fields.map((f) => f.name), rows: r.rows.map((row) => row.map((v) => (v === null ? 'NULL' : String(v)))) }
}

async function expectDocumentedRows(): Promise<void> {
  expect((await analyst.query<{ r: string }>('select current_user as r')).rows[0]?.r).toBe(env.config.HPH_ANALYST_ROLE)
  for (const q of queries) {
    const got = await run(q)
    expect(got.columns, q.title).toEqual(q.columns)
    expect(got.rows, q.title).toEqual(q.rows)
  }
}

describe('docs/analysts.md', () => {
  it('documents ten queries, each with the rows it returns', () => {
    expect(queries).toHaveLength(10)
    for (const q of queries) expect(q.rows.length, q.title).toBeGreaterThan(0)
    const all = queries.map((q) => q.sql).join('\n')
    for (const v of ANALYST_VIEWS) expect(all, v.name).toContain(`hph.${v.name}`)
    expect(all).toContain('hph.bucket(')
  })

  it('every query returns, as hph_analyst on the demo data, the rows the doc states', async () => {
    await expectDocumentedRows()
  })

  it('hph.bucket runs on date_bin here and agrees with the documented weeks', async () => {
    const def = await sql<{
      src: string
    }>`select string_agg(prosrc, ' ') as src from pg_proc where proname = 'bucket' and pronamespace = ${env.config.HPH_DB_SCHEMA}::regnamespace`.execute(p.db)
    expect(def.rows[0]?.src).toContain('date_bin')
    const r = await analyst.query<{ w: string; d: string; h: string }>(`select hph.bucket('7 days', timestamptz '2026-11-01 23:59:59+00') as w,
      hph.bucket('7 days', date '2026-11-02') as d, hph.bucket('1 hour', timestamptz '2026-11-04 10:42:00+00') at time zone 'UTC' as h`)
    expect(r.rows[0]).toMatchObject({ d: '2026-11-02', h: '2026-11-04 10:00:00' })
    expect(new Date(r.rows[0]!.w).toISOString()).toBe('2026-10-26T00:00:00.000Z') // the Monday before
  })

  it('comments every view and every view column', async () => {
    for (const v of ANALYST_VIEWS) {
      const r = await sql<{ column: string; comment: string | null }>`select a.attname as column, col_description(a.attrelid, a.attnum) as comment
        from pg_attribute a where a.attrelid = ${`${env.config.HPH_DB_SCHEMA}.${v.name}`}::regclass and a.attnum > 0 order by a.attnum`.execute(p.db)
      expect(
        r.rows.map((x) => x.column),
        v.name,
      ).toEqual(Object.keys(v.columns))
      for (const c of r.rows) expect(c.comment, `${v.name}.${c.column}`).toBe(v.columns[c.column])
    }
  })

  it("takes v_hrv_trend's 7-day mean over the rows of the day's own metric, never across a change of metric", async () => {
    // the demo's users change metric (sdnn, then rmssd once the ring has been there a week): days whose 7 calendar
    // days hold rows of the other metric in the view are the ones a mean over the user's rows would mix
    const mixed = await analyst.query<{ n: string }>(`select count(*) as n from hph.v_hrv_trend t where exists (select 1 from hph.v_hrv_trend u
      where u.user_id = t.user_id and u.hrv_metric <> t.hrv_metric and u.day between t.day - 6 and t.day)`)
    expect(Number(mixed.rows[0]?.n)).toBeGreaterThan(0)
    const r = await analyst.query<{ rows: string; wrong: string }>(`select count(*) as rows,
        count(*) filter (where abs(t.ln_mean_7d - x.m) > 1e-12 or t.days_7d <> x.n or abs(t.mean_7d_ms - exp(x.m)) > 1e-9) as wrong
      from hph.v_hrv_trend t cross join lateral (select avg(d.ln_value) as m, count(*) as n from hph.hrv_daily d
        where d.user_id = t.user_id and d.metric = t.hrv_metric and d.day between t.day - 6 and t.day) x`)
    expect(Number(r.rows[0]?.rows)).toBeGreaterThan(90)
    expect(Number(r.rows[0]?.wrong)).toBe(0)
  })
})

describe('hph_analyst', () => {
  /** Runs `statement` as the analyst in a transaction rolled back whatever happens; returns its SQLSTATE. */
  async function refused(statement: string): Promise<string | undefined> {
    await analyst.query('begin')
    try {
      await analyst.query(statement)
      return undefined
    } catch (err) {
      return pgCode(err)
    } finally {
      await analyst.query('rollback')
    }
  }

  it('cannot write: insert, update, delete, truncate and create are refused for lack of privilege', async () => {
    const s = env.config.HPH_DB_SCHEMA
    const found = await sql<{ t: string; first: string }>`select c.relname as t, a.attname as first from pg_class c join pg_attribute a on a.attrelid = c.oid and a.attnum = 1
      where c.relnamespace = ${s}::regnamespace and c.relkind in ('r', 'p') order by 1`.execute(p.db)
    const tables = found.rows.map((r) => r.t)
    expect(tables).toEqual(expect.arrayContaining(['samples', 'readiness_daily', 'sleep_daily', 'hrv_daily', 'baseline_history', 'user_baselines', 'user_cpt_tables']))
    for (const { t, first } of found.rows) {
      expect(await refused(`insert into ${s}.${t} default values`), `insert ${t}`).toBe('42501')
      expect(await refused(`update ${s}.${t} set ${first} = ${first}`), `update ${t}`).toBe('42501')
      expect(await refused(`delete from ${s}.${t}`), `delete ${t}`).toBe('42501')
      expect(await refused(`truncate ${s}.${t}`), `truncate ${t}`).toBe('42501')
    }
    expect(await refused(`update ${s}.readiness_daily set score = 100`)).toBe('42501')
    expect(await refused(`create table ${s}.mine (x int)`)).toBe('42501')
    expect(await refused(`create view ${s}.mine as select 1`)).toBe('42501')
    expect(await refused(`create or replace function ${s}.bucket(width interval, ts timestamptz) returns timestamptz language sql as 'select ts'`)).toBe('42501')
    expect(await refused(`comment on view ${s}.v_readiness is 'mine'`)).toBe('42501')
    expect(await refused(`drop view ${s}.v_sleep`)).toBe('42501')
    // the views are no way around it: none of them takes a write
    for (const v of ANALYST_VIEWS) expect(await refused(`delete from ${s}.${v.name}`), v.name).toMatch(/^(42501|55000)$/)
    const rows = await sql<{ n: number }>`select count(*)::int as n from readiness_daily`.execute(p.db)
    expect(rows.rows[0]?.n).toBeGreaterThan(90)
  })

  it('still reads the views, with their grants and comments, and the same rows after `hph rebuild insights`', async () => {
    const result = await rebuildProjection({
      nats: env.nats,
      db: p.db,
      pool: p.pool,
      prefix: env.config.HPH_PREFIX,
      schema: env.config.HPH_DB_SCHEMA,
      log: env.log,
      projection: 'insights',
    })
    expect(result).toMatchObject({ projection: 'insights' })
    const views = await sql<{
      name: string
      ok: boolean
      comment: string | null
    }>`select c.relname as name, has_table_privilege(${env.config.HPH_ANALYST_ROLE}, c.oid, 'select') as ok,
      obj_description(c.oid, 'pg_class') as comment from pg_class c where c.relnamespace = ${env.config.HPH_DB_SCHEMA}::regnamespace and c.relkind = 'v' order by 1`.execute(p.db)
    expect(views.rows).toEqual(ANALYST_VIEWS.map((v) => ({ name: v.name, ok: true, comment: v.comment })).sort((a, b) => a.name.localeCompare(b.name)))
    const columnComments = await sql<{ n: number }>`select count(*)::int as n from pg_attribute a join pg_class c on c.oid = a.attrelid
      where c.relnamespace = ${env.config.HPH_DB_SCHEMA}::regnamespace and c.relkind = 'v' and col_description(c.oid, a.attnum) is not null`.execute(p.db)
    expect(columnComments.rows[0]?.n).toBe(ANALYST_VIEWS.reduce((n, v) => n + Object.keys(v.columns).length, 0))
    await expectDocumentedRows()
  })
})
