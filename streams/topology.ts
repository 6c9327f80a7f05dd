import {
  AckPolicy,
  DeliverPolicy,
  DiscardPolicy,
  JetStreamApiError,
  RetentionPolicy,
  StorageType,
  type ConsumerConfig,
  type JetStreamManager,
  type StreamConfig,
} from '@nats-io/jetstream'
import { nanos } from '@nats-io/transport-node'
import type { Config } from '../config.ts'
import { streamName, streamSubjects, type StreamKey, STREAM_KEYS } from './subjects.ts'

type TopologyConfig = Pick<
  Config,
  | 'HPH_PREFIX'
  | 'HPH_ACK_WAIT_S'
  | 'HPH_STREAM_REPLICAS'
  | 'HPH_STREAM_STORAGE'
  | 'HPH_INGEST_MAX_AGE_DAYS'
  | 'HPH_INGEST_DUPLICATE_WINDOW_S'
  | 'HPH_INGEST_MAX_BYTES'
  | 'HPH_SAMPLES_MAX_BYTES'
  | 'HPH_CHANGES_MAX_BYTES'
  | 'HPH_INSIGHTS_MAX_BYTES'
  | 'HPH_DLQ_MAX_BYTES'
  | 'HPH_AUDIT_MAX_BYTES'
  | 'HPH_ERASING_MAX_BYTES'
>

const DAY_S = 86_400

// docs/architecture.md §3. Only features of nats-server 2.9 are used.
export function streamSpecs(config: TopologyConfig): Record<StreamKey, Partial<StreamConfig> & { name: string }> {
  const p = config.HPH_PREFIX
  const base = (key: StreamKey): Partial<StreamConfig> & { name: string } => ({
    name: streamName(p, key),
    subjects: [streamSubjects(p, key)],
    retention: RetentionPolicy.Limits,
    storage: config.HPH_STREAM_STORAGE === 'memory' ? StorageType.Memory : StorageType.File,
    num_replicas: config.HPH_STREAM_REPLICAS,
    // docs/architecture.md §6: a full stream refuses new messages (the publisher is told) rather
    // than dropping the oldest in silence: nothing accepted is lost, no audit record vanishes
    max_bytes: config[`HPH_${key}_MAX_BYTES`],
    discard: DiscardPolicy.New,
  })
  return {
    // the source of truth: duplicates of a batch are dropped for a whole day (a retrying client)
    INGEST: {
      ...base('INGEST'),
      max_age: nanos(config.HPH_INGEST_MAX_AGE_DAYS * DAY_S * 1000),
      duplicate_window: nanos(config.HPH_INGEST_DUPLICATE_WINDOW_S * 1000),
    },
    // per-sample dedupe lives in the samples primary key; a short window keeps the server's id map small
    SAMPLES: { ...base('SAMPLES'), duplicate_window: nanos(120_000) },
    CHANGES: { ...base('CHANGES'), retention: RetentionPolicy.Workqueue, duplicate_window: nanos(120_000) },
    INSIGHTS: { ...base('INSIGHTS'), duplicate_window: nanos(120_000) },
    DLQ: { ...base('DLQ'), duplicate_window: nanos(120_000) },
    AUDIT: { ...base('AUDIT'), max_age: nanos(config.HPH_INGEST_MAX_AGE_DAYS * DAY_S * 1000) },
  }
}

/** `<PREFIX>_ERASING`: which users are being erased (privacy/erasing.ts), by a reference that does not name them. */
export function erasingStreamSpec(config: TopologyConfig): Partial<StreamConfig> & { name: string } {
  return {
    name: erasingStream(config.HPH_PREFIX),
    subjects: [`${config.HPH_PREFIX}.erasing.>`],
    retention: RetentionPolicy.Limits,
    storage: config.HPH_STREAM_STORAGE === 'memory' ? StorageType.Memory : StorageType.File,
    num_replicas: config.HPH_STREAM_REPLICAS,
    max_msgs_per_subject: 1,
    max_age: nanos(DAY_S * 1000),
    max_bytes: config.HPH_ERASING_MAX_BYTES,
    // a user's marker replaces the one before it (one a subject)
    discard: DiscardPolicy.Old,
  }
}

