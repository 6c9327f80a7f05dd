import type pg from 'pg'

// The advisory locks a rebuild and an erase share: one rebuild of a projection at a time, and no rebuild while a
// user is erased (its shadow tables, read from the streams before the erase, would bring the user back).

export const LOCKED_PROJECTIONS = ['samples', 'insights'] as const

/** The key of a projection's rebuild lock (pg_advisory_lock(hashtext(key))). */
export function rebuildLockKey(schema: string, projection: string): string {
  return `hph.rebuild:${schema}:${projection}`
}

/** Takes the lock on this session if it is free; false when someone holds it. */
export async function tryLock(client: Pick<pg.PoolClient, 'query'>, key: string): Promise<boolean> {
  return (await client.query<{ ok: boolean }>('select pg_try_advisory_lock(hashtext($1)) as ok', [key])).rows[0]?.ok === true
}

export async function unlock(client: Pick<pg.PoolClient, 'query'>, key: string): Promise<void> {
  await client.query('select pg_advisory_unlock(hashtext($1))', [key])
}
