import { sql } from 'kysely'
import { identifier, pgCode, type Executor } from './db.ts'

// docs/tables.md §5: without TimescaleDB, `samples` is range-partitioned by UTC month and the writer
// creates the partitions for new months ahead of each insert, never a person by hand.

/** The first instant (UTC) of the month holding `instant`. */
export function monthOf(instant: Date | string): Date {
  const t = typeof instant === 'string' ? new Date(instant) : instant
  if (Number.isNaN(t.getTime())) throw new RangeError(`not an instant: ${String(instant)}`)
  return new Date(Date.UTC(t.getUTCFullYear(), t.getUTCMonth(), 1))
}

const iso = (d: Date) => d.toISOString().replace('.000Z', 'Z')
const nextMonth = (m: Date) => new Date(Date.UTC(m.getUTCFullYear(), m.getUTCMonth() + 1, 1))

/** `<table>_pYYYYMM` (`samples_pYYYYMM`) for the month holding `instant`. */
export function partitionName(instant: Date | string, table = 'samples'): string {
  const m = monthOf(instant)
  return `${table}_p${String(m.getUTCFullYear()).padStart(4, '0')}${String(m.getUTCMonth() + 1).padStart(2, '0')}`
}

/** The month (its first instant, UTC) of a partition named by `partitionName`, or undefined. */
export function monthOfPartition(name: string): Date | undefined {
  const m = /_p(\d{4})(\d{2})$/.exec(name)
  return m ? new Date(Date.UTC(Number(m[1]), Number(m[2]) - 1, 1)) : undefined
}

/** The monthly partition of `table` holding `monthStartUtc` (any instant of the month will do). */
export function partitionSql(schema: string, monthStartUtc: Date | string, table = 'samples'): string {
  const s = identifier(schema)
  const m = monthOf(monthStartUtc)
  return `CREATE TABLE IF NOT EXISTS "${s}".${partitionName(m, identifier(table))} PARTITION OF "${s}".${table} FOR VALUES FROM ('${iso(m)}') TO ('${iso(nextMonth(m))}')`
}

interface Known {
  /** undefined until `samples` has been seen; false on a hypertable (chunks come by themselves) */
  partitioned?: boolean
  partitions: Set<string>
}

// per pool (the Kysely instance) and schema: partitions this process has seen, so a batch whose
// months are all known costs no query at all
const known = new WeakMap<object, Map<string, Known>>()

/** Forgets what this process knows of the partitions (after an insert found a month missing). */
export function forgetPartitions(db: Executor, schema: string, table = 'samples'): void {
  known.get(db)?.delete(`${schema}.${table}`)
}

function knownOf(db: Executor, schema: string): Known {
  let bySchema = known.get(db)
  if (!bySchema) known.set(db, (bySchema = new Map()))
  let k = bySchema.get(schema)
  if (!k) bySchema.set(schema, (k = { partitions: new Set() }))
  return k
}

/**
 * Creates the missing monthly partitions of `table` (`samples`, or its rebuild shadow) for `instants`; returns the names it created.
 * A no-op on a TimescaleDB hypertable. Safe against another writer creating the same month.
 */
export async function ensurePartitions(db: Executor, schema: string, instants: Iterable<Date | string>, table = 'samples'): Promise<string[]> {
  identifier(schema)
  identifier(table)
  const k = knownOf(db, `${schema}.${table}`)
  if (k.partitioned === false) return []
  const months = new Map<string, Date>()
  for (const t of instants) {
    const name = partitionName(t, table)
    if (!k.partitions.has(name)) months.set(name, monthOf(t))
  }
  if (months.size === 0) return []

  if (k.partitioned === undefined) {
    const r = await sql<{ relkind: string }>`
      select c.relkind from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname = ${schema} and c.relname = ${table}`.execute(db)
    const relkind = r.rows[0]?.relkind
    if (relkind === undefined) return [] // not migrated yet: nothing to cache, the insert will say so
    k.partitioned = relkind === 'p'
    if (!k.partitioned) return []
  }

  const existing = await sql<{ relname: string }>`
    select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace
    where n.nspname = ${schema} and c.relname = any(${[...months.keys()]})`.execute(db)
  for (const { relname } of existing.rows) {
    k.partitions.add(relname)
    months.delete(relname)
  }

  const created: string[] = []
  for (const [name, month] of months) {
    try {
      await sql.raw(partitionSql(schema, month, table)).execute(db)
      created.push(name)
    } catch (err) {
      // IF NOT EXISTS checks before waiting for the parent's lock: a writer that lost the race gets 42P07
      if (pgCode(err) !== '42P07') throw err
    }
    k.partitions.add(name)
  }
  return created
}
