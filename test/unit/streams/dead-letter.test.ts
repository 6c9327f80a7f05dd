import { describe, expect, it } from 'vitest'
import { boundedLetter } from '../../../streams/dead-letter.ts'
import { encodeEnvelope, envelope } from '../../../streams/envelope.ts'
import { DeadLetter, DLQ_TYPE } from '../../../streams/schemas.ts'

const base = {
  stage: 'samples-writer',
  kind: 'poison' as const,
  reason: 'event does not match its schema',
  details: [{ path: 'data.samples.0.value', problem: 'Too big' }],
  originalStream: 'HPH_SAMPLES',
  originalSubject: 'hph.samples.v2.hrv_sdnn.ana',
  originalSeq: 42,
  deliveries: 1,
  firstSeen: '2026-03-01T00:00:00.000Z',
  headers: {},
}
const e = { id: 'dlq-1', source: 'samples-writer', subject: 'ana' }
const bytes = (l: DeadLetter) => encodeEnvelope(envelope({ ...e, type: DLQ_TYPE, data: l })).length

describe('boundedLetter', () => {
  it('carries the original bytes when the letter fits', () => {
    const payload = new TextEncoder().encode('{"not":"valid"}')
    const l = boundedLetter(base, payload, 64 * 1024, e)
    expect(Buffer.from(l.payloadBase64, 'base64').toString()).toBe('{"not":"valid"}')
    expect(DeadLetter.parse(l)).toEqual(l)
  })

  it('names the original stream and sequence instead when the bytes would not fit', () => {
    const payload = new Uint8Array(300 * 1024).fill(65)
    const l = boundedLetter(base, payload, 256 * 1024, e)
    expect(l).toMatchObject({ payloadBase64: '', originalStream: 'HPH_SAMPLES', originalSeq: 42 })
    expect(bytes(l)).toBeLessThanOrEqual(256 * 1024)
  })

  it('cuts a reason and details too large for any message, saying how many were left out', () => {
    const details = Array.from({ length: 10_000 }, (_, i) => ({ path: `data.samples.${i}.utcOffsetMinutes`, problem: `Too big: ${'x'.repeat(500)}` }))
    const l = boundedLetter({ ...base, reason: 'r'.repeat(1_000_000), details }, new Uint8Array(10), 16 * 1024, e)
    expect(bytes(l)).toBeLessThanOrEqual(16 * 1024)
    expect(l.reason.length).toBeLessThanOrEqual(2_000)
    expect(l.details.at(-1)?.problem).toMatch(/^… and \d+ more problems left out/)
    expect(l.details.length).toBeGreaterThan(1)
    expect(DeadLetter.parse(l)).toEqual(l)
  })
})
