import { describe, expect, it } from 'vitest'
import { isStaleTestStream, STALE_MS } from '../helpers/sweep.ts'

// The integration tests' globalSetup deletes only what a test environment made, and only long after it was made.
describe('isStaleTestStream', () => {
  const now = Date.parse('2026-12-03T12:00:00Z')
  const old = new Date(now - STALE_MS - 1000).toISOString()
  const recent = new Date(now - STALE_MS + 60_000).toISOString()
  it("is a test environment's stream made more than STALE_MS ago", () => {
    expect(isStaleTestStream('T838CC75D97_INGEST', old, now)).toBe(true)
    expect(isStaleTestStream('T838CC75D97_DLQ', old, now)).toBe(true)
  })
  it("is not a stream of a run still going, nor anyone else's stream", () => {
    expect(isStaleTestStream('T838CC75D97_INGEST', recent, now)).toBe(false)
    for (const name of ['HPH_INGEST', 'HPH_SAMPLES', '$SMOKE_INGEST', 'T838CC75D9_INGEST', 'TX38CC75D97_INGEST', 'ORDERS', 'T838CC75D97']) {
      expect(isStaleTestStream(name, old, now), name).toBe(false)
    }
    expect(isStaleTestStream('T838CC75D97_INGEST', 'not a date', now)).toBe(false)
  })
})
