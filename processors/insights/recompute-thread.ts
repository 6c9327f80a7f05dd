import { Worker } from 'node:worker_threads'
import type { Config } from '../../config.ts'
import { TransientError } from '../../errors.ts'
import type { Logger } from '../../log.ts'
import type { Recomputation } from './stage.ts'

// docs/architecture.md §7 (insights-engine): reading a user's samples and running the pure modules over them was
// the largest part of the engine's work, and all of it on the thread that also serves the api and every other
// stage of `hph up`. A worker thread does it on a core of its own; the stage's thread publishes the rows.

/** What the thread needs to open its own pool: the database, the schema and the pipeline's timeouts. */
export type RecomputeThreadConfig = Pick<
  Config,
  'DATABASE_URL' | 'HPH_DB_SCHEMA' | 'HPH_PG_CONNECT_TIMEOUT_MS' | 'HPH_PG_STATEMENT_TIMEOUT_MS' | 'HPH_PG_IDLE_TIMEOUT_MS' | 'HPH_PG_KEEPALIVE_MS'
>

export interface RecomputeThreadData {
  config: RecomputeThreadConfig
  /** connections of the thread's pool: the users the engine recomputes at once */
  connections: number
}

/** stage → thread */
export type ToRecompute = { kind: 'recompute'; id: number; userId: string; days: string[] } | { kind: 'close' }

/** thread → stage */
export type FromRecompute =
  | { kind: 'done'; id: number; result: Recomputation }
  | { kind: 'failed'; id: number; error: { name: string; message: string; stack?: string | undefined; code?: string | undefined } }

export interface Recomputer {
  /** recomputeUser (stage.ts), on the thread */
  recompute(userId: string, days: readonly string[]): Promise<Recomputation>
  /** ends the thread and its pool (what is in flight is rejected) */
  close(): Promise<void>
  /** ends the thread at once, as a crash would: what it has in hand fails as a TransientError; the next recompute starts another */
  terminate(): Promise<void>
}

// from the sources (tsx) the thread must register tsx itself first; from the build (dist/) it is plain JavaScript
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './recompute-thread-tsx.js' : './recompute-thread-entry.js', import.meta.url)

/** An error of the thread as the stage sees it: the same name, message and code (isTransient reads them). */
function errorOf(e: Extract<FromRecompute, { kind: 'failed' }>['error']): Error {
  const err = new Error(e.message)
  err.name = e.name
  if (e.stack !== undefined) err.stack = e.stack
  if (e.code !== undefined) Object.assign(err, { code: e.code })
  return err
}

/**
 * A worker thread that recomputes users, started when first asked. When it dies (out of memory, a crash), what
 * it had in hand fails as a TransientError (the batch is retried) and the next recompute starts a new one.
 */
export function recomputeThread(data: RecomputeThreadData, log: Logger): Recomputer {
  let worker: Worker | undefined
  let closed = false
  let nextId = 0
  const pending = new Map<number, { resolve: (r: Recomputation) => void; reject: (e: Error) => void }>()
  const failAll = (err: Error) => {
    for (const p of pending.values()) p.reject(err)
    pending.clear()
  }
  const start = (): Worker => {
    const w = new Worker(ENTRY, { workerData: data })
    w.on('message', (m: FromRecompute) => {
      const p = pending.get(m.id)
      if (!p) return
      pending.delete(m.id)
      if (m.kind === 'done') p.resolve(m.result)
      else p.reject(errorOf(m.error))
    })
    w.on('error', (err) => {
      log.error({ err }, 'the recompute thread failed')
      if (worker === w) worker = undefined
      failAll(new TransientError(`the recompute thread failed: ${err.message}`))
    })
    w.on('exit', (code) => {
      if (worker === w) worker = undefined
      if (pending.size > 0) failAll(new TransientError(`the recompute thread exited (code ${code}) with ${pending.size} recomputes in hand`))
    })
    // the thread never keeps the process alive on its own: a stop closes it, an exit ends it
    w.unref()
    return w
  }
  return {
    recompute(userId, days) {
      if (closed) return Promise.reject(new Error('the recompute thread is closed'))
      worker ??= start()
      const id = nextId++
      const w = worker
      return new Promise<Recomputation>((resolve, reject) => {
        pending.set(id, { resolve, reject })
        w.postMessage({ kind: 'recompute', id, userId, days: [...days] } satisfies ToRecompute)
      })
    },
    async terminate() {
      await worker?.terminate()
    },
    async close() {
      closed = true
      const w = worker
      worker = undefined
      if (!w) return
      const exited = new Promise<void>((resolve) => w.once('exit', () => resolve()))
      w.postMessage({ kind: 'close' } satisfies ToRecompute)
      // its pool ends, then the thread; a thread that does not end by itself in 5 s is ended
      const timer = setTimeout(() => void w.terminate(), 5_000)
      await exited
      clearTimeout(timer)
      failAll(new Error('the recompute thread is closed'))
    },
  }
}
