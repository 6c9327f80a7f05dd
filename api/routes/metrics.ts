import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Metrics } from '../metrics.ts'

/** GET /metrics (Prometheus text) and the HTTP duration of every request this server answers. */
export function metricsRoutes(app: FastifyInstance, metrics: Metrics): void {
  app.addHook('onResponse', async (req, reply) => {
    // the route pattern, never the URL (it holds user ids); every unmatched URL shares one label
    metrics.observeHttp({ method: req.method, route: req.routeOptions.url ?? 'unmatched', statusCode: reply.statusCode, seconds: reply.elapsedTime / 1000 })
  })
  const schema = {
    tags: ['operating'],
    summary: 'Prometheus metrics',
    response: { 200: { description: 'the Prometheus text format', content: { 'text/plain': { schema: z.string() } } } },
  }
  app.get('/metrics', { schema }, async (_req, reply) => reply.type(metrics.registry.contentType).send(await metrics.registry.metrics()))
}
