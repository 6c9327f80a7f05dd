import { cpus, totalmem } from 'node:os'
import { demoBeats, prng } from '../cli/demo-data.ts'
import { normalizeBatch, parseBatchEnvelope } from '../processors/normalize/healthkit.ts'
import { rmssdOfSeries } from '../processors/normalize/beats.ts'

// `npm run bench beats`: the cost of deriving RMSSD from one 60-beat heartbeat series (docs/insights.md §2a):
// the derivation alone, and the whole of normalize for a heartbeat-series sample (checks, ids).
// Pure CPU, no NATS or PostgreSQL: the machine line names the CPU only.

const SERIES = 2000
const ROUNDS = 20

/** µs per call of `work` over `n` items, the median of ROUNDS rounds (a loaded machine spoils a few) */
function perCall(n: number, work: (i: number) => unknown): number {
  const rounds: number[] = []
  for (let r = 0; r < ROUNDS; r++) {
    const t0 = performance.now()
    for (let i = 0; i < n; i++) work(i)
    rounds.push(((performance.now() - t0) * 1000) / n)
  }
  return rounds.sort((a, b) => a - b)[ROUNDS >> 1]!
}

export async function beatsBench(): Promise<void> {
  const cpu = cpus()
  process.stdout.write(`machine: ${cpu.length} × ${cpu[0]?.model.trim()}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, node ${process.version}\n`)
  const rnd = prng(7)
  const series = Array.from({ length: SERIES }, () => demoBeats(rnd, 1000, 40).slice(0, 60))
  const times = series.map((beats) => Float64Array.from(beats, (b) => b.t * 1000))
  const derive = perCall(SERIES, (i) => rmssdOfSeries({ times: times[i]!, resolutionMs: 0 }))
  const samples = series.map((beats, i) => ({
    type: 'HKDataTypeIdentifierHeartbeatSeries',
    uuid: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
    sourceName: 'Apple Watch',
    startDate: '2026-03-01T02:00:00-08:00',
    endDate: '2026-03-01T02:01:00-08:00',
    beats,
  }))
  const batch = parseBatchEnvelope({ samples }, { maxSamples: SERIES })
  const ctx = { userId: 'bench', ingestId: 'bench', now: new Date('2026-03-02T00:00:00Z') }
  const normalize = perCall(1, () => normalizeBatch(batch, ctx)) / SERIES
  process.stdout.write(`derive one 60-beat series: ${derive.toFixed(2)} µs (rmssdOfSeries, median of ${ROUNDS} rounds of ${SERIES})\n`)
  process.stdout.write(`normalize one 60-beat heartbeat-series sample (checks, derivation, id): ${normalize.toFixed(2)} µs\n`)
}
