import { createHash } from 'node:crypto'

/** sha-256 of the parts, NUL-separated so that ('ab','c') and ('a','bc') differ. */
export function hashHex(...parts: ReadonlyArray<string | number>): string {
  const h = createHash('sha256')
  for (const p of parts) h.update(String(p)).update('\0')
  return h.digest('hex')
}

/** A deterministic UUID (RFC 9562 version 8, "custom") made from a sha-256 of the parts. */
export function hashUuid(...parts: ReadonlyArray<string | number>): string {
  return uuidOfHex(hashHex(...parts))
}

export function uuidOfHex(hex: string): string {
  const b = hex.slice(0, 32).split('')
  b[12] = '8' // version 8
  b[16] = ((parseInt(b[16] ?? '0', 16) & 0x3) | 0x8).toString(16) // variant 10xx
  const s = b.join('')
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(s: string): boolean {
  return UUID_RE.test(s)
}
