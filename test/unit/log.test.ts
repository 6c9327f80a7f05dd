import { describe, expect, it } from 'vitest'
import { logFormat } from '../../log.ts'

describe('the log format', () => {
  it('is readable lines for a command a person runs in a terminal, JSON for the services and for anything not a terminal', () => {
    const auto = { HPH_LOG_FORMAT: 'auto' as const }
    expect(logFormat(auto, true, true)).toBe('pretty')
    expect(logFormat(auto, true, false)).toBe('json')
    expect(logFormat(auto, false, true)).toBe('json')
    expect(logFormat(auto, false, false)).toBe('json')
  })

  it('is what HPH_LOG_FORMAT says when it says one', () => {
    expect(logFormat({ HPH_LOG_FORMAT: 'json' }, true, true)).toBe('json')
    expect(logFormat({ HPH_LOG_FORMAT: 'pretty' }, false, false)).toBe('pretty')
  })
})
