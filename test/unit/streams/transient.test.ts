import { JetStreamApiError } from '@nats-io/jetstream'
import { describe, expect, it } from 'vitest'
import { TransientError, ValidationError } from '../../../errors.ts'
import { backoffMs, isTransient } from '../../../streams/transient.ts'

describe('isTransient', () => {
  it('retries what means "a dependency is away"', () => {
    expect(isTransient(new TransientError('x'))).toBe(true)
    expect(isTransient(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }))).toBe(true)
    expect(isTransient(Object.assign(new Error('terminating connection due to administrator command'), { code: '57P01' }))).toBe(true)
    expect(isTransient(Object.assign(new Error('deadlock'), { code: '40P01' }))).toBe(true)
    expect(isTransient(new Error('Connection terminated unexpectedly'))).toBe(true)
    expect(isTransient(Object.assign(new Error('timeout'), { name: 'TimeoutError' }))).toBe(true)
    // nats.js 3 names a publish no stream answered (a cluster electing a leader, a node restarting) so
    expect(isTransient(Object.assign(new Error("jetstream is not enabled: no responders: 'hph.ingest.v1.healthkit.ana'"), { name: 'JetStreamNotEnabled' }))).toBe(true)
    expect(isTransient(new Error('wrapped', { cause: Object.assign(new Error('x'), { code: 'ECONNRESET' }) }))).toBe(true)
    // what a cluster answers while it has no meta leader (a node killed, an election under way)
    expect(isTransient(new JetStreamApiError({ code: 503, err_code: 10039, description: 'JetStream system temporarily unavailable' }))).toBe(true)
  })

  it('dead-letters what will fail again', () => {
    expect(isTransient(new ValidationError('bad'))).toBe(false)
    expect(isTransient(Object.assign(new Error('invalid input syntax for type uuid'), { code: '22P02' }))).toBe(false)
    expect(isTransient(new TypeError('x is undefined'))).toBe(false)
    expect(isTransient(null)).toBe(false)
    // a durable that is not there is an answer, not an absence
    expect(isTransient(new JetStreamApiError({ code: 404, err_code: 10014, description: 'consumer not found' }))).toBe(false)
  })
})

describe('backoffMs', () => {
  it('doubles from 250 ms up to 30 s', () => {
    expect([1, 2, 3, 4].map(backoffMs)).toEqual([250, 500, 1000, 2000])
    expect(backoffMs(20)).toBe(30_000)
  })
})
