import { describe, expect, it } from 'vitest'
import { namesUser } from '../../../privacy/erase.ts'

describe('namesUser (which unnamed dead letters an erase takes)', () => {
  it("finds the id as a whole token: a JSON value, a subject's last token", () => {
    expect(namesUser('{"userId":"ana","x":1}', 'ana')).toBe(true)
    expect(namesUser('"originalSubject":"hph.samples.v1.hrv_sdnn.ana"', 'ana')).toBe(true)
    expect(namesUser('ana', 'ana')).toBe(true)
  })

  it("never takes another user's letter because one id is inside another, or inside a word", () => {
    expect(namesUser('{"userId":"ana"}', 'a')).toBe(false)
    expect(namesUser('{"userId":"ana-2"}', 'ana')).toBe(false)
    expect(namesUser('{"userId":"bana_na"}', 'ana')).toBe(false)
    expect(namesUser('{"reason":"data is not JSON"}', 'a')).toBe(false)
  })

  it("reads an id with a regular expression's special characters as itself", () => {
    expect(namesUser('{"userId":"axb"}', 'a.b')).toBe(false)
    expect(namesUser('{"userId":"a.b"}', 'a.b')).toBe(true)
  })
})
