import { randomUUID } from 'node:crypto'
import { Migrator, sql, type Kysely } from 'kysely'
import type pg from 'pg'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { createDb, pgCode, type Database } from '../../schema/db.ts'
import { migrateToLatest, migrations, migrationVersion } from '../../schema/migrate.ts'
import { ensurePartitions, partitionName } from '../../schema/partitions.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'
import { ANALYST_VIEWS } from '../../schema/migrations/0004_analyst_views.ts'

// docs/tables.md §2–§4, written out by hand: table → column → information_schema data_type, and the key
const TS = 'timestamp with time zone'
const F = 'double precision'
// data_count is ours (docs/tables.md §1: columns may be added): the tie-break of equal data versions
const insight = { data_version: 'bigint', data_count: 'bigint', updated_at: TS }
const baseline = {
  hrv_metric: 'text',
  hrv_baseline_sdnn: F,
  hrv_ln_mean: F,
  hrv_ln_sd: F,
  hrv_days: 'integer',
  sleep_baseline_hours: F,
  sleep_sd_hours: F,
  sleep_days: 'integer',
  baseline_source: 'text',
  data_quality_score: F,
}
const CONTRACT: Record<string, { key: string[]; columns: Record<string, string> }> = {
  samples: {
    key: ['sample_id', 'start_ts'],
    columns: {
      sample_id: 'uuid',
      user_id: 'text',
      metric: 'text',
      start_ts: TS,
      end_ts: TS,
      utc_offset_min: 'smallint',
      value: F,
      stage: 'text',
      source_name: 'text',
      source_bundle: 'text',
      device: 'text',
      external_id: 'text',
      ingest_id: 'text',
      stream_seq: 'bigint',
      inserted_at: TS,
    },
  },
  hrv_daily: {
    key: ['user_id', 'day', 'metric'],
    columns: { user_id: 'text', day: 'date', metric: 'text', value_ms: F, ln_value: F, n: 'integer', min_ms: F, max_ms: F, basis: 'text', ...insight },
  },
  sleep_daily: {
    key: ['user_id', 'day'],
    columns: {
      user_id: 'text',
      day: 'date',
      total_sleep_min: F,
      in_bed_min: F,
      deep_min: F,
      rem_min: F,
      core_min: F,
      asleep_unspecified_min: F,
      awake_min: F,
      nap_min: F,
      efficiency: F,
      episode_start: TS,
      episode_end: TS,
      sleep_onset: TS,
      wake_time: TS,
      valid: 'boolean',
      ...insight,
    },
  },
  baseline_history: { key: ['user_id', 'day'], columns: { user_id: 'text', day: 'date', ...baseline, ...insight } },
  user_baselines: {
    key: ['user_id'],
    columns: { user_id: 'text', as_of_day: 'date', ...baseline, created_at: TS, last_incremental_update: TS, last_full_update: TS, ...insight },
  },
  user_cpt_tables: {
    key: ['user_id'],
    columns: {
      user_id: 'text',
      as_of_day: 'date',
      sleep_good_threshold: F,
      sleep_medium_threshold: F,
      hrv_good_threshold: F,
      hrv_medium_threshold: F,
      cpt_probabilities: 'jsonb',
      created_at: TS,
      ...insight,
    },
  },
  readiness_daily: {
    key: ['user_id', 'day'],
    columns: { user_id: 'text', day: 'date', score: 'integer', label: 'text', p_high: F, p_medium: F, p_low: F, sleep_state: 'text', hrv_state: 'text', ...insight },
  },
  projection_checkpoints: { key: ['projection'], columns: { projection: 'text', stream: 'text', last_seq: 'bigint', updated_at: TS } },
}

let database: TestDatabase
let db: Kysely<Database>
let pool: pg.Pool
const others: Kysely<Database>[] = []

beforeAll(async () => {
  database = await createTestDatabase()
  ;({ db, pool } = createDb(database.config, { max: 4 }))
})
afterAll(async () => {
  for (const o of others) await o.destroy()
  await db?.destroy()
  await database?.drop()
})

const partitionsOfSamples = async () =>
  (
    await sql<{ name: string }>`select c.relname as name from pg_inherits i join pg_class c on c.oid = i.inhrelid
      where i.inhparent = 'hph.samples'::regclass order by 1`.execute(db)
  ).rows.map((r) => r.name)

