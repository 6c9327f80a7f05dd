import { stderrBar } from './progress.ts'
import { PROJECTIONS, rebuildProjection, type ProjectionName, type RebuildProgress, type RebuildResult } from '../projections/rebuild.ts'
import { recomputeAll } from '../processors/insights/recompute.ts'
import { closeDb, createDb } from '../schema/db.ts'
import { connectNats } from '../streams/connect.ts'
import { streamName } from '../streams/subjects.ts'
import { CONSUMERS } from '../streams/topology.ts'
import { jetStreamWait, type CommandContext } from './context.ts'

// `hph replay <stream> --into <projection> [--from-seq N | --since T]` and `hph rebuild <projection>`
// (docs/operating.md §4): the projection is rebuilt into shadow tables and swapped in; readers never wait
// longer than the swap's drop-and-rename.

/** Which stream feeds which projection: replaying another one into it is a mistake worth naming. */
const SOURCE: Record<ProjectionName, string> = { samples: 'samples', insights: 'insights' }

const REPLAY_USAGE = 'usage: hph replay <samples|insights> --into <samples|insights> [--from-seq N | --since <ISO time>]'
const REBUILD_USAGE = 'usage: hph rebuild <samples|insights> | hph rebuild insights --recompute'

function progressBar(
  enabled: boolean,
  unit = 'messages',
): { update(p: Pick<RebuildProgress, 'phase' | 'done' | 'total'> | { phase: string; done: number; total: number }): void; stop(): void } {
  if (!enabled) return { update: () => undefined, stop: () => undefined }
  const bar = stderrBar(`{phase} |{bar}| {percentage}% {value}/{total} ${unit} | {rate}/s | ETA {eta_formatted}`)
  const t0 = performance.now()
  let started = false
  return {
    update(p) {
      const rate = Math.round(p.done / Math.max(0.001, (performance.now() - t0) / 1000))
      if (!started) {
        bar.start(Math.max(1, p.total), p.done, { phase: p.phase, rate })
        started = true
      } else {
        bar.setTotal(Math.max(1, p.total))
        bar.update(p.done, { phase: p.phase, rate })
      }
    },
    stop: () => bar.stop(),
  }
}

function report(r: RebuildResult, json: boolean): string {
  if (json) return `${JSON.stringify(r, null, 2)}\n`
  const rate = Math.round(r.messages / Math.max(r.seconds, 0.001))
  return (
    [
      `rebuilt ${r.projection} from ${r.stream} seq ${r.fromSeq}..${r.throughSeq}: ${r.messages} messages in ${r.seconds.toFixed(1)} s (${rate}/s)`,
      r.skipped ? `skipped ${r.skipped} undecodable message(s) (they are in the DLQ)` : undefined,
      `swapped in: readers held ${r.swapPauseMs.toFixed(1)} ms, live writer held ${r.swapMs.toFixed(1)} ms`,
    ]
      .filter(Boolean)
      .join('\n') + '\n'
  )
}

async function run(ctx: Pick<CommandContext, 'config' | 'log' | 'flags'>, projection: ProjectionName, from: { fromSeq?: number; since?: Date }): Promise<number> {
  const { config, log, flags } = ctx
  const nats = await connectNats(config, `hph:rebuild:${projection}`, {}, jetStreamWait('rebuild'))
  // the shadow tables need no durability before the swap (a crash abandons them), and the swap's own
  // commit is synchronous: its WAL flush covers every write before it
  const { db, pool } = createDb(config, { max: 6, settings: { synchronous_commit: 'off' } })
  const bar = progressBar(!flags.json && !flags.quiet)
  try {
    const r = await rebuildProjection({ nats, db, pool, prefix: config.HPH_PREFIX, schema: config.HPH_DB_SCHEMA, log, projection, ...from, onProgress: bar.update })
    bar.stop()
    process.stdout.write(report(r, Boolean(flags.json)))
    return 0
  } finally {
    bar.stop()
    await nats.nc.close()
    await closeDb(db, pool)
  }
}

export async function runRebuild(ctx: CommandContext): Promise<number> {
  const [projection] = ctx.args
  if (!PROJECTIONS.includes(projection as ProjectionName) || ctx.args.length !== 1 || (ctx.flags.recompute && projection !== 'insights')) {
    process.stderr.write(`${REBUILD_USAGE}\n`)
    return 2
  }
  if (ctx.flags.recompute) return recompute(ctx)
  return run(ctx, projection as ProjectionName, {})
}

