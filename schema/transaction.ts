import type pg from 'pg'

/**
 * Runs `work` in one transaction on a pooled client (the hot paths use pg directly, with named
 * prepared statements). A connection that failed to roll back is destroyed, not returned to the pool.
 */
export async function inTransaction<T>(pool: pg.Pool, work: (client: pg.PoolClient) => Promise<T>): Promise<T> {
  const client = await pool.connect()
  let broken: Error | undefined
  try {
    await client.query('begin')
    const result = await work(client)
    await client.query('commit')
    return result
  } catch (err) {
    try {
      await client.query('rollback')
    } catch (rollbackErr) {
      broken = rollbackErr as Error
    }
    throw err
  } finally {
    client.release(broken)
  }
}
