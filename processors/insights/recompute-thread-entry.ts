import { parentPort, workerData } from 'node:worker_threads'
import { closeDb, createDb, pgTimeouts } from '../../schema/db.ts'
import { recomputeUser } from './stage.ts'
import type { FromRecompute, RecomputeThreadData, ToRecompute } from './recompute-thread.ts'

// The worker side of recompute-thread.ts: a user's samples are read and the pure modules run here, on a pool of
// this thread's own, so that the stage's thread only publishes the rows.

const port = parentPort
if (!port) throw new Error('recompute-thread-entry.ts runs as a worker thread (recompute-thread.ts starts it)')
const data = workerData as RecomputeThreadData
const { db, pool } = createDb(data.config, { max: data.connections, timeouts: pgTimeouts(data.config) })
// an idle connection the server ended is an error of the pool, not of a recompute: the next query connects again
pool.on('error', () => undefined)

port.on('message', (m: ToRecompute) => {
  if (m.kind === 'close') {
    void closeDb(db, pool).finally(() => port.close())
    return
  }
  recomputeUser({ pool, schema: data.config.HPH_DB_SCHEMA }, m.userId, m.days).then(
    (result) => port.postMessage({ kind: 'done', id: m.id, result } satisfies FromRecompute),
    (err: unknown) => {
      const e = err instanceof Error ? err : new Error(String(err))
      const code = (e as { code?: unknown }).code
      port.postMessage({
        kind: 'failed',
        id: m.id,
        error: { name: e.name, message: e.message, stack: e.stack, code: typeof code === 'string' ? code : undefined },
      } satisfies FromRecompute)
    },
  )
})
