import type { FastifyInstance } from 'fastify'
import type { Kysely } from 'kysely'
import type { Database } from '../../schema/db.ts'
import type { Nats } from '../../streams/connect.ts'
import { readStatus } from '../../streams/status.ts'
import { z } from 'zod'
import { errors, GUARDED_ERRORS, v1 } from '../openapi.ts'

// docs/operating.md §10: the operator page's figures — exactly what `hph status --json` prints (streams/status.ts
// reads both), plus the time they were read so the page can turn ack floors into throughput.

export interface StatusRouteDeps {
  nats: Nats
  db: Kysely<Database>
  prefix: string
}

const schema = {
  ...v1('operating'),
  summary: "the pipeline's status (admin only): what `hph status --json` prints, and when it was read",
  response: {
    200: z
      .looseObject({
        at: z.string(),
        nats: z.looseObject({ reachable: z.boolean() }),
        streams: z.array(z.looseObject({ stream: z.string(), messages: z.number() })),
        consumers: z.array(z.looseObject({ stream: z.string(), durable: z.string(), lagMessages: z.number() })),
        tables: z.array(z.looseObject({ table: z.string(), rows: z.number() })),
        dlq: z.object({ depth: z.number().nullable() }),
        database: z.looseObject({ reachable: z.boolean() }),
      })
      .describe('streams, consumers and their lag, the DLQ, the database and the output tables'),
    ...errors(...GUARDED_ERRORS),
  },
}

export function statusRoutes(app: FastifyInstance, deps: StatusRouteDeps): void {
  app.get('/v1/ops/status', { config: { admin: 'only an admin token reads the pipeline status' }, schema }, async () => {
    const at = Date.now()
    return { at: new Date(at).toISOString(), ...(await readStatus(deps.prefix, deps.nats, deps.db, at)) }
  })
}
