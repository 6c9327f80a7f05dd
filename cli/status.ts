import { createDb } from '../schema/db.ts'
import { connectNats } from '../streams/connect.ts'
import { readStatus, type Status } from '../streams/status.ts'
import type { CommandContext } from './context.ts'
import { table } from './table.ts'

// `hph status`: what an operator looks at first — streams, consumers and their lag, the DLQ, the database and
// the rows of its output tables, as streams/status.ts reads them.

const message = (err: unknown) => (err instanceof Error ? err.message : String(err))

const fmtBytes = (n: number) =>
  n < 1024 ? `${n} B` : n < 1024 ** 2 ? `${(n / 1024).toFixed(1)} KiB` : n < 1024 ** 3 ? `${(n / 1024 ** 2).toFixed(1)} MiB` : `${(n / 1024 ** 3).toFixed(2)} GiB`

export function renderStatus(s: Status): string {
  const out: string[] = []
  out.push(`NATS: ${s.nats.reachable ? `reachable${s.nats.server ? ` (nats-server ${s.nats.server})` : ''}` : `UNREACHABLE — ${s.nats.error ?? ''}`}`)
  out.push(`PostgreSQL: ${s.database.reachable ? `reachable, migration ${s.database.migration ?? '(none applied)'}` : `UNREACHABLE — ${s.database.error ?? ''}`}`)
  out.push(`DLQ depth: ${s.dlq.depth ?? 'unknown'}`, '', 'streams')
  out.push(
    table(
      s.streams.map((x) => ({
        stream: x.stream,
        messages: x.messages,
        bytes: fmtBytes(x.bytes),
        'first seq': x.firstSeq,
        'last seq': x.lastSeq,
        'last message': x.lastTime ?? '-',
      })),
    ),
  )
  out.push('consumers')
  out.push(
    table(
      s.consumers.map((c) => ({
        consumer: `${c.stream}/${c.durable}`,
        pending: c.pending,
        'ack pending': c.ackPending,
        redelivered: c.redelivered,
        'ack floor': c.ackFloor,
        'lag msgs': c.lagMessages,
        'lag s': c.lagSeconds === null ? '?' : Number(c.lagSeconds.toFixed(1)),
      })),
    ),
  )
  out.push('tables (rows as PostgreSQL estimates them; written: rows inserted or updated since its statistics were reset)')
  out.push(table(s.tables.map((t) => ({ table: t.table, rows: t.rows, written: t.written }))))
  return out.join('\n')
}

/** `hph status [--json]`: exit 0 when NATS and PostgreSQL are reachable, 1 otherwise. */
export async function runStatus({ config, flags }: Pick<CommandContext, 'config' | 'flags'>): Promise<number> {
  const nats = await connectNats(config, 'hph:status', { maxReconnectAttempts: 0 }, { waitMs: 0 }).catch((err: unknown) => new Error(message(err)))
  const { db } = createDb(config, { max: 1 })
  try {
    const s = await readStatus(config.HPH_PREFIX, nats, db)
    process.stdout.write(flags.json ? `${JSON.stringify(s, null, 2)}\n` : renderStatus(s))
    return s.nats.reachable && s.database.reachable ? 0 : 1
  } finally {
    if (!(nats instanceof Error)) await nats.nc.close()
    await db.destroy()
  }
}
