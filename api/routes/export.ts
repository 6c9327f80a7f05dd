import { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { exportNdjson, type ExportDeps } from '../../privacy/export.ts'
import { checkUserId } from './samples.ts'

/** GET /v1/users/:userId/export: everything held about the user, streamed as NDJSON (privacy/export.ts). */
export function exportRoutes(app: FastifyInstance, deps: ExportDeps): void {
  app.get<{ Params: { userId: string } }>('/v1/users/:userId/export', async (req, reply) => {
    // authenticated and authorised for this user by the access hook (api/access.ts); audited by api/audit.ts
    const userId = checkUserId(req.params.userId)
    return reply
      .type('application/x-ndjson; charset=utf-8')
      .header('content-disposition', `attachment; filename="hph-export-${userId}.ndjson"`)
      .header('cache-control', 'no-store')
      .send(Readable.from(exportNdjson(deps, userId)))
  })
}
