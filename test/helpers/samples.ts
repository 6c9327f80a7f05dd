import { demoBatches } from '../../cli/demo-data.ts'
import { normalizeBatch, parseBatchEnvelope, type NormalizedSample } from '../../processors/normalize/healthkit.ts'
import type { Nats } from '../../streams/connect.ts'
import { envelope } from '../../streams/envelope.ts'
import { publishAll, type Outgoing } from '../../streams/publish.ts'
import { SAMPLE_V1_TYPE } from '../../streams/schemas.ts'
import { subjects } from '../../streams/subjects.ts'
import { hashUuid } from '../../streams/ids.ts'
import { sampleEventsOf } from '../../processors/normalize/stage.ts'

/** Canonical samples of `users` demo users with `nights` nights each (≈ 17 samples a night). */
export function canonicalSamples(users: number, nights: number, firstNight = '2026-01-01'): NormalizedSample[] {
  const out: NormalizedSample[] = []
  const now = new Date('2027-01-01T00:00:00Z')
  for (let u = 0; u < users; u++) {
    const userId = `u${u}`
    for (const b of demoBatches({ userId, nights, firstNight, seed: u + 1, batchSize: 1000 })) {
      // an ingest event's id, as the api makes it (one per user and batch; the dates make the demo's batch ids unique)
      const ingestId = hashUuid('ingest', userId, b.batchId, firstNight, nights)
      out.push(...normalizeBatch(parseBatchEnvelope(b, { maxSamples: 10_000 }), { userId, ingestId, now }).samples)
    }
  }
  return out
}

/** At least `n` canonical samples (users of 60 nights each), cut to exactly `n`. */
export function manySamples(n: number): NormalizedSample[] {
  const out: NormalizedSample[] = []
  for (let u = 0; out.length < n; u += 10) out.push(...canonicalSamples(10, 60, '2026-01-01').map((s) => withUser(s, u)))
  return out.slice(0, n)
}

function withUser(s: NormalizedSample, offset: number): NormalizedSample {
  if (offset === 0) return s
  const userId = `u${Number(s.sample.userId.slice(1)) + offset}`
  return { id: hashUuid(s.id, userId), sample: { ...s.sample, userId, ingestId: hashUuid(s.sample.ingestId, userId) } }
}

/** The samples as normalize publishes them: `hph.sample.v2` events per (user, raw batch, metric), ≤ 1000 samples and `maxBytes` each. */
export function sampleEvents(prefix: string, samples: readonly NormalizedSample[], maxBytes = 256 * 1024): Outgoing[] {
  const groups = new Map<string, NormalizedSample[]>()
  for (const s of samples) {
    const key = `${s.sample.userId}\0${s.sample.ingestId}`
    let list = groups.get(key)
    if (!list) groups.set(key, (list = []))
    list.push(s)
  }
  return [...groups.values()].flatMap((list) => {
    const first = (list[0] as NormalizedSample).sample
    return sampleEventsOf(prefix, { userId: first.userId, ingestId: first.ingestId, receivedAt: '2027-01-01T00:00:00.000Z' }, list, maxBytes)
  })
}

/** The samples as the code before `hph.sample.v2` published them: one `hph.sample.v1` event each, on its v1 subject. */
export function legacySampleEvents(prefix: string, samples: readonly NormalizedSample[]): Outgoing[] {
  return samples.map((s) => ({
    subject: subjects.legacy.sample(prefix, s.sample.metric, s.sample.userId),
    event: envelope({ id: s.id, type: SAMPLE_V1_TYPE, source: 'normalize', subject: s.sample.userId, data: s.sample }),
  }))
}

/** Publishes straight into HPH_SAMPLES, in chunks (what normalize would have done). */
export async function fillSamples(nats: Nats, prefix: string, samples: readonly NormalizedSample[], chunk = 5000): Promise<void> {
  const events = sampleEvents(prefix, samples)
  for (let i = 0; i < events.length; i += chunk) await publishAll(nats.js, events.slice(i, i + chunk))
}
