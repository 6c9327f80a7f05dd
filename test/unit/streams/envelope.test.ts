import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { encodeEnvelope, encodeEnvelopeWithPayload, envelope } from '../../../streams/envelope.ts'

const event = (data: Record<string, unknown>) =>
  envelope({ id: 'e-1', type: 'hph.ingest.v1', source: 'cli', subject: 'ana', data, time: '2026-03-01T00:00:00.000Z' })

describe('encodeEnvelopeWithPayload', () => {
  it("writes encodeEnvelope's bytes, the payload's JSON text in its place", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.string(), (payload, userId) => {
        const e = event({ userId, receivedAt: '2026-03-01T00:00:00.000Z', payload, batchId: 'b' })
        expect(Buffer.from(encodeEnvelopeWithPayload(e, JSON.stringify(payload))).toString()).toBe(Buffer.from(encodeEnvelope(e)).toString())
      }),
      { numRuns: 300 },
    )
  })

  it('is right when another field holds the text that stands for the payload', () => {
    const payload = { samples: [{ type: 'x' }] }
    for (const userId of ['\u0000payload\u0000', 'a\u0000payload\u0000b']) {
      const e = event({ userId, payload })
      expect(JSON.parse(Buffer.from(encodeEnvelopeWithPayload(e, JSON.stringify(payload))).toString())).toEqual(e)
      expect(Buffer.from(encodeEnvelopeWithPayload(e, JSON.stringify(payload)))).toEqual(Buffer.from(encodeEnvelope(e)))
    }
  })
})