function sampleRow(start: string) {
  return {
    sample_id: randomUUID(),
    user_id: 'u1',
    metric: 'hrv_sdnn',
    start_ts: start,
    end_ts: start,
    utc_offset_min: 60,
    value: 42.5,
    stage: null,
    source_name: 'Watch',
    source_bundle: null,
    device: null,
    external_id: null,
    ingest_id: 'i1',
    stream_seq: 7,
  }
}

/** Runs `work` as the analyst role, inside a transaction that is always rolled back. */
async function asAnalyst(work: (trx: Kysely<Database>) => Promise<unknown>): Promise<void> {
  const rollback = new Error('rollback')
  await expect(
    db.transaction().execute(async (trx) => {
      await sql`set local role ${sql.id(database.config.HPH_ANALYST_ROLE)}`.execute(trx)
      await work(trx)
      throw rollback
    }),
  ).rejects.toBe(rollback)
}

async function deniedToAnalyst(statement: (trx: Kysely<Database>) => Promise<unknown>): Promise<void> {
  const err = await db
    .transaction()
    .execute(async (trx) => {
      await sql`set local role ${sql.id(database.config.HPH_ANALYST_ROLE)}`.execute(trx)
      await statement(trx)
    })
    .then(
      () => undefined,
      (e: unknown) => e,
    )
  expect(pgCode(err), String(err)).toBe('42501')
}

describe('schema migrations', () => {
  it('migrates once, and a second run applies nothing', async () => {
    expect(await migrationVersion(db)).toBeUndefined()
    const all = Object.keys(migrations(database.config))
    expect(await migrateToLatest(db, database.config)).toEqual(all)
    expect(await migrateToLatest(db, database.config)).toEqual([])
    expect(await migrationVersion(db)).toBe(all.at(-1))
    expect(await migrationVersion(db, 'hph')).toBe(all.at(-1))
    const where = await sql<{ schema: string }>`select table_schema as schema from information_schema.tables where table_name = 'kysely_migration'`.execute(db)
    expect(where.rows).toEqual([{ schema: 'hph' }])
  })

  it("upgrades a database migrated before 0005: v_hrv_trend's definition and comments are replaced", async () => {
    const older = await createTestDatabase()
    const { db: odb } = createDb(older.config, { max: 1 })
    try {
      const before = Object.fromEntries(Object.entries(migrations(older.config)).filter(([name]) => name < '0005'))
      const m = new Migrator({ db: odb, provider: { getMigrations: async () => before }, migrationTableSchema: 'hph' })
      expect((await m.migrateToLatest()).error).toBeUndefined()
      // what 0004 gave a database then: the view stands for the old one, its comments the old ones
      await sql`comment on column hph.v_hrv_trend.ln_mean_7d is 'old'`.execute(odb)
      expect(await migrateToLatest(odb, older.config)).toEqual(['0005_hrv_trend_per_metric'])
      const r = await sql<{ comment: string }>`select col_description('hph.v_hrv_trend'::regclass, a.attnum) as comment
        from pg_attribute a where a.attrelid = 'hph.v_hrv_trend'::regclass and a.attname = 'ln_mean_7d'`.execute(odb)
      expect(r.rows[0]?.comment).toBe(ANALYST_VIEWS.find((v) => v.name === 'v_hrv_trend')?.columns.ln_mean_7d)
      const def = await sql<{ def: string }>`select pg_get_viewdef('hph.v_hrv_trend'::regclass) as def`.execute(odb)
      expect(def.rows[0]?.def).toMatch(/PARTITION BY d\.user_id, d\.metric/)
    } finally {
      await odb.destroy()
      await older.drop()
    }
  })

  it('has every table and column of docs/tables.md with its type and key', async () => {
    const cols = await sql<{ table: string; column: string; type: string }>`
      select table_name as table, column_name as column, data_type as type from information_schema.columns
      where table_schema = 'hph'`.execute(db)
    const keys = await sql<{ table: string; column: string }>`
      select k.table_name as table, k.column_name as column from information_schema.table_constraints c
      join information_schema.key_column_usage k using (constraint_schema, constraint_name)
      where c.table_schema = 'hph' and c.constraint_type = 'PRIMARY KEY' order by k.table_name, k.ordinal_position`.execute(db)
    for (const [table, spec] of Object.entries(CONTRACT)) {
      const actual = Object.fromEntries(cols.rows.filter((r) => r.table === table).map((r) => [r.column, r.type]))
      expect(actual, table).toEqual(spec.columns)
      expect(
        keys.rows.filter((r) => r.table === table).map((r) => r.column),
        table,
      ).toEqual(spec.key)
    }
  })

  it('indexes samples by (user_id, start_ts)', async () => {
    const r = await sql<{ def: string }>`select indexdef as def from pg_indexes where schemaname = 'hph' and tablename = 'samples'`.execute(db)
    expect(r.rows.map((x) => x.def).join('\n')).toMatch(/\(user_id, start_ts\)/)
  })

  it('reads bigint as a number and date as YYYY-MM-DD', async () => {
    await db
      .insertInto('hrv_daily')
      .values({ user_id: 'u1', day: '2026-01-02', metric: 'sdnn', value_ms: 50, ln_value: Math.log(50), n: 3, min_ms: 40, max_ms: 60, basis: 'sleep', data_version: 12 })
      .execute()
    const row = await db.selectFrom('hrv_daily').selectAll().executeTakeFirstOrThrow()
    expect(row.day).toBe('2026-01-02')
    expect(row.data_version).toBe(12)
    expect(row.updated_at).toBeInstanceOf(Date)
  })
})

