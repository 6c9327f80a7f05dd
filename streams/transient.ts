import { TransientError } from '../errors.ts'

// Errors that mean "a dependency is away": retried with backoff forever, never dead-lettered.
const PG_TRANSIENT_CLASSES = ['08', '53', '57', '58'] // connection, resources, operator intervention, system
const PG_TRANSIENT_CODES = new Set(['40001', '40P01', '55P03']) // serialization, deadlock, lock not available
const NODE_TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
// `JetStream system temporarily unavailable` (503): a cluster without a meta leader, electing one
const NATS_TRANSIENT = /timeout|no responders|connection|disconnect|closed|503|draining|jetstream (is )?not enabled|not available|unavailable|leader/i

const BACKOFF_BASE_MS = 250
const BACKOFF_MAX_MS = 30_000
/** The wait before the nth try of what failed transiently: 250 ms, doubling, at most 30 s. */
export const backoffMs = (tries: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, tries - 1))

export function isTransient(err: unknown): boolean {
  if (err instanceof TransientError) return true
  if (typeof err !== 'object' || err === null) return false
  const e = err as { code?: unknown; name?: unknown; message?: unknown; cause?: unknown }
  const code = typeof e.code === 'string' ? e.code : undefined
  if (code && code.length === 5 && (PG_TRANSIENT_CLASSES.includes(code.slice(0, 2)) || PG_TRANSIENT_CODES.has(code))) return true
  if (code && NODE_TRANSIENT.has(code)) return true
  const name = typeof e.name === 'string' ? e.name : ''
  const message = typeof e.message === 'string' ? e.message : ''
  if (/^(TimeoutError|ConnectionError|NoRespondersError|ClosedConnectionError|DrainingConnectionError|RequestError)$/.test(name)) return true
  if (/Connection terminated|Query read timeout|connection timeout|Client has encountered a connection error|timeout exceeded when trying to connect/i.test(message)) return true
  if (name.startsWith('JetStream') && (NATS_TRANSIENT.test(message) || (e as { status?: unknown }).status === 503)) return true
  return e.cause !== undefined && e.cause !== err && isTransient(e.cause)
}

/** how long a process waits at start for JetStream to answer (a cluster elects its meta leader in seconds) */
export const START_WAIT_MS = 60_000
const RETRY_MAX_MS = 5_000

/**
 * `attempt` again while it fails as a dependency away does (isTransient), for up to `waitMs`, waiting 500 ms, 1 s, 2 s…
 * (at most 5 s) between tries, each wait told to `onWait`; what else it throws, or throws past the wait, is thrown.
 */
export async function whileTransient<T>(attempt: () => Promise<T>, opts: { waitMs: number; onWait?: (err: unknown, tries: number, retryInMs: number) => void }): Promise<T> {
  const deadline = Date.now() + opts.waitMs
  for (let tries = 1; ; tries++) {
    try {
      return await attempt()
    } catch (err) {
      if (!isTransient(err) || Date.now() >= deadline) throw err
      const ms = Math.min(RETRY_MAX_MS, backoffMs(tries + 1))
      opts.onWait?.(err, tries, ms)
      await new Promise((resolve) => setTimeout(resolve, ms))
    }
  }
}
