import type { FastifyInstance } from 'fastify'
import { isErasing, type ErasingDeps } from '../privacy/erasing.ts'
import { isGuarded } from './access.ts'
import { HttpError } from './errors.ts'

// docs/operating.md §7: writes for a user under erasure are refused (409 erasure_in_progress), as data
// arriving while the erase runs would outlive it. After the access hook, so only an authorised writer learns it.

const WRITES = new Set(['POST', 'PUT', 'PATCH'])

export function installErasingGuard(app: FastifyInstance, deps: ErasingDeps): void {
  app.addHook('onRequest', async (req) => {
    if (!WRITES.has(req.method) || !isGuarded(req)) return
    const userId = (req.params as { userId?: unknown } | undefined)?.userId
    if (typeof userId !== 'string') return
    await refuseWhileErasing(deps, userId)()
  })
}

/** A check that throws 409 erasure_in_progress while the user is being erased (at a request's start, before each batch of an upload). */
export function refuseWhileErasing(deps: ErasingDeps, userId: string): () => Promise<void> {
  return async () => {
    if (await isErasing(deps, userId)) {
      throw new HttpError(409, 'erasure_in_progress', `${userId} is being erased; writes for this user are refused until the erase ends`, [], { 'retry-after': '30' })
    }
  }
}
