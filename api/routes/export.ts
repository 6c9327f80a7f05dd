import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { exportNdjson, type ExportDeps } from '../../privacy/export.ts'
import { z } from 'zod'
import { errors, GUARDED_ERRORS, UserParams, v1 } from '../openapi.ts'
import { checkUserId } from './samples.ts'

const schema = {
  ...v1('users'),
  summary: 'everything held about the user (raw batches, samples, every insight row), one JSON object a line',
  params: UserParams,
  response: {
    200: { description: 'NDJSON, streamed', content: { 'application/x-ndjson': { schema: z.string().describe('one JSON object a line, each naming what it is') } } },
    ...errors(...GUARDED_ERRORS),
  },
}

/** GET /v1/users/:userId/export: everything held about the user, streamed as NDJSON (privacy/export.ts). */
export function exportRoutes(app: FastifyInstance, deps: ExportDeps): void {
  app.get<{ Params: { userId: string } }>('/v1/users/:userId/export', { schema }, async (req, reply) => {
    // authenticated and authorised for this user by the access hook (api/access.ts); audited by api/audit.ts
    const userId = checkUserId(req.params.userId)
    return reply
      .type('application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="hph-export-${userId}.ndjson"`)
      .header('cache-control', 'no-store')
      .send(Readable.from(exportNdjson(deps, userId)))
  })
}
