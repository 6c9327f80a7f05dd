import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { userTables } from '../../privacy/tables.ts'
import { SAMPLE_COLUMNS } from '../../projections/samples/writer.ts'
import { createDb, type Database } from '../../schema/db.ts'
import { INSIGHT_TABLES } from '../../schema/insight-tables.ts'
import { migrateToLatest } from '../../schema/migrate.ts'
import { ANALYST_VIEWS } from '../../schema/migrations/0004_analyst_views.ts'
import { nullableInner, sqlTypeOf, TableRows, ViewRows, type SqlType } from '../../schema/rows.ts'
import { createTestDatabase, type TestDatabase } from '../helpers/db.ts'

// The zod rows of schema/rows.ts against the real migrated database: the Kysely types are checked against
// the same rows at typecheck (schema/db.ts), so the three agree when both pass.

/** information_schema's data_type for each SQL type the zod rows stand for. */
const DATA_TYPES: Record<SqlType, readonly string[]> = {
  int: ['smallint', 'integer', 'bigint'],
  float8: ['double precision'],
  date: ['date'],
  timestamptz: ['timestamp with time zone'],
  uuid: ['uuid'],
  text: ['text'],
  boolean: ['boolean'],
  jsonb: ['jsonb'],
}

interface Column {
  relation: string
  column: string
  dataType: string
  nullable: boolean
}

let database: TestDatabase
let db: Kysely<Database>
let columns: Column[]

beforeAll(async () => {
  database = await createTestDatabase()
  db = createDb(database.config, { max: 2 }).db
  await migrateToLatest(db, database.config)
  columns = (
    await sql<Column>`
    select c.table_name as relation, c.column_name as column, c.data_type as "dataType", c.is_nullable = 'YES' as nullable
    from information_schema.columns c join pg_class k on k.relname = c.table_name
    join pg_namespace n on n.oid = k.relnamespace and n.nspname = c.table_schema
    where c.table_schema = ${database.config.HPH_DB_SCHEMA} and not k.relispartition and c.table_name not like 'kysely_migration%'
    order by c.table_name, c.ordinal_position`.execute(db)
  ).rows
})
afterAll(async () => {
  await db?.destroy()
  await database?.drop()
})

const columnsOf = (relation: string) => columns.filter((c) => c.relation === relation)

describe('each table is defined once, by its zod row', () => {
  it('the migrated database has exactly the tables and views that have a zod row', () => {
    expect([...new Set(columns.map((c) => c.relation))].sort()).toEqual([...Object.keys(TableRows), ...Object.keys(ViewRows)].sort())
  })

  it.each(Object.entries(TableRows))('%s: the zod row names every column, of its type, nullable where the row may be null', (table, row) => {
    const expected = Object.entries(row.shape).map(([column, t]) => ({ column, type: sqlTypeOf(t), nullable: nullableInner(t).nullable }))
    const got = columnsOf(table)
    expect(got.map((c) => c.column).sort()).toEqual(expected.map((c) => c.column).sort())
    for (const e of expected) {
      const c = got.find((x) => x.column === e.column)
      expect(DATA_TYPES[e.type], `${table}.${e.column} is ${c?.dataType}`).toContain(c?.dataType)
      expect(c?.nullable, `${table}.${e.column} nullable`).toBe(e.nullable)
    }
  })

  it.each(Object.entries(ViewRows))('%s: the zod row names every column of the view, in its order, of its type', (view, row) => {
    const got = columnsOf(view)
    expect(got.map((c) => c.column)).toEqual(Object.keys(row.shape))
    for (const [column, t] of Object.entries(row.shape)) {
      expect(DATA_TYPES[sqlTypeOf(t)], `${view}.${column}`).toContain(got.find((c) => c.column === column)?.dataType)
    }
    // the comments the migration writes on each column name the same columns
    expect(Object.keys(ANALYST_VIEWS.find((v) => v.name === view)?.columns ?? {})).toEqual(Object.keys(row.shape))
  })

  it('the samples writer copies every column of samples but the defaulted inserted_at', () => {
    expect([...SAMPLE_COLUMNS, 'inserted_at'].sort()).toEqual(Object.keys(TableRows.samples.shape).sort())
  })

  it('an insight event carries every column of its table but the user, the versions and the write times', () => {
    const bookkeeping = ['user_id', 'data_version', 'data_count', 'updated_at', 'created_at', 'last_incremental_update', 'last_full_update']
    for (const t of Object.values(INSIGHT_TABLES)) {
      expect(Object.keys(t.columns).sort(), t.table).toEqual(
        Object.keys(TableRows[t.table].shape)
          .filter((c) => !bookkeeping.includes(c))
          .sort(),
      )
    }
  })

  it("export and erasure find exactly the tables whose zod row has a user's id", async () => {
    const found = (await userTables(db, database.config.HPH_DB_SCHEMA)).map((t) => t.table)
    expect(found).toEqual(
      Object.entries(TableRows)
        .filter(([, row]) => 'user_id' in row.shape)
        .map(([table]) => table)
        .sort(),
    )
  })
})
