import { sql, type Kysely } from 'kysely'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { demoBatches, type DemoBatch } from '../../cli/demo-data.ts'
import { prepare, STAGES, waitForIdle } from '../../pipeline/start.ts'
import { createDb, type Database } from '../../schema/db.ts'
import { STREAM_KEYS, streamName } from '../../streams/subjects.ts'
import { CONSUMERS } from '../../streams/topology.ts'
import { eventually, testEnv, type TestEnv } from '../helpers/env.ts'
import { referenceInsights, snapshotDifferences, snapshotInsights } from '../helpers/insights.ts'
import { startNatsCluster, type NatsCluster } from '../helpers/nats-server.ts'
import { alive, killAll, showOnFailure, spawnHph, type Child } from '../helpers/processes.ts'
import { freePort } from '../helpers/proxy.ts'
import { canonicalSamples } from '../helpers/samples.ts'

// docs/operating.md §8: the pipeline on a three-node JetStream cluster (R3 streams), two instances of every stage as
// separate `hph worker` processes; one NATS node and one instance of each stage SIGKILLed mid-run and
// started again. Correctness comes from idempotence and the insight version guard, not from luck.

const USERS = 60
const NIGHTS = 100 // ≈ 17 samples a night: ≈ 100k samples
const FIRST_NIGHT = '2026-01-01'
const BATCH = 200
const WORKER_STAGES = ['api', ...STAGES] as const

let cluster: NatsCluster
let env: TestEnv
let db: Kysely<Database>
const children: Child[] = []

beforeAll(async () => {
  cluster = await startNatsCluster()
  // deliveries a killed instance held come back after ack_wait: short, so the test stays short
  env = await testEnv({ NATS_URL: cluster.url, HPH_STREAM_REPLICAS: '3', HPH_ACK_WAIT_S: '15' })
  db = createDb(env.config, { max: 2 }).db
  // a new cluster elects its JetStream meta leader a moment after the nodes are up
  await eventually(
    async () => {
      try {
        await prepare(env.config, env.log, env.nats, db)
        return true
      } catch {
        return false
      }
    },
    60_000,
    'the cluster to take the streams',
  )
})

afterAll(async () => {
  await killAll(children)
  await db?.destroy()
  await env?.cleanup()
  await cluster?.close()
})

interface Instance {
  stage: (typeof WORKER_STAGES)[number]
  child: Child
  /** the api's base URL (the api instances only) */
  url?: string
  port: number
}

async function startInstance(stage: Instance['stage'], port?: number): Promise<Instance> {
  const p = port ?? (await freePort())
  const child = spawnHph(
    ['worker', stage],
    {
      NATS_URL: cluster.url,
      DATABASE_URL: env.config.DATABASE_URL,
      HPH_PREFIX: env.config.HPH_PREFIX,
      HPH_STREAM_REPLICAS: '3',
      HPH_ACK_WAIT_S: '15',
      HOST: '127.0.0.1',
      PORT: String(p),
    },
    children,
  )
  showOnFailure(child, `hph worker ${stage} on :${p}`)
  const url = `http://127.0.0.1:${p}`
  await eventually(
    async () => {
      if (!alive(child)) throw new Error(`hph worker ${stage} exited:\n${child.output()}`)
      return (await fetch(`${url}/readyz`).catch(() => undefined))?.status === 200
    },
    60_000,
    `hph worker ${stage} to be ready`,
  )
  return { stage, child, port: p, ...(stage === 'api' ? { url } : {}) }
}

/** Posts a batch to one api instance after another until one accepts it (the same batchId every time). */
async function postUntilAccepted(apis: () => Instance[], userId: string, batch: DemoBatch, attempt = 0): Promise<void> {
  const list = apis()
  const api = list[attempt % list.length]
  try {
    const res = await fetch(`${api?.url}/v1/users/${userId}/samples`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(batch),
      signal: AbortSignal.timeout(20_000),
    })
    await res.body?.cancel()
    if (res.status === 202 || res.status === 200) return
    if (res.status < 500) throw new Error(`batch ${batch.batchId} refused with ${res.status}`)
  } catch (err) {
    if ((err as Error).message.includes('refused with')) throw err
    // the instance was killed, or NATS lost a node under the publish: try again, elsewhere
  }
  if (attempt > 200) throw new Error(`batch ${batch.batchId} was never accepted`)
  await new Promise((r) => setTimeout(r, 250))
  return postUntilAccepted(apis, userId, batch, attempt + 1)
}

