import { describe, expect, it } from 'vitest'
import { HttpError } from '../../../api/errors.ts'
import { parseRange } from '../../../api/routes/read.ts'

// api/routes/read.ts: the from/to of every read, checked before PostgreSQL sees them.

const refusal = (q: { from?: unknown; to?: unknown }) => {
  try {
    parseRange(q)
  } catch (err) {
    if (err instanceof HttpError) return { status: err.status, code: err.code, paths: err.details.map((d) => d.path) }
    throw err
  }
  return undefined
}

describe('parseRange', () => {
  it('takes inclusive local dates up to 366 days apart', () => {
    expect(parseRange({ from: '2026-03-01', to: '2026-03-31' })).toEqual({ from: '2026-03-01', to: '2026-03-31' })
    expect(parseRange({ from: '2024-01-01', to: '2024-12-31' })).toEqual({ from: '2024-01-01', to: '2024-12-31' })
    expect(parseRange({ from: '0001-01-01', to: '0001-01-02' })).toEqual({ from: '0001-01-01', to: '0001-01-02' })
  })

  it('refuses with a 400 naming the field a date PostgreSQL cannot hold, a date that does not exist, and a range too long', () => {
    // year 0: a date to JavaScript, not to PostgreSQL (it answered 500 before)
    expect(refusal({ from: '0000-01-01', to: '0000-01-02' })).toEqual({ status: 400, code: 'invalid_range', paths: ['from', 'to'] })
    expect(refusal({ from: '0000-12-31', to: '2026-01-01' })).toEqual({ status: 400, code: 'invalid_range', paths: ['from'] })
    expect(refusal({ from: '2026-02-30', to: '2026-03-01' })).toEqual({ status: 400, code: 'invalid_range', paths: ['from'] })
    expect(refusal({ from: '2026-01-01', to: '2027-01-03' })).toEqual({ status: 400, code: 'invalid_range', paths: ['to'] })
    expect(refusal({ from: '2026-01-02', to: '2026-01-01' })).toEqual({ status: 400, code: 'invalid_range', paths: ['to'] })
  })
})
