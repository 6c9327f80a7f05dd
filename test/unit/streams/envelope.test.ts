import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { arrayJson, encodeEnvelope, encodeEnvelopeWithField, encodeEnvelopeWithPayload, envelope, hashHexOfPieces, hashHexWithArray, jsonParts } from '../../../streams/envelope.ts'
import { hashHex } from '../../../streams/ids.ts'

const event = (data: Record<string, unknown>) => envelope({ id: 'e-1', type: 'hph.ingest.v1', source: 'cli', subject: 'ana', data, time: '2026-03-01T00:00:00.000Z' })

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

  it("writes the same bytes from the text in pieces (JsonPieces), whose hash is the whole text's", () => {
    fc.assert(
      fc.property(fc.jsonValue(), fc.array(fc.nat(), { maxLength: 4 }), (payload, cuts) => {
        const e = event({ userId: 'ana', receivedAt: '2026-03-01T00:00:00.000Z', payload, batchId: 'b' })
        const text = JSON.stringify(payload)
        const at = [0, ...cuts.map((c) => c % (text.length + 1)).sort((a, b) => a - b), text.length]
        const pieces = at.slice(1).map((end, i) => text.slice(at[i], end))
        expect(Buffer.from(encodeEnvelopeWithPayload(e, { pieces })).toString()).toBe(Buffer.from(encodeEnvelope(e)).toString())
        expect(hashHexOfPieces({ pieces })).toBe(hashHex(text))
      }),
      { numRuns: 300 },
    )
  })

  it('is right when another field holds the text that stands for the payload', () => {
    const payload = { samples: [{ type: 'x' }] }
    // the mark encodeEnvelopeWithField puts in the field's place while it stringifies the rest
    for (const userId of ['\u0000field\u0000', 'a\u0000field\u0000b']) {
      const e = event({ userId, payload })
      expect(JSON.parse(Buffer.from(encodeEnvelopeWithPayload(e, JSON.stringify(payload))).toString())).toEqual(e)
      expect(Buffer.from(encodeEnvelopeWithPayload(e, JSON.stringify(payload)))).toEqual(Buffer.from(encodeEnvelope(e)))
    }
  })
})

describe('encodeEnvelopeWithField with the JSON of each item', () => {
  it("writes encodeEnvelope's bytes, however long the array (its pieces never joined into one string)", () => {
    fc.assert(
      fc.property(fc.array(fc.jsonValue(), { maxLength: 30 }), fc.integer({ min: 0, max: 3 }), (rows, widen) => {
        // widened so that some arrays span several of the encoder's 32K-character pieces
        const items = rows.map((r, i) => (i % 2 === 0 && widen > 0 ? { r, pad: 'é'.repeat(widen * 9000) } : r))
        const e = event({ userId: 'ana', rows: items })
        const [part] = jsonParts(items, 1000, Number.MAX_SAFE_INTEGER)
        if (!part) return
        expect(Buffer.from(encodeEnvelopeWithField(e, 'rows', part)).toString()).toBe(Buffer.from(encodeEnvelope(e)).toString())
        expect(arrayJson(part.texts)).toBe(JSON.stringify(items))
        expect(hashHexWithArray(['insights', '', 'ana', 'daily'], part)).toBe(hashHex('insights', '', 'ana', 'daily', arrayJson(part.texts)))
      }),
      { numRuns: 200 },
    )
  })
})
