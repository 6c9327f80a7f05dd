import fc from 'fast-check'
import { describe, expect, it } from 'vitest'
import { jsonDepth } from '../../../api/body.ts'
import { ValidationError } from '../../../errors.ts'
import { normalizeBatch, parseBatchEnvelope } from '../../../processors/normalize/healthkit.ts'
import { envelope, encodeEnvelope } from '../../../streams/envelope.ts'
import { Sample } from '../../../streams/schemas.ts'
import { bodyText } from '../../helpers/hostile.ts'

// docs/api.md §9 (input limits): whatever a body holds, the normalizer answers with samples, rejections and
// ignored counts — never an exception other than the envelope's ValidationError, never a polluted prototype.

const ctx = { userId: 'fuzz', ingestId: 'ing-fuzz', now: new Date('2026-03-10T00:00:00Z') }
const MAX_DEPTH = 32

describe('the normalizer under adversarial bodies', () => {
  it('never throws past the envelope check, accounts for every sample, and builds only schema-valid samples (10,000 bodies)', () => {
    let batches = 0
    let accepted = 0
    fc.assert(
      fc.property(bodyText, (text) => {
        // what the API lets through: JSON no deeper than its limit
        if (jsonDepth(text, MAX_DEPTH) > MAX_DEPTH) return
        let body: unknown
        try {
          body = JSON.parse(text)
        } catch (err) {
          expect(err).toBeInstanceOf(SyntaxError)
          return
        }
        let batch
        try {
          batch = parseBatchEnvelope(body, { maxSamples: 10_000 })
        } catch (err) {
          expect(err).toBeInstanceOf(ValidationError)
          expect((err as ValidationError).details.length).toBeGreaterThan(0)
          return
        }
        batches++
        const r = normalizeBatch(batch, ctx)
        accepted += r.accepted
        expect(r.accepted + r.ignored + r.rejected.length).toBe(batch.samples.length)
        expect(r.samples).toHaveLength(r.accepted)
        expect(new Set(r.rejected.map((x) => x.index)).size).toBe(r.rejected.length)
        for (const s of r.samples) expect(Sample.safeParse(s.sample).success).toBe(true)
        // the checks-only pass of the API counts the same
        const counts = normalizeBatch(batch, ctx, { build: false })
        expect([counts.accepted, counts.ignored, counts.rejected]).toEqual([r.accepted, r.ignored, r.rejected])
        // the raw event the API stores can always be written
        expect(() => encodeEnvelope(envelope({ id: 'x', type: 'hph.ingest.v1', source: 'api', subject: 'fuzz', data: body }))).not.toThrow()
        expect(({} as Record<string, unknown>).polluted).toBeUndefined()
      }),
      { numRuns: 10_000 },
    )
    // the generator is worth its runs only if many bodies get past the envelope
    expect(batches).toBeGreaterThan(1000)
    expect(accepted).toBeGreaterThan(200)
  })

  it('measures JSON depth as a look at every character does (property)', () => {
    // the plain reading jsonDepth's string skipping replaced: a backslash in a string skips the next character
    const reference = (text: string, limit = Number.POSITIVE_INFINITY): number => {
      let depth = 0
      let max = 0
      let inString = false
      for (let i = 0; i < text.length; i++) {
        const c = text.charCodeAt(i)
        if (inString) {
          if (c === 0x5c) i++
          else if (c === 0x22) inString = false
        } else if (c === 0x22) inString = true
        else if (c === 0x5b || c === 0x7b) {
          if (++depth > max) {
            max = depth
            if (max > limit) return max
          }
        } else if (c === 0x5d || c === 0x7d) depth--
      }
      return max
    }
    // texts of the characters that matter (quotes, backslashes, brackets) among others, valid JSON or not
    const tricky = fc.array(fc.constantFrom('"', '\\', '[', ']', '{', '}', 'a', ':', ','), { maxLength: 60 }).map((cs) => cs.join(''))
    const texts = fc.oneof(tricky, fc.json(), bodyText)
    fc.assert(
      fc.property(texts, fc.integer({ min: 0, max: 8 }), (text, limit) => {
        expect(jsonDepth(text)).toBe(reference(text))
        expect(jsonDepth(text, limit)).toBe(reference(text, limit))
      }),
      { numRuns: 20_000 },
    )
  })

  it('measures JSON depth outside strings only', () => {
    expect(jsonDepth('{"a":[1,{"b":"[[[["}]}')).toBe(3)
    expect(jsonDepth('"{{{{"')).toBe(0)
    expect(jsonDepth('["\\"[[["]')).toBe(1)
    expect(jsonDepth('[[[[[[', 3)).toBe(4)
  })
})
