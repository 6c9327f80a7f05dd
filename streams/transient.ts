import { TransientError } from '../errors.ts'

// Errors that mean "a dependency is away": retried with backoff forever, never dead-lettered.
const PG_TRANSIENT_CLASSES = ['08', '53', '57', '58'] // connection, resources, operator intervention, system
const PG_TRANSIENT_CODES = new Set(['40001', '40P01', '55P03']) // serialization, deadlock, lock not available
const NODE_TRANSIENT = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'EHOSTUNREACH', 'ENOTFOUND', 'EAI_AGAIN'])
const NATS_TRANSIENT = /timeout|no responders|connection|disconnect|closed|503|draining|jetstream (is )?not enabled|not available|leader/i

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
  if (name.startsWith('JetStream') && NATS_TRANSIENT.test(message)) return true
  return e.cause !== undefined && e.cause !== err && isTransient(e.cause)
}
