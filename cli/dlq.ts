import { headers as natsHeaders } from '@nats-io/transport-node'
import type { Nats } from '../streams/connect.ts'
import { connectNats } from '../streams/connect.ts'
import { decodeJson } from '../streams/envelope.ts'
import { DeadLetter } from '../streams/schemas.ts'
import { streamName } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import { jetStreamWait, type CommandContext } from './context.ts'
import { table } from './table.ts'

// `hph dlq list|redrive` (docs/operating.md §5): what the stages could not process, and sending it back once fixed.

export interface DlqEntry {
  /** the sequence of the dead letter in HPH_DLQ: what `--id` names */
  id: number
  stage: string
  kind: DeadLetter['kind']
  reason: string
  subject: string
  originalStream: string
  originalSeq: number
  firstSeen: string
  deliveries: number
  letter: DeadLetter
}

/** Every dead letter (of one stage), oldest first, read with an ordered consumer (nothing is acknowledged or removed). */
export async function listDlq(nats: Nats, prefix: string, stage?: string): Promise<DlqEntry[]> {
  const stream = streamName(prefix, 'DLQ')
  const { state } = await nats.jsm.streams.info(stream)
  if (state.messages === 0) return []
  const consumer = await nats.js.consumers.get(stream, { filter_subjects: stage ? `${prefix}.dlq.${stage}.>` : `${prefix}.dlq.>` })
  const out: DlqEntry[] = []
  for (;;) {
    let got = 0
    let more = true
    for await (const m of await consumer.fetch({ max_messages: 500, expires: 1000 })) {
      got++
      more = m.info.pending > 0
      const parsed = DeadLetter.safeParse((decodeJson(m.data) as { data?: unknown }).data)
      if (!parsed.success) continue // not a dead letter of ours: nothing to redrive
      const l = parsed.data
      out.push({
        id: m.seq,
        stage: l.stage,
        kind: l.kind,
        reason: l.reason,
        subject: l.originalSubject,
        originalStream: l.originalStream,
        originalSeq: l.originalSeq,
        firstSeen: l.firstSeen,
        deliveries: l.deliveries,
        letter: l,
      })
      if (!more) break
    }
    if (got === 0 || !more) break
  }
  return out
}

/**
 * Sends a dead letter back to its stage: a poison message is republished, bytes and headers as they were,
 * to its original subject (read back from its stream when the letter could not carry it); a batch with
 * rejected samples is republished from HPH_INGEST. The republish
 * gets a new `Nats-Msg-Id` (the original is inside the duplicate window for a day) while the event keeps
 * its id, so what was already done stays done once. The dead letter is removed once JetStream has the copy.
 */
export async function redrive(nats: Nats, prefix: string, entry: DlqEntry): Promise<void> {
  const l = entry.letter
  let data: Uint8Array
  const h = natsHeaders()
  // a letter without the bytes (they did not fit a message) names the original, which stays in its stream
  if (l.kind === 'rejected_samples' || l.payloadBase64 === '') {
    const original = await nats.jsm.streams.getMessage(l.originalStream, { seq: l.originalSeq })
    if (!original) throw new Error(`dead letter ${entry.id}: ${l.originalStream} no longer holds message ${l.originalSeq}`)
    data = original.data
    for (const [k, vs] of original.header ? [...original.header.keys()].map((k) => [k, original.header.values(k)] as const) : [])
      for (const v of vs) if (k !== 'Nats-Msg-Id') h.append(k, v)
  } else {
    data = Buffer.from(l.payloadBase64, 'base64')
    for (const [k, vs] of Object.entries(l.headers)) for (const v of vs) if (k !== 'Nats-Msg-Id') h.append(k, v)
  }
  await nats.js.publish(l.originalSubject, data, { msgID: `redrive:${prefix}:${entry.id}`, headers: h })
  await nats.jsm.streams.deleteMessage(streamName(prefix, 'DLQ'), entry.id)
}

const USAGE = 'usage: hph dlq list [--stage <stage>] [--json] | hph dlq redrive [--stage <stage>] [--id <n>]'

export async function runDlq({ config, args, flags }: Pick<CommandContext, 'config' | 'args' | 'flags'>): Promise<number> {
  const [verb] = args
  const stage = typeof flags.stage === 'string' ? flags.stage : undefined
  const id = typeof flags.id === 'string' ? Number(flags.id) : undefined
  const stages = [...Object.keys(CONSUMERS)]
  if ((verb !== 'list' && verb !== 'redrive') || (stage !== undefined && !stages.includes(stage)) || (id !== undefined && !Number.isInteger(id))) {
    process.stderr.write(`${USAGE}\n  stages: ${stages.join(', ')}\n`)
    return 2
  }
  const nats = await connectNats(config, 'hph:dlq', { maxReconnectAttempts: 0 }, jetStreamWait('dlq'))
  try {
    const entries = (await listDlq(nats, config.HPH_PREFIX, stage)).filter((e) => id === undefined || e.id === id)
    if (verb === 'list') {
      const rows = entries.map(({ letter: _l, ...e }) => e)
      process.stdout.write(
        flags.json
          ? `${JSON.stringify(rows, null, 2)}\n`
          : table(
              rows.map((e) => ({
                id: e.id,
                stage: e.stage,
                kind: e.kind,
                'first seen': e.firstSeen,
                deliveries: e.deliveries,
                subject: e.subject,
                reason: e.reason.slice(0, 100),
              })),
            ),
      )
      return 0
    }
    if (id !== undefined && entries.length === 0) {
      process.stderr.write(`hph dlq redrive: no dead letter ${id}${stage ? ` of ${stage}` : ''}\n`)
      return 1
    }
    for (const e of entries) {
      await redrive(nats, config.HPH_PREFIX, e)
      process.stdout.write(`redriven ${e.id} (${e.stage}, ${e.kind}) → ${e.subject}\n`)
    }
    process.stdout.write(`${entries.length} dead letter(s) redriven\n`)
    return 0
  } finally {
    await nats.nc.close()
  }
}
