import { setImmediate as nextMacrotask } from 'node:timers/promises'
import { JetStreamApiError, type Consumer, type JsMsg } from '@nats-io/jetstream'
import type { z } from 'zod'
import type { Logger } from '../log.ts'
import { HphError } from '../errors.ts'
import { decodeJson, envelope, type Envelope } from './envelope.ts'
import type { Nats } from './connect.ts'
import { hashHex } from './ids.ts'
import { publishEvent } from './publish.ts'
import { boundedLetter } from './dead-letter.ts'
import { eventByteLimit } from './sizing.ts'
import { DLQ_TYPE } from './schemas.ts'
import { streamName, subjects, safeToken, userOfSubject } from './subjects.ts'
import { CONSUMERS, consumerConfig, type StageName } from './topology.ts'
import { backoffMs, isTransient, START_WAIT_MS, whileTransient } from './transient.ts'

// The one batched durable consumer loop (docs/architecture.md §8): pull ≤ batchSize, decode + validate,
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
  /**
   * The handler's own bound on a batch's bytes, below HPH_PULL_MAX_BYTES, for a stage whose messages are each a whole
   * unit of work (normalize's raw batches): a larger batch gains nothing and holds all of its messages decoded at once
   */
  maxBatchBytes?: number
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
  /** HPH_PULL_MAX_BYTES: at most this many bytes a batch (a single larger message is a batch alone) */
  pullMaxBytes: number
  maxDeliver: number
  shutdownTimeoutMs: number
  /** HPH_ACK_WAIT_S of the stage's consumer declaration: re-applied when the durable is gone, and how often a long batch says it is working */
  ackWaitS: number
  /** HPH_EVENT_MAX_BYTES: a dead letter never exceeds it (nor the server's max_payload) */
  eventMaxBytes?: number
  /** how long one pull request waits on the server; a stop waits for the one in flight (default 2 s) */
  pullExpiresMs?: number
  onBatch?: (s: BatchStats) => void
}

/** Whether the stage's pulls are being answered (docs/architecture.md §8.2). */
export interface StageHealth {
  pulling: boolean
  /** when it last changed */
  since: number
}

/** What a stop left undone: messages given back unacknowledged at the shutdown deadline. */
export interface StopReport {
  stage: StageName
  givenBack: number
}

export interface RunningConsumer {
  stage: StageName
  /**
   * Stops pulling (no new pull request; whatever the one in flight still delivers is given back at once), naks
   * what was pulled but not handled, and waits up to `shutdownTimeoutMs` for the batches in hand: they commit and
   * are acked, or at the deadline are nakked and never acked after.
   */
  stop(): Promise<StopReport>
  health(): StageHealth
  /** resolves when the loop has ended */
  done: Promise<void>
}

/** HPH_EVENT_MAX_BYTES's default, for callers that do not pass it */
const DEFAULT_EVENT_MAX_BYTES = 256 * 1024
/** a pull that fails this many times in a row makes the stage not ready */
const PULL_FAILURES_NOT_READY = 3
const PULL_BACKOFF_MAX_MS = 10_000
const DEFAULT_PULL_EXPIRES_MS = 2_000
/** the server's idle heartbeat on an open pull request (at most half its expiry): it sends one whenever it has had nothing else to send this long */
const PULL_HEARTBEAT_MS = 500
/** A pull request the server has sent nothing on (no message, no heartbeat, no answer) this long is gone there. */
const PULL_SILENT_MS = 3_000
/**
 * The server delivers nothing on a request past its expiry, but when a delivery and the expiry meet, nats-server 2.9
 * ends the request without its expiry answer (the 408): a request half a second past its expiry (counted from when
 * it was made) with nothing from the server for a heartbeat and a half is over. The half: a request that reached the
 * server late (behind large publishes on the connection) still has its heartbeats, and they must not fall between
 * the checks. Every pull the stage does not make meanwhile is a stall of the stage (about 3 s with a 1 s heartbeat
 * checked every second, which cost the import's figure a third of its rate when it fell at its end).
 */
const PULL_EXPIRY_GRACE_MS = 500
/** how often the watchdog looks at an open request */
const PULL_WATCH_MS = 250
const pullQuietMs = (heartbeatMs: number) => 1.5 * heartbeatMs

const isNotFound = (err: unknown) =>
  err instanceof JetStreamApiError ? err.code === 404 || /not found/i.test(err.message) : err instanceof Error && /(consumer|stream) not found/i.test(err.message)

