import { createWriteStream } from 'node:fs'
import { userInfo } from 'node:os'
import { Readable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { userRefSecret } from '../config.ts'
import { eraseUser } from '../privacy/erase.ts'
import { exportNdjson } from '../privacy/export.ts'
import { closeDb, createDb } from '../schema/db.ts'
import { publishAudit } from '../streams/audit.ts'
import { connectNats } from '../streams/connect.ts'
import { UserId, type AuditRecord } from '../streams/schemas.ts'
import { jetStreamWait, type CommandContext } from './context.ts'

// `hph user export <id> [--out <file>]` and `hph user erase <id>` (docs/operating.md §7); both audited.

const USAGE = 'usage: hph user export <userId> [--out <file>] | hph user erase <userId>'

/** The operator at the keyboard: the audit names the OS account that ran the command. */
function cliActor(): string {
  try {
    return `cli:${userInfo().username}`
  } catch {
    // no passwd entry for this uid (a container): the uid names the operator instead
    return `cli:uid-${process.getuid?.() ?? 'unknown'}`
  }
}

export async function runUser({ config, log, args, flags }: CommandContext): Promise<number> {
  const [verb, id] = args
  const userId = UserId.safeParse(id)
  if ((verb !== 'export' && verb !== 'erase') || !userId.success) {
    process.stderr.write(`${USAGE}\n`)
    return 2
  }
  const nats = await connectNats(config, `hph:user-${verb}`, {}, jetStreamWait(`user ${verb}`))
  const { db, pool } = createDb(config, { max: 2 })
  const deps = { nats, db, prefix: config.HPH_PREFIX, schema: config.HPH_DB_SCHEMA }
  const audit = (outcome: AuditRecord['outcome']) =>
    publishAudit(
      nats,
      config.HPH_PREFIX,
      {
        action: verb,
        actor: cliActor(),
        actorKind: 'admin',
        userId: userId.data,
        operation: `hph user ${verb}`,
        outcome,
        at: new Date().toISOString(),
      },
      { userRefSecret: userRefSecret(config) },
    )
  try {
    if (verb === 'export') {
      const out = typeof flags.out === 'string' ? createWriteStream(flags.out) : process.stdout
      try {
        await pipeline(Readable.from(exportNdjson(deps, userId.data)), out, { end: out !== process.stdout })
      } catch (err) {
        await audit('failed')
        throw err
      }
      await audit('ok')
      return 0
    }
    let report
    try {
      report = await eraseUser({ ...deps, log, userRefSecret: userRefSecret(config) }, userId.data, { lockTimeoutMs: config.HPH_ERASE_LOCK_TIMEOUT_MS })
    } catch (err) {
      await audit('failed')
      throw err
    }
    await audit(report.complete ? 'ok' : 'failed')
    process.stdout.write(`${JSON.stringify({ userId: userId.data, ...report })}\n`)
    return report.complete ? 0 : 1
  } finally {
    await nats.nc.close()
    await closeDb(db, pool)
  }
}
