import { connect as natsConnect, type NatsConnection, type NodeConnectionOptions } from '@nats-io/transport-node'
import { jetstream, jetstreamManager, type JetStreamClient, type JetStreamManager } from '@nats-io/jetstream'
import type { Config } from '../config.ts'
import { START_WAIT_MS, whileTransient } from './transient.ts'

export interface Nats {
  nc: NatsConnection
  js: JetStreamClient
  jsm: JetStreamManager
}

/** How long connectNats waits for JetStream to answer (START_WAIT_MS unless said; 0: not at all), each wait told to `onWait`. */
export interface JetStreamWait {
  waitMs?: number
  onWait?: (err: unknown, tries: number, retryInMs: number) => void
}

/**
 * One connection per process; reconnects forever (a NATS outage stalls the pipeline, never ends it). JetStream not
 * answering yet (a cluster electing its meta leader) is waited for as `wait` says.
 */
export async function connectNats(config: Pick<Config, 'NATS_URL'>, name = 'hph', overrides: Partial<NodeConnectionOptions> = {}, wait: JetStreamWait = {}): Promise<Nats> {
  const nc = await natsConnect({
    servers: config.NATS_URL.split(','),
    name,
    // nearly doubles publish throughput on this machine (no stack capture per request)
    noAsyncTraces: true,
    maxReconnectAttempts: -1,
    reconnectTimeWait: 500,
    ...overrides,
  })
  const jsm = await whileTransient(() => jetstreamManager(nc), { waitMs: wait.waitMs ?? START_WAIT_MS, ...(wait.onWait ? { onWait: wait.onWait } : {}) }).catch(
    async (err: unknown) => {
      await nc.close()
      throw err
    },
  )
  return { nc, js: jetstream(nc), jsm }
}