describe('samples partitions', () => {
  it('has the monthly partitions of last month through two months ahead', async () => {
    const now = new Date()
    const expected = [-1, 0, 1, 2].map((k) => partitionName(new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + k, 1))))
    expect(await partitionsOfSamples()).toEqual(expect.arrayContaining(expected))
  })

  it('creates a missing month on demand, once, and takes rows into it', async () => {
    expect(await ensurePartitions(db, 'hph', ['2019-03-10T06:00:00Z', '2019-03-31T23:59:59Z'])).toEqual(['samples_p201903'])
    expect(await ensurePartitions(db, 'hph', [new Date('2019-03-20T00:00:00Z')])).toEqual([])
    await db.insertInto('samples').values(sampleRow('2019-03-10T06:00:00Z')).execute()
    const r = await sql<{ part: string; n: number }>`select tableoid::regclass::text as part, stream_seq as n from samples`.execute(db)
    expect(r.rows).toEqual([{ part: 'samples_p201903', n: 7 }])
  })

  it('lets two writers create the same new month at the same moment', async () => {
    const writers = [0, 1].map(() => createDb(database.config, { max: 1 }).db)
    others.push(...writers)
    // hold the parent so both writers pass their existence check, then queue on its lock
    const blocker = await pool.connect()
    try {
      await blocker.query('begin')
      await blocker.query('select 1 from hph.samples limit 0')
      const racing = writers.map((w) => ensurePartitions(w, 'hph', ['2018-07-04T12:00:00Z']))
      let queued = 0
      for (let i = 0; i < 200 && queued < 2; i++) {
        await new Promise((r) => setTimeout(r, 25))
        const w = await sql<{ n: number }>`select count(*) as n from pg_locks where relation = 'hph.samples'::regclass and not granted`.execute(db)
        queued = w.rows[0]?.n ?? 0
      }
      await blocker.query('commit')
      expect(queued).toBe(2)
      const created = await Promise.all(racing)
      expect(created.flat()).toEqual(['samples_p201807']) // one created it, the other lost the race quietly
    } finally {
      blocker.release()
    }
    expect(await partitionsOfSamples()).toContain('samples_p201807')
  })
})

describe('the analyst role', () => {
  it('reads every table, partitions included, even one created after the migration', async () => {
    await asAnalyst(async (trx) => {
      for (const table of Object.keys(CONTRACT)) await sql`select * from ${sql.table(table)} limit 1`.execute(trx)
      const r = await sql<{ n: number }>`select count(*) as n from samples_p201903`.execute(trx)
      expect(r.rows[0]?.n).toBe(1)
      await sql`select count(*) from samples_p201807`.execute(trx)
    })
  })

  it('writes nothing: insert is denied on tables and partitions', async () => {
    await deniedToAnalyst((trx) => trx.insertInto('samples').values(sampleRow('2019-03-11T06:00:00Z')).execute())
    await deniedToAnalyst((trx) => sql`insert into samples_p201807 (sample_id) values (gen_random_uuid())`.execute(trx))
    await deniedToAnalyst((trx) => trx.insertInto('projection_checkpoints').values({ projection: 'x', stream: 's', last_seq: 1 }).execute())
    await deniedToAnalyst((trx) => trx.deleteFrom('hrv_daily').execute())
    await deniedToAnalyst((trx) => sql`create table hph.mine (x int)`.execute(trx))
  })
})
