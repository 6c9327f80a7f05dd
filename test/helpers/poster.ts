import type { DemoBatch } from '../../cli/demo-data.ts'

// Test-only: a client posting batches one after the other, as a phone would, through outages and restarts.

const POST_TIMEOUT_MS = 20_000

export interface Attempt {
  at: number
  ms: number
  /** the HTTP status, or 0 when no answer came */
  status: number
  body?: { error?: string; message?: string; details?: unknown[]; eventId?: string; accepted?: number }
  error?: string
}

/**
 * Posts `batches` one after the other (to `target`, or where it says at each attempt), as a client would: a batch that is not answered 200/202 is sent again
 * (same batchId) until it is. `stop()` lets the batch being sent finish, so every batch ever sent ends accepted.
 */
export function startPoster(target: string | (() => string), batches: ReadonlyArray<{ userId: string; batch: DemoBatch }>, opts: { gapMs?: number } = {}) {
  /** by batchId: its event id, how many samples it carried, when it was answered */
  const accepted = new Map<string, { eventId: string; accepted: number; at: number }>()
  const attempts: Attempt[] = []
  let stopping = false
  const done = (async () => {
    for (const { userId, batch } of batches) {
      if (stopping) return
      for (;;) {
        const at = Date.now()
        try {
          const url = typeof target === 'string' ? target : target()
          const res = await fetch(`${url}/v1/users/${userId}/samples`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify(batch),
            signal: AbortSignal.timeout(POST_TIMEOUT_MS),
          })
          const body = (await res.json()) as NonNullable<Attempt['body']>
          attempts.push({ at, ms: Date.now() - at, status: res.status, body })
          if (res.status === 200 || res.status === 202) {
            accepted.set(batch.batchId, { eventId: String(body.eventId), accepted: Number(body.accepted), at: Date.now() })
            break
          }
        } catch (err) {
          attempts.push({ at, ms: Date.now() - at, status: 0, error: `${(err as Error).name}: ${(err as Error).message}` })
        }
        await new Promise((r) => setTimeout(r, 300))
      }
      await new Promise((r) => setTimeout(r, opts.gapMs ?? 150))
    }
  })()
  return {
    accepted,
    attempts,
    async stop() {
      stopping = true
      await done
    },
  }
}