export function erasingStream(prefix: string): string {
  return `${prefix.toUpperCase()}_ERASING`
}

export interface ConsumerSpec {
  stream: StreamKey
  durable: string
  /** server-side flow control: at most this many delivered-but-unacked messages (all instances together) */
  maxAckPending: number
}

/** The durable consumers of the pipeline, one per stage; several instances of a stage share one. */
export const CONSUMERS = {
  // what a stage holds unacknowledged, and so in memory: a raw batch is up to a message (1 MiB), a sample or
  // insight event up to HPH_EVENT_MAX_BYTES (256 KiB), a change a few hundred bytes
  normalize: { stream: 'INGEST', durable: 'normalize', maxAckPending: 64 },
  'samples-writer': { stream: 'SAMPLES', durable: 'samples-writer', maxAckPending: 256 },
  'insights-engine': { stream: 'CHANGES', durable: 'insights-engine', maxAckPending: 4_000 },
  'insights-writer': { stream: 'INSIGHTS', durable: 'insights-writer', maxAckPending: 256 },
} as const satisfies Record<string, ConsumerSpec>

export type StageName = keyof typeof CONSUMERS

export function consumerConfig(spec: ConsumerSpec, config: Pick<Config, 'HPH_ACK_WAIT_S'>): Partial<ConsumerConfig> {
  return {
    durable_name: spec.durable,
    ack_policy: AckPolicy.Explicit,
    deliver_policy: DeliverPolicy.All,
    ack_wait: nanos(config.HPH_ACK_WAIT_S * 1000),
    max_ack_pending: spec.maxAckPending,
    // the runtime decides when a message is poison (streams/consumer.ts), so the server never drops one
    max_deliver: -1,
  }
}

function isNotFound(err: unknown): boolean {
  return err instanceof JetStreamApiError && (err.code === 404 || err.message.includes('not found'))
}

/** `hph streams apply`: creates or updates every stream and durable consumer; safe to run any time. */
export async function applyTopology(jsm: JetStreamManager, config: TopologyConfig): Promise<{ streams: string[]; consumers: string[] }> {
  const specs = streamSpecs(config)
  for (const spec of [...STREAM_KEYS.map((key) => specs[key]), erasingStreamSpec(config)]) {
    const name = spec.name
    try {
      await jsm.streams.info(name)
      const { name: _n, retention: _r, storage: _s, ...mutable } = spec
      await jsm.streams.update(name, mutable)
    } catch (err) {
      if (!isNotFound(err)) throw err
      await jsm.streams.add(spec)
    }
  }
  const consumers: string[] = []
  for (const spec of Object.values(CONSUMERS)) {
    const stream = streamName(config.HPH_PREFIX, spec.stream)
    const cfg = consumerConfig(spec, config)
    try {
      await jsm.consumers.info(stream, spec.durable)
      await jsm.consumers.update(stream, spec.durable, cfg)
    } catch (err) {
      if (!isNotFound(err)) throw err
      await jsm.consumers.add(stream, cfg)
    }
    consumers.push(`${stream}/${spec.durable}`)
  }
  return { streams: STREAM_KEYS.map((k) => streamName(config.HPH_PREFIX, k)), consumers }
}

/** Removes every stream of a prefix (tests clean up after themselves with this). */
export async function deleteTopology(jsm: JetStreamManager, prefix: string): Promise<void> {
  for (const name of [...STREAM_KEYS.map((key) => streamName(prefix, key)), erasingStream(prefix)]) {
    try {
      await jsm.streams.delete(name)
    } catch (err) {
      if (!isNotFound(err)) throw err
    }
  }
}
