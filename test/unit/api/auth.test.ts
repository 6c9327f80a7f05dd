import { describe, expect, it } from 'vitest'
import { authorize, parseApiKeys, isLoopback } from '../../../api/auth.ts'
import { toHttp } from '../../../api/errors.ts'
import { ValidationError } from '../../../errors.ts'

describe('static keys', () => {
  it('parses admin and user keys and names principals without their secret', () => {
    const keys = parseApiKeys('k1:admin, k2:user:ana')
    expect(keys.get('k1')).toEqual({ kind: 'admin', id: 'key#1' })
    expect(keys.get('k2')).toEqual({ kind: 'user', id: 'key#2', userId: 'ana' })
    expect(() => parseApiKeys('k3:root')).toThrow(/entry 1/)
  })

  it('lets a user token reach only its own user, admin every user', () => {
    expect(() => authorize({ kind: 'user', id: 'k', userId: 'ana' }, 'ana')).not.toThrow()
    expect(() => authorize({ kind: 'user', id: 'k', userId: 'ana' }, 'bo')).toThrow(expect.objectContaining({ status: 403 }))
    expect(() => authorize({ kind: 'admin', id: 'k' }, 'bo')).not.toThrow()
  })

  it('knows loopback addresses', () => {
    expect(['127.0.0.1', '::1', 'localhost'].every(isLoopback)).toBe(true)
    expect(isLoopback('0.0.0.0')).toBe(false)
  })
})

describe('error mapping', () => {
  it('maps validation to 400, fastify body errors to 413/415, dependencies away to 503, the rest to 500', () => {
    expect(toHttp(new ValidationError('no', [{ path: 'samples', problem: 'missing' }]))).toEqual({
      status: 400,
      body: { error: 'validation_failed', message: 'no', details: [{ path: 'samples', problem: 'missing' }] },
    })
    expect(toHttp(Object.assign(new Error('too large'), { code: 'FST_ERR_CTP_BODY_TOO_LARGE', statusCode: 413 })).status).toBe(413)
    expect(toHttp(Object.assign(new Error('bad type'), { code: 'FST_ERR_CTP_INVALID_MEDIA_TYPE', statusCode: 415 })).status).toBe(415)
    expect(toHttp(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })).status).toBe(503)
    expect(toHttp(new Error('bug')).status).toBe(500)
  })
})
