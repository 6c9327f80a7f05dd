import { setImmediate as nextMacrotask } from 'node:timers/promises'
import type { ConsumerMessages, JsMsg } from '@nats-io/jetstream'
import type { z } from 'zod'
import type { Logger } from '../log.ts'
import { HphError } from '../errors.ts'
import { decodeJson, envelope, type Envelope } from './envelope.ts'
import type { Nats } from './connect.ts'
import { hashHex } from './ids.ts'
import { publishEvent } from './publish.ts'
import { HEADROOM_BYTES, serverMaxPayload } from './sizing.ts'
import { DLQ_TYPE, type DeadLetter } from './schemas.ts'
import { streamName, subjects, safeToken, userOfSubject } from './subjects.ts'
import { CONSUMERS, type StageName } from './topology.ts'
import { isTransient } from './transient.ts'

// The one batched durable consumer loop (STYLE.md): pull ≤ batchSize, decode + validate,
// handle, (the handler commits), ack; nak with backoff on transient errors; poison to the DLQ.

export interface Delivered<T> {
  event: Envelope<T>
  data: T
  subject: string
  /** stream sequence of the message */
  seq: number
  deliveries: number
  traceparent: string | undefined
}

/** A message the handler can never process: dead-lettered with the reason, then terminated. */
export interface Poison {
  index: number
  error: Error
}

export interface BatchHandler<T> {
  stage: StageName
  schema: z.ZodType<Envelope<T>>
  /**
   * Batches in flight at once (default 1). Above 1, the next pull is decoded and handled while the
   * previous transaction commits; only for handlers whose effects commute (idempotent inserts, version guards).
   */
  concurrency?: number
  /** How many facts (samples, rows) one message carries, for the metrics; 1 when not given. */
  itemsOf?(data: T): number
  /** Makes the batch's effect durable (one transaction, acknowledged publishes). Never acks. */
  handle(batch: Delivered<T>[]): Promise<void | { poison: Poison[] }>
}

export interface BatchStats {
  stage: StageName
  /** messages */
  size: number
  /** bytes of the messages */
  bytes: number
  /** facts the handled messages carried (samples, rows): itemsOf summed */
  items: number
  ok: number
  poison: number
  retried: number
  ms: number
}

export interface ConsumerOptions {
  nats: Nats
  prefix: string
  log: Logger
  /** at most this many messages a batch */
  batchSize: number
  /** HPH_PULL_MAX_BYTES: at most this many bytes a pull, and a batch (a single larger message is a batch alone) */
  pullMaxBytes: number
  maxDeliver: number
  shutdownTimeoutMs: number
  onBatch?: (s: BatchStats) => void
}

export interface RunningConsumer {
  stage: StageName
  /**
   * Stops pulling, naks what was pulled but not handled, and waits up to `shutdownTimeoutMs` for the
   * batches in hand: they commit and are acked, or at the deadline are nakked and never acked after.
   */
  stop(): Promise<void>
  /** resolves when the loop has ended */
  done: Promise<void>
}

const BACKOFF_BASE_MS = 250
const BACKOFF_MAX_MS = 30_000
export const backoffMs = (deliveries: number) => Math.min(BACKOFF_MAX_MS, BACKOFF_BASE_MS * 2 ** Math.max(0, deliveries - 1))

