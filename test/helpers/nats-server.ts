import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { jetstreamManager } from '@nats-io/jetstream'
import { connect } from '@nats-io/transport-node'
import { freePort } from './proxy.ts'

// Test-only: private nats-servers (JetStream, file store in a temporary directory) that a test may
// stop or kill and start again on the same port and store, without touching the server other tests share.

export interface NatsServer {
  url: string
  /** stops the server (SIGTERM, or `signal`) and waits for it to exit; its store stays */
  stop(signal?: NodeJS.Signals): Promise<void>
  /** starts it again on the same port and store; resolves once it accepts clients */
  start(): Promise<void>
  /** stops it and removes its store */
  close(): Promise<void>
}

/** A nats-server process started with `args` and `env`, resolved once it says it is ready. */
function managedServer(url: string, args: string[], env: Record<string, string>, storeDir: string, bin = 'nats-server'): NatsServer & { ready: Promise<void> } {
  let proc: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  async function start(): Promise<void> {
    const child = spawn(bin, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] })
    proc = child
    exited = new Promise((resolve) => child.once('exit', () => resolve()))
    let log = ''
    let ready = false
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not become ready within 20 s:\n${log}`)), 20_000)
      // read its log until it is ready, then keep draining the pipe
      child.stderr?.on('data', (d: Buffer) => {
        if (ready) return
        log += d.toString()
        if (log.includes('Server is ready')) {
          ready = true
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`nats-server exited with ${code} before it was ready:\n${log}`))
      })
    })
  }

  async function stop(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill(signal)
    await exited
    proc = undefined
  }

  return {
    url,
    ready: start(),
    start,
    stop,
    async close() {
      await stop()
      await rm(storeDir, { recursive: true, force: true })
    },
  }
}

/**
 * `maxPayload`: the server's max_payload (a config file setting: nats-server has no flag for it); `jetstream: false`, a
 * server without JetStream (as one started without `-js`).
 */
export async function startNatsServer(bin = 'nats-server', opts: { maxPayload?: number; jetstream?: boolean } = {}): Promise<NatsServer> {
  const port = await freePort()
  const storeDir = await mkdtemp(join(tmpdir(), 'hph-nats-'))
  const args = [...(opts.jetstream === false ? [] : ['-js']), '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir]
  if (opts.maxPayload !== undefined) {
    const conf = join(storeDir, 'server.conf')
    await writeFile(conf, `max_payload: ${opts.maxPayload}\n`)
    args.push('-c', conf)
  }
  const server = managedServer(`nats://127.0.0.1:${port}`, args, {}, storeDir, bin)
  await server.ready
  return server
}

/**
 * Resolves once the cluster's JetStream API answers: a node says it is ready before the cluster has elected
 * its meta leader, and until then every JetStream request times out.
 */
async function jetStreamAnswers(servers: string[], ms = 60_000): Promise<void> {
  const nc = await connect({ servers, noAsyncTraces: true })
  try {
    const deadline = Date.now() + ms
    for (;;) {
      try {
        const jsm = await jetstreamManager(nc, { timeout: 2000 })
        await jsm.getAccountInfo()
        return
      } catch (err) {
        if (Date.now() > deadline) throw new Error(`the cluster's JetStream did not answer within ${ms} ms: ${(err as Error).message}`)
        await new Promise((r) => setTimeout(r, 250))
      }
    }
  } finally {
    await nc.close()
  }
}

export interface NatsCluster {
  nodes: NatsServer[]
  /** every node's URL, comma-separated: the NATS_URL of a client of the cluster */
  url: string
  close(): Promise<void>
}

/** The configuration a user starts a cluster with (infra/nats-cluster/start.sh uses the same file). */
export const CLUSTER_CONFIG = join(import.meta.dirname, '../../infra/nats-cluster/node.conf')

/** A three-node JetStream cluster on loopback: infra/nats-cluster/node.conf on free ports, stores in a temporary directory. */
export async function startNatsCluster(bin = 'nats-server'): Promise<NatsCluster> {
  const size = 3 // node.conf names three routes
  const ports = await Promise.all(Array.from({ length: size }, () => freePort()))
  const routePorts = await Promise.all(Array.from({ length: size }, () => freePort()))
  const root = await mkdtemp(join(tmpdir(), 'hph-nats-cluster-'))
  const routes = Object.fromEntries(routePorts.map((p, i) => [`HPH_NATS_ROUTE_${i + 1}`, `nats-route://127.0.0.1:${p}`]))
  const nodes = ports.map((port, i) =>
    managedServer(
      `nats://127.0.0.1:${port}`,
      ['-c', CLUSTER_CONFIG],
      {
        HPH_NATS_HOST: '127.0.0.1',
        HPH_NATS_NAME: `n${i + 1}`,
        HPH_NATS_PORT: String(port),
        HPH_NATS_CLUSTER_PORT: String(routePorts[i]),
        HPH_NATS_STORE: join(root, `n${i + 1}`),
        ...routes,
      },
      join(root, `n${i + 1}`),
      bin,
    ),
  )
  // each waits for the others' routes before it is ready: start them together
  await Promise.all(nodes.map((n) => n.ready))
  await jetStreamAnswers(nodes.map((n) => n.url))
  return {
    nodes,
    url: nodes.map((n) => n.url).join(','),
    async close() {
      await Promise.all(nodes.map((n) => n.stop()))
      await rm(root, { recursive: true, force: true })
    },
  }
}
