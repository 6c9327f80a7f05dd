import { describe, expect, it } from 'vitest'
import { RetentionPolicy } from '@nats-io/jetstream'
import { loadConfig } from '../../../config.ts'
import { consumerConfig, CONSUMERS, streamSpecs } from '../../../streams/topology.ts'
import { streamName, subjects, userOfSubject, safeToken } from '../../../streams/subjects.ts'

const config = loadConfig({ HPH_PREFIX: 'x1', HPH_STREAM_REPLICAS: '3' })

describe('topology', () => {
  it('names every stream and subject from HPH_PREFIX, with the userId last', () => {
    expect(streamName('x1', 'INGEST')).toBe('X1_INGEST')
    expect(subjects.ingest('x1', 'healthkit', 'ana')).toBe('x1.ingest.v1.healthkit.ana')
    expect(subjects.sample('x1', 'hrv_sdnn', 'ana')).toBe('x1.samples.v2.hrv_sdnn.ana')
    expect(subjects.insight('x1', 'daily', 'ana')).toBe('x1.insights.v2.daily.ana')
    // what the code before the batch events wrote, still read
    expect(subjects.legacy.sample('x1', 'hrv_sdnn', 'ana')).toBe('x1.samples.v1.hrv_sdnn.ana')
    expect(subjects.changes('x1', 'ana')).toBe('x1.changes.v1.days.ana')
    expect(subjects.dlq('x1', 'normalize', 'ana')).toBe('x1.dlq.normalize.ana')
    expect(userOfSubject(subjects.insight('x1', 'readiness', 'ana'))).toBe('ana')
    expect(safeToken('a.b')).toBe('_')
  })

  it('gives replicas from config and the retention of docs/architecture.md §3', () => {
    const specs = streamSpecs(config)
    expect(Object.values(specs).every((s) => s.num_replicas === 3)).toBe(true)
    expect(specs.CHANGES.retention).toBe(RetentionPolicy.Workqueue)
    expect(specs.INGEST.retention).toBe(RetentionPolicy.Limits)
    expect(specs.INGEST.subjects).toEqual(['x1.ingest.>'])
    expect(specs.INGEST.duplicate_window).toBe(86_400 * 1e9)
  })

  it('declares explicit-ack durable pull consumers that never drop a message by themselves', () => {
    const c = consumerConfig(CONSUMERS['samples-writer'], config)
    expect(c).toMatchObject({ durable_name: 'samples-writer', ack_policy: 'explicit', max_deliver: -1, ack_wait: 30e9 })
  })
})
