import { connectNats } from '../../streams/connect.ts'

// vitest's globalSetup of the integration tests. Every test environment's streams (testEnv: prefix `t` and 10 hex
// digits) reserve their max_bytes on the shared nats-server's store until they are deleted; a run that crashed
// before its cleanup leaves them reserved, and enough of them make JetStream refuse every new stream
// ("insufficient storage resources available"). What such a run left more than STALE_MS ago is deleted first:
// no test file runs that long.

const TEST_STREAM = /^T[0-9A-F]{10}_[A-Z]+$/
export const STALE_MS = 2 * 3_600_000

/** A stream a test environment made (or the bench, which uses them too), created more than STALE_MS before `now`. */
export function isStaleTestStream(name: string, created: string, now: number): boolean {
  const at = Date.parse(created)
  return TEST_STREAM.test(name) && Number.isFinite(at) && now - at > STALE_MS
}

export default async function sweepStaleTestStreams(): Promise<void> {
  const nats = await connectNats({ NATS_URL: process.env.NATS_URL ?? 'nats://127.0.0.1:4222' }, 'test:sweep').catch(() => undefined)
  // no server: the tests say so themselves
  if (!nats) return
  const { nc, jsm } = nats
  try {
    const stale: string[] = []
    for await (const s of jsm.streams.list()) if (isStaleTestStream(s.config.name, s.created, Date.now())) stale.push(s.config.name)
    for (const name of stale) await jsm.streams.delete(name).catch(() => false)
    if (stale.length > 0) process.stderr.write(`deleted ${stale.length} streams left by test runs more than ${STALE_MS / 3_600_000} h ago\n`)
  } finally {
    await nc.close()
  }
}