/** How long the insights-writer may show no progress before `--recompute` stops waiting for it. */
const WRITER_PATIENCE_MS = 15_000

/** `hph rebuild insights --recompute`: publish every user's full recomputation, then follow the insights-writer applying it. */
async function recompute({ config, log, flags }: CommandContext): Promise<number> {
  const nats = await connectNats(config, 'hph:recompute', {}, jetStreamWait('rebuild'))
  const { pool, db } = createDb(config, { max: 4 })
  const show = !flags.json && !flags.quiet
  try {
    const bar = progressBar(show, 'users')
    const runId = typeof flags.id === 'string' ? flags.id : new Date().toISOString()
    const r = await recomputeAll({
      runId,
      pool,
      nats,
      prefix: config.HPH_PREFIX,
      schema: config.HPH_DB_SCHEMA,
      eventMaxBytes: config.HPH_EVENT_MAX_BYTES,
      log,
      onProgress: (g) => bar.update({ phase: 'recompute', done: g.users, total: g.total }),
    })
    bar.stop()
    // the live insights-writer applies what was published; follow it until it has caught up
    const stream = streamName(config.HPH_PREFIX, 'INSIGHTS')
    const durable = CONSUMERS['insights-writer'].durable
    const apply = progressBar(show, 'events')
    let left = Infinity
    let lastMove = Date.now()
    let start: number | undefined
    for (;;) {
      const info = await nats.jsm.consumers.info(stream, durable)
      const now = info.num_pending + info.num_ack_pending
      start ??= now
      if (now < left) lastMove = Date.now()
      left = now
      apply.update({ phase: 'apply', done: start - now, total: Math.max(1, start) })
      if (now === 0 || Date.now() - lastMove > WRITER_PATIENCE_MS) break
      await new Promise((res) => setTimeout(res, 250))
    }
    apply.stop()
    const applied = left === 0
    if (flags.json) process.stdout.write(`${JSON.stringify({ runId, ...r, applied }, null, 2)}\n`)
    else {
      process.stdout.write(
        `recomputed ${r.users} user(s) from samples in ${r.seconds.toFixed(1)} s: ${r.rows} rows (${r.tombstones} extra tombstone(s)) in ${r.events} insight events published to ${stream}\n`,
      )
      process.stdout.write(
        applied
          ? 'the insights-writer has applied them\n'
          : `${left} event(s) not applied yet: the insights-writer is not running or is slow (start \`hph up\` or \`hph worker insights-writer\`); nothing is lost, they wait in ${stream}\n`,
      )
    }
    return 0
  } finally {
    await nats.nc.close()
    await closeDb(db, pool)
  }
}

export async function runReplay(ctx: CommandContext): Promise<number> {
  const [stream] = ctx.args
  const into = ctx.flags.into
  if (typeof stream !== 'string' || typeof into !== 'string' || !PROJECTIONS.includes(into as ProjectionName) || ctx.args.length !== 1) {
    process.stderr.write(`${REPLAY_USAGE}\n`)
    return 2
  }
  const projection = into as ProjectionName
  if (stream.toLowerCase().replace(/^hph_/, '') !== SOURCE[projection]) {
    const hint = projection === 'insights' && stream.toLowerCase().endsWith('samples') ? ' (to re-derive insights from samples: hph rebuild insights --recompute)' : ''
    process.stderr.write(`hph replay: ${projection} is built from the ${SOURCE[projection]} stream, not ${stream}${hint}\n`)
    return 2
  }
  const fromSeq = typeof ctx.flags['from-seq'] === 'string' ? Number(ctx.flags['from-seq']) : undefined
  const since = typeof ctx.flags.since === 'string' ? new Date(ctx.flags.since) : undefined
  if (
    (fromSeq !== undefined && !(Number.isInteger(fromSeq) && fromSeq >= 1)) ||
    (since !== undefined && Number.isNaN(since.getTime())) ||
    (fromSeq !== undefined && since !== undefined)
  ) {
    process.stderr.write(`hph replay: --from-seq takes a sequence ≥ 1, --since an ISO time, and only one of them\n${REPLAY_USAGE}\n`)
    return 2
  }
  return run(ctx, projection, { ...(fromSeq !== undefined ? { fromSeq } : {}), ...(since ? { since } : {}) })
}
