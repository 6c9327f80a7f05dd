import type { FastifyInstance } from 'fastify'
import { z } from 'zod'

export interface Probe {
  name: string
  /** resolves when the part is ready; throws (a ProbeFailure to say why in a word) when it is not */
  check(): Promise<void>
}

/** A probe's answer in a fixed word (`not pulling`, `migrations pending`): /readyz shows it, never an error's text. */
export class ProbeFailure extends Error {
  readonly code = 'not_ready'
  constructor(readonly status: string) {
    super(status)
  }
}

/** Each check's budget when none is given: /readyz answers within a few seconds even when a dependency hangs. */
const DEFAULT_TIMEOUT_MS = 2_000

/**
 * GET /healthz (process up) and GET /readyz (docs/architecture.md §8.2): every check at once,
 * each answered within `timeoutMs` or counted as `timeout`; the answer names the parts that are not ready with a
 * fixed word, and the error itself goes to the log (once per change, not per probe).
 */
export function opsRoutes(app: FastifyInstance, probes: readonly Probe[], opts: { timeoutMs?: number } = {}): void {
  const timeoutMs = opts.timeoutMs ?? DEFAULT_TIMEOUT_MS
  const last = new Map<string, string>()
  const healthz = { tags: ['operating'], summary: 'the process is up', response: { 200: z.object({ status: z.literal('ok') }).describe('up') } }
  const Ready = z.object({
    ready: z.boolean(),
    checks: z.record(z.string(), z.string()).describe('each part: `ok`, or a word for what is wrong (`timeout`, `unavailable`, `not pulling`…)'),
  })
  const readyz = {
    tags: ['operating'],
    summary: 'every dependency reachable (NATS, PostgreSQL, the stages)',
    response: { 200: Ready.describe('ready'), 503: Ready.describe('not ready: `checks` names which part') },
  }
  app.get('/healthz', { schema: healthz }, async () => ({ status: 'ok' }))
  app.get('/readyz', { schema: readyz }, async (req, reply) => {
    const results = await Promise.all(
      probes.map(async (p) => {
        let timer: NodeJS.Timeout | undefined
        const late = new Promise<'timeout'>((resolve) => (timer = setTimeout(resolve, timeoutMs, 'timeout')))
        const checked = p.check().then(
          () => ({ status: 'ok' }),
          (err: unknown) => ({ status: err instanceof ProbeFailure ? err.status : 'unavailable', err }),
        )
        const r = await Promise.race([checked, late]).finally(() => clearTimeout(timer))
        const outcome = r === 'timeout' ? { status: 'timeout' as string, err: undefined } : { err: undefined, ...r }
        if (last.get(p.name) !== outcome.status) {
          last.set(p.name, outcome.status)
          if (outcome.status !== 'ok') req.log.warn({ check: p.name, status: outcome.status, ...(outcome.err instanceof ProbeFailure ? {} : { err: outcome.err }) }, 'not ready')
          else req.log.info({ check: p.name }, 'ready again')
        }
        return [p.name, outcome.status] as const
      }),
    )
    const ready = results.every(([, r]) => r === 'ok')
    return reply.status(ready ? 200 : 503).send({ ready, checks: Object.fromEntries(results) })
  })
}
