import { readdir, readFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import type { Kysely } from 'kysely'
import { sql } from 'kysely'
import type { Nats } from '../streams/connect.ts'

/** One line saying on what the figures were measured. */
export async function machine(nats: Nats, db: Kysely<never>): Promise<string> {
  const cpu = cpus()
  const pg = (await sql<{ v: string }>`select current_setting('server_version') as v`.execute(db)).rows[0]?.v
  return `${cpu.length} × ${cpu[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}, nats-server ${nats.nc.info?.version}, PostgreSQL ${pg}; a fresh page of memory costs ${freshPageMicros().toFixed(1)} µs`
}

/**
 * What the first touch of a page of memory costs here (µs): the page fault that maps it. Every process of the pipeline
 * takes fresh pages all the time (a message's buffers, an event's text above V8's 128 KiB large-object bound, a heap
 * that grows after a collection gave pages back), and a virtual machine may make that fault many times dearer (11 µs
 * on one of ours, docs/benchmarks.md §1): the figures of two machines compare only with this beside them.
 */
export function freshPageMicros(pages = 4096): number {
  const page = 4096
  const once = () => {
    const t = performance.now()
    const b = Buffer.allocUnsafeSlow(pages * page)
    for (let i = 0; i < b.length; i += page) b[i] = 1
    return ((performance.now() - t) * 1000) / pages
  }
  // the median of three: one reading alone moved threefold on a busy machine
  return [once(), once(), once()].sort((x, y) => x - y)[1]!
}

export function rate(n: number, ms: number): string {
  return `${Math.round((n / ms) * 1000).toLocaleString('en-US')}/s`
}

export function percentile(sorted: readonly number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? NaN
}

/** CPU seconds one process (all its threads) has used so far (Linux /proc); NaN when it is gone or elsewhere. */
export async function cpuSecondsOfPid(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
  // fields 14 and 15 of /proc/<pid>/stat (utime, stime), in clock ticks (100 a second on Linux)
  const f = (/^\d+ \(.*\) (.*)$/s.exec(stat)?.[1] ?? '').split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

/** CPU seconds used so far by the processes of these names and the children they reaped (Linux /proc; undefined elsewhere). */
export async function cpuSecondsOf(names: readonly string[]): Promise<Record<string, number> | undefined> {
  try {
    const out: Record<string, number> = Object.fromEntries(names.map((n) => [n, 0]))
    for (const pid of await readdir('/proc')) {
      if (!/^\d+$/.test(pid)) continue
      const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '')
      const m = /^\d+ \((.*)\) (.*)$/s.exec(stat)
      if (!m || !names.includes(m[1] as string)) continue
      const f = (m[2] as string).split(' ')
      // fields 14–17 of /proc/<pid>/stat (utime, stime, and cutime, cstime: children waited for, such as the
      // backends and parallel workers PostgreSQL's postmaster has reaped), in clock ticks (100 a second on Linux)
      out[m[1] as string]! += (Number(f[11]) + Number(f[12]) + Number(f[13]) + Number(f[14])) / 100
    }
    return out
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw err
  }
}

/** The machine's CPU time so far, busy and in all, in clock ticks summed over its cores (Linux /proc/stat; undefined elsewhere). */
export async function machineTicks(): Promise<{ busy: number; total: number } | undefined> {
  const line = (await readFile('/proc/stat', 'utf8').catch(() => '')).split('\n')[0] ?? ''
  if (!line.startsWith('cpu ')) return undefined
  // user nice system idle iowait irq softirq steal …: idle and iowait are the time no process could use
  const f = line.trim().split(/\s+/).slice(1, 9).map(Number)
  const total = f.reduce((a, b) => a + b, 0)
  return { busy: total - (f[3] ?? 0) - (f[4] ?? 0), total }
}

/** How busy the machine was between two readings, as a share of all its cores. */
export function busyShare(a: { busy: number; total: number } | undefined, b: { busy: number; total: number } | undefined): string {
  return a && b && b.total > a.total ? `${(((b.busy - a.busy) / (b.total - a.total)) * 100).toFixed(0)} %` : 'unknown'
}
