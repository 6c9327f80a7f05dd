import type { FastifyInstance } from 'fastify'
import { eraseUser, type EraseDeps, type EraseOptions } from '../../privacy/erase.ts'
import { checkUserId } from './samples.ts'

/**
 * DELETE /v1/users/:userId (admin only): erases the user from every stream and table (privacy/erase.ts). 200 with
 * the report when complete; 503 with it (`complete: false`, and why) when it could not finish — calling again is safe.
 */
export function eraseRoutes(app: FastifyInstance, deps: EraseDeps & { options?: EraseOptions }): void {
  app.delete<{ Params: { userId: string } }>('/v1/users/:userId', { config: { admin: true } }, async (req, reply) => {
    // admin checked by the access hook (route config `admin`); the erase event (failed on a 503) is written by api/audit.ts
    const userId = checkUserId(req.params.userId)
    const report = await eraseUser(deps, userId, deps.options)
    if (!report.complete) void reply.header('retry-after', '30')
    return reply.status(report.complete ? 200 : 503).send({ userId, ...report })
  })
}
