import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import type { Nats } from '../../streams/connect.ts'
import { readStatus } from '../../streams/status.ts'

// docs/operating.md §10: the operator page's figures — exactly what `hph status --json` prints (streams/status.ts
// reads both), plus the time they were read so the page can turn ack floors into throughput.

export interface StatusRouteDeps {
  nats: Nats
  db: Kysely<Database>
  prefix: string
}

export function statusRoutes(app: FastifyInstance, deps: StatusRouteDeps): void {
  app.get('/v1/ops/status', { config: { admin: 'only an admin token reads the pipeline status' } }, async () => {
    const at = Date.now()
    return { at: new Date(at).toISOString(), ...(await readStatus(deps.prefix, deps.nats, deps.db, at)) }
  })
}
