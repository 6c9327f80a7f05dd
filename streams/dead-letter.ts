import { encodeEnvelope, envelope } from './envelope.ts'
import { DLQ_TYPE, type DeadLetter } from './schemas.ts'

// docs/architecture.md §6: a dead letter always fits one message. It carries the original's
// bytes only when they fit; otherwise it names the original stream and sequence, and its reason and details
// are cut short (saying how many were left out) rather than making a letter NATS would refuse.

const MAX_REASON_CHARS = 2_000
const MAX_PROBLEM_CHARS = 300
const MAX_DETAILS = 200

const clip = (text: string, max: number) => (text.length <= max ? text : `${text.slice(0, max - 1)}…`)

function withDetails(letter: DeadLetter, keep: number): DeadLetter {
  const all = letter.details
  if (all.length <= keep) return letter
  const kept = all.slice(0, keep)
  return { ...letter, details: [...kept, { path: '', problem: `… and ${all.length - keep} more problems left out of this letter` }] }
}

/**
 * The letter as it is published: `payload` (the original's bytes) included only when the whole event stays
 * within `limitBytes`; details and reason cut down until it does. `eventId`, `source` and `subject` are the
 * envelope's, for measuring it as it will be sent.
 */
export function boundedLetter(
  letter: Omit<DeadLetter, 'payloadBase64'>,
  payload: Uint8Array | undefined,
  limitBytes: number,
  e: { id: string; source: string; subject: string },
): DeadLetter {
  const size = (l: DeadLetter) => encodeEnvelope(envelope({ id: e.id, type: DLQ_TYPE, source: e.source, subject: e.subject, data: l, time: '2000-01-01T00:00:00.000Z' })).length
  let bare: DeadLetter = {
    ...letter,
    reason: clip(letter.reason, MAX_REASON_CHARS),
    details: letter.details.map((d) => ({ path: clip(d.path, MAX_PROBLEM_CHARS), problem: clip(d.problem, MAX_PROBLEM_CHARS) })),
    payloadBase64: '',
  }
  for (let keep = Math.min(bare.details.length, MAX_DETAILS); ; keep = Math.floor(keep / 2)) {
    const candidate = withDetails(bare, keep)
    if (size(candidate) <= limitBytes || keep === 0) {
      bare = candidate
      break
    }
  }
  if (size(bare) > limitBytes) bare = { ...bare, headers: {}, reason: clip(bare.reason, 200) }
  if (payload === undefined) return bare
  const withPayload = { ...bare, payloadBase64: Buffer.from(payload).toString('base64') }
  return size(withPayload) <= limitBytes ? withPayload : bare
}
