import { cpus, totalmem } from 'node:os'
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Nats } from '../streams/connect.ts'

/** One line saying on what the figures were measured. */
export async function machine(nats: Nats, db: Kysely<never>): Promise<string> {
  const cpu = cpus()
  const pg = (await sql<{ v: string }>`select current_setting('server_version') as v`.execute(db)).rows[0]?.v
  return `${cpu.length} × ${cpu[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, nats-server ${nats.nc.info?.version}, PostgreSQL ${pg}`
}

export function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}
