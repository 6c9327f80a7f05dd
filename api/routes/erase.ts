import type { FastifyInstance } from 'fastify'
import { eraseUser, type EraseDeps, type EraseOptions } from '../../privacy/erase.ts'
import { z } from 'zod'
import { UserId } from '../../streams/schemas.ts'
import { ErrorBody, errors, GUARDED_ERRORS, UserParams, v1 } from '../openapi.ts'
import { checkUserId } from './samples.ts'

const EraseReport = z.object({
  userId: UserId,
  purged: z.record(z.string(), z.number().int()).describe('messages removed, per stream'),
  deleted: z.record(z.string(), z.number().int()).describe('rows deleted, per table'),
  rounds: z.number().int(),
  complete: z.boolean().describe('false when the erasure could not finish (answered 503): call again'),
  problem: z.string().optional().describe('why it is not complete, when it is not'),
})
const schema = {
  ...v1('users'),
  summary: 'erase the user from every stream and table (admin only; waits for it; calling again is safe)',
  params: UserParams,
  response: {
    200: EraseReport.describe('the erasure report: complete'),
    ...errors(...GUARDED_ERRORS),
    503: z.union([EraseReport, ErrorBody]).describe('the erasure could not finish (the report, `complete` false: call again), or a dependency is away'),
  },
}

/**
 * DELETE /v1/users/:userId (admin only): erases the user from every stream and table (privacy/erase.ts). 200 with
 * the report when complete; 503 with it (`complete: false`, and why) when it could not finish — calling again is safe.
 */
export function eraseRoutes(app: FastifyInstance, deps: EraseDeps & { options?: EraseOptions }): void {
  app.delete<{ Params: { userId: string } }>('/v1/users/:userId', { config: { admin: true }, schema }, async (req, reply) => {
    // admin checked by the access hook (route config `admin`); the erase event (failed on a 503) is written by api/audit.ts
    const userId = checkUserId(req.params.userId)
    const report = await eraseUser(deps, userId, deps.options)
    if (!report.complete) void reply.header('retry-after', '30')
    return reply.status(report.complete ? 200 : 503).send({ userId, ...report })
  })
}