export async function startConsumer<T>(handler: BatchHandler<T>, opts: ConsumerOptions): Promise<RunningConsumer> {
  const spec = CONSUMERS[handler.stage]
  const stream = streamName(opts.prefix, spec.stream)
  const log = opts.log.child({ stage: handler.stage })
  const consumer = await opts.nats.js.consumers.get(stream, spec.durable)

  const queue: JsMsg[] = []
  /** the batches being handled */
  const inHand = new Set<readonly JsMsg[]>()
  let wake: (() => void) | undefined
  let stopping = false
  /** the shutdown deadline passed with batches in hand: they were given back, nothing of them is acked any more */
  let abandoned = false
  // The server's max_ack_pending bounds what can pile up here (topology.ts sizes it by the stage's messages);
  // the callback only queues, and each batch is cut from the queue by messages and by bytes (nextBatch). Pulls
  // are not bounded by bytes: nats.js 3 takes either bound, not both, and a message larger than what is left
  // of a byte-bounded pull stalls the subscription until two heartbeats are missed (30 s).
  const messages: ConsumerMessages = await consumer.consume({
    max_messages: opts.batchSize,
    callback: (m) => {
      queue.push(m)
      wake?.()
    },
  })

  const nakAll = (msgs: readonly JsMsg[], delay?: number) => msgs.forEach((m) => m.nak(delay))
  /** base64 takes 4/3 of the bytes; the letter's other fields stay well inside the headroom */
  const fitsDeadLetter = (bytes: number) => Math.ceil(bytes / 3) * 4 <= serverMaxPayload(opts.nats.nc) - HEADROOM_BYTES * 4

  async function deadLetter(m: JsMsg, reason: string, error: unknown): Promise<void> {
    const details = error instanceof HphError ? error.details : []
    const letter: DeadLetter = {
      stage: handler.stage,
      kind: 'poison',
      reason,
      details,
      originalStream: stream,
      originalSubject: m.subject,
      originalSeq: m.seq,
      deliveries: m.info.deliveryCount,
      firstSeen: new Date(m.info.timestampNanos / 1e6).toISOString(),
      // docs/architecture.md §6: the bytes only when they fit a message; else the stream and sequence name them
      payloadBase64: fitsDeadLetter(m.data.length) ? Buffer.from(m.data).toString('base64') : '',
      headers: m.headers ? Object.fromEntries([...m.headers.keys()].map((k) => [k, m.headers?.values(k) ?? []])) : {},
    }
    const user = safeToken(userOfSubject(m.subject))
    await publishEvent(opts.nats.js, {
      subject: subjects.dlq(opts.prefix, handler.stage, user),
      event: envelope({ id: hashHex('dlq', handler.stage, stream, m.seq), type: DLQ_TYPE, source: handler.stage, subject: user, data: letter }),
    })
    log.warn({ seq: m.seq, subject: m.subject, reason }, 'dead-lettered')
    m.term()
  }

  function decode(m: JsMsg): Delivered<T> | Error {
    try {
      const parsed = handler.schema.safeParse(decodeJson(m.data))
      if (!parsed.success) {
        const problems = parsed.error.issues.map((i) => ({ path: i.path.join('.'), problem: i.message }))
        return new HphError('invalid_event', `event does not match its schema: ${problems.map((p) => `${p.path || '(root)'}: ${p.problem}`).join('; ')}`, problems)
      }
      const info = m.info
      return {
        event: parsed.data, data: parsed.data.data, subject: m.subject, seq: info.streamSequence, deliveries: info.deliveryCount,
        // headers are decoded only when a handler asks (every message carries Nats-Msg-Id; most never need the trace)
        get traceparent() {
          return m.headers?.get('traceparent') || undefined
        },
      }
    } catch (err) {
      return new HphError('invalid_json', `message is not JSON: ${(err as Error).message}`)
    }
  }

  /** Runs the handler on the batch; returns what to ack, what is poison, what to retry. */
  async function process(msgs: JsMsg[]): Promise<{ ok: number; poison: number; retried: number; items: number }> {
    const good: JsMsg[] = []
    const items: Delivered<T>[] = []
    let poison = 0
    /** the facts each good message carries */
    const facts: number[] = []
    for (const m of msgs) {
      const d = decode(m)
      if (d instanceof Error) {
        await deadLetter(m, d.message, d)
        poison++
      } else {
        good.push(m)
        items.push(d)
        facts.push(handler.itemsOf?.(d.data) ?? 1)
      }
    }
    if (items.length === 0) return { ok: 0, poison, retried: 0, items: 0 }
    try {
      const r = await handler.handle(items)
      // given back at the shutdown deadline: its transaction may have committed or not, the redelivery decides
      if (abandoned) return { ok: 0, poison, retried: good.length, items: 0 }
      const bad = new Map((r?.poison ?? []).map((p) => [p.index, p.error]))
      let done = 0
      for (const [i, m] of good.entries()) {
        const err = bad.get(i)
        if (err) await deadLetter(m, err.message, err)
        else {
          m.ack()
          done += facts[i] ?? 0
        }
      }
      return { ok: good.length - bad.size, poison: poison + bad.size, retried: 0, items: done }
    } catch (err) {
      if (abandoned) return { ok: 0, poison, retried: good.length, items: 0 }
      if (isTransient(err) || good.length === 1) {
        const m = good[0] as JsMsg
        if (!isTransient(err) && m.info.deliveryCount >= opts.maxDeliver) {
          await deadLetter(m, `failed ${m.info.deliveryCount} times: ${(err as Error).message}`, err)
          return { ok: 0, poison: poison + 1, retried: 0, items: 0 }
        }
        const delay = backoffMs(Math.max(...good.map((g) => g.info.deliveryCount)))
        log.warn({ err, size: good.length, delayMs: delay, transient: isTransient(err) }, 'batch failed; will retry')
        nakAll(good, delay)
        return { ok: 0, poison, retried: good.length, items: 0 }
      }
      // a permanent failure of a multi-message batch: find the culprit by handling each alone
      log.warn({ err, size: good.length }, 'batch failed; isolating messages')
      const acc = { ok: 0, poison, retried: 0, items: 0 }
      for (const m of good) {
        const r = await process([m])
        acc.ok += r.ok
        acc.poison += r.poison
        acc.retried += r.retried
        acc.items += r.items
      }
      return acc
    }
  }

  async function waitForMessages(): Promise<void> {
    if (queue.length > 0 || stopping) return
    await new Promise<void>((resolve) => (wake = resolve))
    wake = undefined
    // let the rest of a pull that is arriving land in the queue before cutting a batch
    await nextMacrotask()
  }

  async function settle(batch: JsMsg[]): Promise<void> {
    const t0 = performance.now()
    inHand.add(batch)
    try {
      const r = await process(batch)
      opts.onBatch?.({ stage: handler.stage, size: batch.length, bytes: batch.reduce((n, m) => n + m.data.length, 0), ...r, ms: performance.now() - t0 })
    } catch (err) {
      // publishing to the DLQ failed (NATS away): nothing was acked, so retry later
      log.error({ err, size: batch.length }, 'batch could not be settled; will retry')
      if (!abandoned) nakAll(batch, backoffMs(2))
    } finally {
      inHand.delete(batch)
    }
  }

  /** The queue's head: at most batchSize messages and pullMaxBytes bytes, at least one message. */
  function nextBatch(): JsMsg[] {
    let n = 0
    let bytes = 0
    while (n < queue.length && n < opts.batchSize) {
      const size = (queue[n] as JsMsg).data.length
      if (n > 0 && bytes + size > opts.pullMaxBytes) break
      bytes += size
      n++
    }
    return queue.splice(0, n)
  }

  const concurrency = Math.max(1, handler.concurrency ?? 1)
  const done = (async () => {
    const inflight = new Set<Promise<void>>()
    while (!stopping) {
      await waitForMessages()
      if (stopping) break
      const running = settle(nextBatch()).finally(() => inflight.delete(running))
      inflight.add(running)
      if (inflight.size >= concurrency) await Promise.race(inflight)
    }
    await Promise.all(inflight)
  })()

  let stopped: Promise<void> | undefined
  return {
    stage: handler.stage,
    done,
    stop() {
      // docs/architecture.md §8: drain in-flight pulls, ack nothing uncommitted; the deadline counts from here
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), opts.shutdownTimeoutMs)))
        stopping = true
        wake?.()
        await messages.close().catch((err: unknown) => log.warn({ err }, 'closing the pull subscription failed'))
        // pulled but never handled: give them back now rather than after ack_wait
        nakAll(queue.splice(0))
        const outcome = await Promise.race([done.then(() => 'drained' as const), deadline])
        clearTimeout(timer)
        if (outcome === 'drained') {
          log.info('stopped')
          return
        }
        // a batch still in hand may yet commit, or never: give it back now and never ack it (its effect is
        // idempotent, so a late commit is harmless; the redelivery makes it whole)
        abandoned = true
        const given = [...inHand].flat()
        nakAll(given)
        log.warn({ timeoutMs: opts.shutdownTimeoutMs, messages: given.length }, 'batch in hand did not finish before the deadline; given back unacked for redelivery')
      })()
      return stopped
    },
  }
}