/**
 * Decodes and validates one message's bytes with a handler's schema: the event, or an error naming every problem.
 * The one decode of a stage's events, live (below) and replayed (streams/replay.ts). Throws what decodeJson throws.
 */
export function decodeEvent<T>(schema: z.ZodType<Envelope<T>>, data: Uint8Array): Envelope<T> | HphError {
  const parsed = schema.safeParse(decodeJson(data))
  if (parsed.success) return parsed.data
  const problems = parsed.error.issues.map((i) => ({ path: i.path.join('.'), problem: i.message }))
  return new HphError('invalid_event', `event does not match its schema: ${problems.map((p) => `${p.path || '(root)'}: ${p.problem}`).join('; ')}`, problems)
}

export async function startConsumer<T>(handler: BatchHandler<T>, opts: ConsumerOptions): Promise<RunningConsumer> {
  const spec = CONSUMERS[handler.stage]
  const stream = streamName(opts.prefix, spec.stream)
  const log = opts.log.child({ stage: handler.stage })
  const declaration = consumerConfig(spec, { HPH_ACK_WAIT_S: opts.ackWaitS })
  const expiresMs = opts.pullExpiresMs ?? DEFAULT_PULL_EXPIRES_MS
  // what a stop gives back is held back this long: long enough that this process's own pull, still open until it
  // expires, is not handed them again and again (each time a delivery more), short beside the ack wait
  const giveBackDelayMs = expiresMs
  const heartbeatMs = Math.min(PULL_HEARTBEAT_MS, Math.floor(expiresMs / 2))
  const quietMs = pullQuietMs(heartbeatMs)
  // a missing durable at start is a start-up error (hph streams apply / hph up declare it); later it is re-declared.
  // JetStream not answering at start (a cluster electing its meta leader, a node restarting) is waited for.
  let consumer: Consumer | undefined = await whileTransient(() => opts.nats.js.consumers.get(stream, spec.durable), {
    waitMs: START_WAIT_MS,
    onWait: (err, tries, retryInMs) => log.warn({ err, tries, retryInMs }, 'JetStream does not answer yet: the stage waits for it before it starts'),
  })

  const queue: JsMsg[] = []
  /** the batches being handled */
  const inHand = new Set<readonly JsMsg[]>()
  let wake: (() => void) | undefined
  /** interrupts the pull loop's backoff at a stop */
  let wakePull: (() => void) | undefined
  let stopping = false
  /** the shutdown deadline passed with batches in hand: they were given back, nothing of them is acked any more */
  let abandoned = false
  let health: StageHealth = { pulling: true, since: Date.now() }

  const setPulling = (pulling: boolean) => {
    if (health.pulling !== pulling) health = { pulling, since: Date.now() }
  }

  const nakAll = (msgs: readonly JsMsg[], delay?: number) => msgs.forEach((m) => m.nak(delay))

  async function deadLetter(m: JsMsg, reason: string, error: unknown): Promise<void> {
    const details = error instanceof HphError ? error.details : []
    const user = safeToken(userOfSubject(m.subject))
    const id = hashHex('dlq', handler.stage, stream, m.seq)
    // docs/architecture.md §6: the bytes only when they fit a message; else the stream and sequence name them
    const letter = boundedLetter(
      {
        stage: handler.stage,
        kind: 'poison',
        reason,
        details,
        originalStream: stream,
        originalSubject: m.subject,
        originalSeq: m.seq,
        deliveries: m.info.deliveryCount,
        firstSeen: new Date(m.info.timestampNanos / 1e6).toISOString(),
        headers: m.headers ? Object.fromEntries([...m.headers.keys()].map((k) => [k, m.headers?.values(k) ?? []])) : {},
      },
      m.data,
      eventByteLimit(opts.nats.nc, opts.eventMaxBytes ?? DEFAULT_EVENT_MAX_BYTES),
      { id, source: handler.stage, subject: user },
    )
    await publishEvent(opts.nats.js, {
      subject: subjects.dlq(opts.prefix, handler.stage, user),
      event: envelope({ id, type: DLQ_TYPE, source: handler.stage, subject: user, data: letter }),
    })
    log.warn({ seq: m.seq, subject: m.subject, reason: letter.reason, payloadKept: letter.payloadBase64 !== '' }, 'dead-lettered')
    m.term()
  }

  function decode(m: JsMsg): Delivered<T> | Error {
    try {
      const event = decodeEvent(handler.schema, m.data)
      if (event instanceof Error) return event
      const info = m.info
      return {
        event,
        data: event.data,
        subject: m.subject,
        seq: info.streamSequence,
        deliveries: info.deliveryCount,
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
      // publishing to the DLQ failed (NATS away, the DLQ gone): what was not acked is given back, later each time it
      // comes back (as a failed handler's batch), never in a tight loop while the DLQ stays away
      const delay = backoffMs(Math.max(...batch.map((m) => m.info.deliveryCount)) + 1)
      log.error({ err, size: batch.length, delayMs: delay }, 'batch could not be settled; will retry')
      if (!abandoned) nakAll(batch, delay)
    } finally {
      inHand.delete(batch)
    }
  }

  const maxBatchBytes = Math.min(opts.pullMaxBytes, handler.maxBatchBytes ?? Infinity)
  /** The queue's head: at most batchSize messages and maxBatchBytes bytes, at least one message. */
  function nextBatch(): JsMsg[] {
    let n = 0
    let bytes = 0
    while (n < queue.length && n < opts.batchSize) {
      const size = (queue[n] as JsMsg).data.length
      if (n > 0 && bytes + size > maxBatchBytes) break
      bytes += size
      n++
    }
    return queue.splice(0, n)
  }

  /** Waits `ms`, or less when the consumer stops. */
  const pause = (ms: number) =>
    new Promise<void>((resolve) => {
      const timer = setTimeout(resolve, ms)
      wakePull = () => {
        clearTimeout(timer)
        resolve()
      }
    }).finally(() => (wakePull = undefined))

  /** After a failed pull: is the durable still there? If it is gone, declare it again (the stage's own declaration). */
  async function recover(err: unknown, failures: number): Promise<void> {
    let missing = false
    try {
      await opts.nats.jsm.consumers.info(stream, spec.durable)
    } catch (infoErr) {
      missing = isNotFound(infoErr)
    }
    if (missing) {
      setPulling(false)
      log.error({ err, stream, durable: spec.durable }, 'the durable consumer is gone: the stage is not pulling; declaring it again')
      // not at once: a durable removed on purpose (a migration, an operator) is not fought over in a tight loop
      await pause(Math.min(PULL_BACKOFF_MAX_MS, Math.max(1_000, backoffMs(failures))))
      if (stopping) return
      try {
        await opts.nats.jsm.consumers.add(stream, declaration)
        consumer = undefined
        log.warn({ stream, durable: spec.durable }, 'durable consumer declared again')
        return
      } catch (addErr) {
        log.error({ err: addErr, stream, durable: spec.durable }, 'could not declare the durable consumer again (is the stream there?); will retry')
      }
    } else if (failures >= PULL_FAILURES_NOT_READY) {
      if (health.pulling) log.error({ err, failures }, 'pulls keep failing: the stage is not pulling; will retry')
      setPulling(false)
    } else {
      log.warn({ err, failures }, 'pull failed; will retry')
    }
    await pause(Math.min(PULL_BACKOFF_MAX_MS, backoffMs(failures)))
  }

  // docs/architecture.md §8.1: one pull request at a time, bounded by messages (a byte bound
  // in nats.js 3 stalls when the next message is larger than what is left of it) and by a short expiry. A stop
  // makes no new request and keeps receiving until the one in flight ends, giving back at once what it
  // delivers, so no delivery is left to a subscription that is gone. The server's max_ack_pending (topology.ts,
  // by messages) bounds what piles up in the queue.
  const pulling = (async () => {
    let failures = 0
    while (!stopping) {
      if (opts.nats.nc.isClosed()) {
        // nothing will ever answer again: say so rather than retry for ever (a process whose connection was closed is ending)
        setPulling(false)
        log.error('the NATS connection is closed: the stage no longer pulls')
        break
      }
      try {
        consumer ??= await opts.nats.js.consumers.get(stream, spec.durable)
        const messages = await consumer.fetch({ max_messages: opts.batchSize, expires: expiresMs, idle_heartbeat: heartbeatMs })
        // nats.js ends a fetch after two missed heartbeats by dropping its subscription while the server may still
        // deliver to it (a busy event loop misses them easily, and what is delivered then waits for the ack wait):
        // its monitor is switched off, and the watchdog below ends a request the server has gone silent on, only
        // when it finds it silent twice in a row (after a blocked event loop, timers run before the socket is read).
        // The field is not nats.js's documented API: test/integration/pull-heartbeats.test.ts fails if it goes.
        const internals = messages as unknown as { monitor?: { cancel(): void } | null }
        internals.monitor?.cancel()
        internals.monitor = null
        let lastSeen = Date.now()
        const overAt = lastSeen + expiresMs + PULL_EXPIRY_GRACE_MS
        let lapsed = false as false | 'silent' | 'expired'
        let strikes = 0
        const watchdog = setInterval(() => {
          const now = Date.now()
          if (now - lastSeen < PULL_SILENT_MS && (now < overAt || now - lastSeen < quietMs)) return void (strikes = 0)
          // twice in a row: after an event loop blocked that long, timers run before the socket is read
          if (++strikes < 2) return
          lapsed = now - lastSeen >= PULL_SILENT_MS ? 'silent' : 'expired'
          void messages.close()
        }, PULL_WATCH_MS)
        watchdog.unref()
        // the server's heartbeats and answers (statuses) are signs of life too: a request blocked by max_ack_pending
        // is still heartbeated; the iterator ends with the fetch (an error of the fetch is the message loop's to report)
        void (async () => {
          for await (const _ of messages.status()) lastSeen = Date.now()
        })().catch(() => undefined)
        try {
          for await (const m of messages) {
            lastSeen = Date.now()
            // never leave the loop early: that would end the subscription while the request may still deliver
            if (stopping) m.nak(giveBackDelayMs)
            else {
              queue.push(m)
              wake?.()
            }
            if (!health.pulling) {
              setPulling(true)
              log.info('pulling again')
            }
          }
        } finally {
          clearInterval(watchdog)
        }
        // past its expiry and answered by nothing: the server's race above, a request like any other (no failure)
        if (lapsed === 'expired') log.debug({ expiresMs }, 'a pull request ended at its expiry without the server saying so; pulling again')
        if (lapsed === 'silent') throw new HphError('pull_unanswered', `the server sent nothing on a pull request for ${PULL_SILENT_MS} ms (no message, heartbeat or answer)`)
        // the request was answered (filled, or expired on the server): the consumer is there and serving
        if (!health.pulling) log.info('pulling again')
        failures = 0
        setPulling(true)
      } catch (err) {
        if (stopping) break
        failures++
        await recover(err, failures)
      }
    }
  })()

  // a batch that takes long (a slow database, a large recompute) keeps what it holds, and what waits behind
  // it, from being redelivered to another instance meanwhile
  const working = setInterval(
    () => {
      if (abandoned) return
      for (const m of queue) m.working()
      for (const b of inHand) for (const m of b) m.working()
    },
    Math.max(1_000, (opts.ackWaitS * 1000) / 3),
  )
  working.unref()

  const concurrency = Math.max(1, handler.concurrency ?? 1)
  const handling = (async () => {
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
  const done = Promise.all([pulling, handling]).then(() => clearInterval(working))

  let stopped: Promise<StopReport> | undefined
  return {
    stage: handler.stage,
    done,
    health: () => health,
    stop() {
      // docs/architecture.md §8.1: drain in-flight pulls, ack nothing uncommitted; the deadline counts from here
      stopped ??= (async () => {
        let timer: NodeJS.Timeout | undefined
        const deadline = new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), opts.shutdownTimeoutMs)))
        stopping = true
        wake?.()
        wakePull?.()
        // pulled but never handled: give them back now rather than after ack_wait
        nakAll(queue.splice(0), giveBackDelayMs)
        const outcome = await Promise.race([done.then(() => 'drained' as const), deadline])
        clearTimeout(timer)
        if (outcome === 'drained') {
          log.info('stopped')
          return { stage: handler.stage, givenBack: 0 }
        }
        // a batch still in hand may yet commit, or never: give it back now and never ack it (its effect is
        // idempotent, so a late commit is harmless; the redelivery makes it whole)
        abandoned = true
        clearInterval(working)
        const given = [...inHand].flat()
        nakAll(given)
        log.warn({ timeoutMs: opts.shutdownTimeoutMs, messages: given.length }, 'batch in hand did not finish before the deadline; given back unacked for redelivery')
        return { stage: handler.stage, givenBack: given.length }
      })()
      return stopped
    },
  }
}