describe('a three-node JetStream cluster, two instances of every stage', () => {
  it('loses no sample and doubles none while a NATS node and an instance of each stage are SIGKILLed mid-run; every insight table as a single run computes it', async () => {
    // R3 for real: every stream has three replicas, each on its own node
    for (const key of STREAM_KEYS) {
      const info = await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, key))
      expect(info.config.num_replicas).toBe(3)
      expect((info.cluster?.replicas ?? []).length).toBe(2)
    }

    const instances = await Promise.all(WORKER_STAGES.flatMap((stage) => [startInstance(stage), startInstance(stage)]))
    const apis = () => instances.filter((i) => i.stage === 'api' && alive(i.child))

    const postings = Array.from({ length: USERS }, (_, u) =>
      demoBatches({ userId: `u${u}`, nights: NIGHTS, firstNight: FIRST_NIGHT, seed: u + 1, batchSize: BATCH }).map((batch) => ({ userId: `u${u}`, batch })),
    ).flat()
    const expected = canonicalSamples(USERS, NIGHTS, FIRST_NIGHT)
    expect(expected.length).toBeGreaterThan(95_000)

    // the chaos, a third of the way in: node 2 of NATS and the first instance of every stage, killed
    const chaosAt = Math.floor(postings.length / 3)
    let chaos: Promise<void> | undefined
    let next = 0
    const poster = async () => {
      while (next < postings.length) {
        const i = next++
        if (i === chaosAt) {
          chaos = (async () => {
            const victims = WORKER_STAGES.map((stage) => instances.findIndex((x) => x.stage === stage))
            await Promise.all([
              cluster.nodes[1]!.stop('SIGKILL'),
              ...victims.map(async (v) => {
                instances[v]!.child.child.kill('SIGKILL')
                await instances[v]!.child.exit
              }),
            ])
            await new Promise((r) => setTimeout(r, 3000))
            await cluster.nodes[1]!.start()
            await Promise.all(victims.map(async (v) => (instances[v] = await startInstance(instances[v]!.stage, instances[v]!.port))))
          })()
        }
        const { userId, batch } = postings[i]!
        await postUntilAccepted(apis, userId, batch)
      }
    }
    const t0 = Date.now()
    await Promise.all(Array.from({ length: 6 }, poster))
    await chaos
    const posted = Date.now()
    await waitForIdle(env.nats, env.config.HPH_PREFIX, { timeoutMs: 300_000, settleMs: 1000 })
    console.info(
      `cluster test: ${expected.length} samples in ${postings.length} batches posted in ${(posted - t0) / 1000} s, every stage idle ${(Date.now() - posted) / 1000} s later`,
    )

    // every sample once, nothing else
    const rows = (await sql<{ n: number; ids: number }>`select count(*)::int as n, count(distinct sample_id)::int as ids from samples`.execute(db)).rows[0]!
    expect(rows).toEqual({ n: expected.length, ids: expected.length })
    const ids = new Set((await sql<{ id: string }>`select sample_id as id from samples`.execute(db)).rows.map((r) => r.id))
    expect(expected.filter((s) => !ids.has(s.id))).toEqual([])
    // no message was poison
    expect((await env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, 'DLQ'))).state.messages).toBe(0)
    // the insight tables: what the pure computation over the samples gives (test/integration/insights.test.ts
    // shows a single in-order run gives exactly that)
    expect(snapshotDifferences(await snapshotInsights(db, { versions: false }), await referenceInsights(db), 1e-9)).toEqual([])
    const readiness = (await sql<{ n: number }>`select count(*)::int as n from readiness_daily`.execute(db)).rows[0]!.n
    expect(readiness).toBeGreaterThan(USERS * (NIGHTS - 10))
  }, 600_000)

  it('a stage started while the cluster has no JetStream leader waits for one, and starts once there is one', async () => {
    // two nodes of three away: the one left has no quorum, and answers JetStream's API with nothing or a 503
    await Promise.all([cluster.nodes[1]!.stop('SIGKILL'), cluster.nodes[2]!.stop('SIGKILL')])
    // the node left still answers for a few seconds, until it finds its peers gone: a stage started then starts as
    // usual (seen: ready, with nothing to say). So the stage is started once what it asks first goes unanswered,
    // twice in a row (not a request lost while this test's own connection moved to that node)
    const { stream, durable } = CONSUMERS.normalize
    let unanswered = 0
    await eventually(
      async () => {
        const answered = await env.nats.jsm.consumers.info(streamName(env.config.HPH_PREFIX, stream), durable).then(
          () => true,
          () => false,
        )
        unanswered = answered ? 0 : unanswered + 1
        return unanswered >= 2
      },
      60_000,
      'the node left to stop answering for JetStream',
    )
    const port = await freePort()
    const child = spawnHph(
      ['worker', 'normalize'],
      { NATS_URL: cluster.url, DATABASE_URL: env.config.DATABASE_URL, HPH_PREFIX: env.config.HPH_PREFIX, HOST: '127.0.0.1', PORT: String(port) },
      children,
    )
    showOnFailure(child, `hph worker normalize on :${port} (started without a leader)`)
    let restarted = false
    try {
      await eventually(async () => child.output().includes('JetStream does not answer yet'), 60_000, 'the worker to say it waits for JetStream')
      expect(alive(child)).toBe(true)
      await Promise.all([cluster.nodes[1]!.start(), cluster.nodes[2]!.start()])
      restarted = true
      await eventually(
        async () => {
          if (!alive(child)) throw new Error(`hph worker normalize exited:\n${child.output()}`)
          return (await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined))?.status === 200
        },
        90_000,
        'the worker to be ready once the cluster has a leader',
      )
    } finally {
      child.child.kill('SIGTERM')
      await child.exit
      if (!restarted) await Promise.all([cluster.nodes[1]!.start(), cluster.nodes[2]!.start()])
      // the cluster answers again before the file's cleanup deletes its streams
      await eventually(
        async () => {
          try {
            // every stream with a leader and its replicas current: what deleting it needs
            const infos = await Promise.all(STREAM_KEYS.map((key) => env.nats.jsm.streams.info(streamName(env.config.HPH_PREFIX, key))))
            return infos.every((i) => i.cluster?.leader !== undefined && (i.cluster.replicas ?? []).length === 2 && (i.cluster.replicas ?? []).every((r) => r.current))
          } catch {
            return false
          }
        },
        60_000,
        'the cluster to answer again',
      )
    }
  }, 300_000)
})
