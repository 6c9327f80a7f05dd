import { sql } from 'kysely'
import { identifier, type Executor } from '../schema/db.ts'

// Which tables hold a user's rows: asked of the catalog, not listed by hand, so a table added later
// (or a rebuild's shadow) is exported and erased without anyone remembering to add it here.

export interface UserTable {
  table: string
  /** primary-key columns, in key order (empty when the table has none) */
  keys: string[]
}

/** Every table (partitioned parents, not their partitions) of `schema` with a `user_id` column, by name. */
export async function userTables(db: Executor, schema: string): Promise<UserTable[]> {
  const r = await sql<{ table: string; keys: string[] | null }>`
    select c.relname as table,
      (select array_agg(a2.attname::text order by k.ord)
         from pg_index i cross join lateral unnest(i.indkey) with ordinality as k(attnum, ord)
         join pg_attribute a2 on a2.attrelid = c.oid and a2.attnum = k.attnum
        where i.indrelid = c.oid and i.indisprimary) as keys
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'user_id' and not a.attisdropped
    where n.nspname = ${identifier(schema)} and c.relkind in ('r', 'p') and not c.relispartition
    order by c.relname`.execute(db)
  return r.rows.map((row) => ({ table: identifier(row.table), keys: (row.keys ?? []).map(identifier) }))
}
