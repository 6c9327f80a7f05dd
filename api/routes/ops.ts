import type { FastifyInstance } from 'fastify'

export interface Probe {
  name: string
  check(): Promise<void>
}

/** GET /healthz (process up) and GET /readyz (every dependency reachable). */
export function opsRoutes(app: FastifyInstance, probes: readonly Probe[]): void {
  app.get('/healthz', async () => ({ status: 'ok' }))
  app.get('/readyz', async (_req, reply) => {
    const results = await Promise.all(
      probes.map(async (p) => {
        try {
          await p.check()
          return [p.name, 'ok'] as const
        } catch (err) {
          return [p.name, (err as Error).message || 'failed'] as const
        }
      }),
    )
    const ready = results.every(([, r]) => r === 'ok')
    return reply.status(ready ? 200 : 503).send({ ready, checks: Object.fromEntries(results) })
  })
}
