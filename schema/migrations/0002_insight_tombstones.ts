import { sql, type Migration } from 'kysely'
import type { SchemaNames } from './0001_initial.ts'

/**
 * The versions of deleted insight rows. A tombstone remembers the data version that removed a row,
 * so an older computation arriving later (a second engine, a replay) cannot bring the row back.
 */
export function insightTombstones({ schema }: SchemaNames): Migration {
  return {
    async up(db) {
      await sql`create table ${sql.id(schema, 'insight_tombstones')} (
        user_id text not null,
        kind text not null,
        key text not null,
        data_version bigint not null,
        updated_at timestamptz not null default now(),
        primary key (user_id, kind, key)
      )`.execute(db)
    },
  }
}
