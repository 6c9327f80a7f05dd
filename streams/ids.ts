import { hash } from 'node:crypto'

/** sha-256 of the parts, NUL-separated so that ('ab','c') and ('a','bc') differ. */
export function hashHex(...parts: ReadonlyArray<string | number>): string {
  // the joined text in one call: the same bytes as an update per part and separator; the one-shot hash
  // (Node ≥ 20.12) costs half of createHash's object and calls, and normalize hashes a sample id a sample
  return hash('sha256', `${parts.join('\0')}\0`, 'hex')
}

/** A deterministic UUID (RFC 9562 version 8, "custom") made from a sha-256 of the parts. */
export function hashUuid(...parts: ReadonlyArray<string | number>): string {
  return uuidOfHex(hashHex(...parts))
}

export function uuidOfHex(hex: string): string {
  // version 8 in the 13th digit, variant 10xx in the 17th
  const variant = ((parseInt(hex[16] ?? '0', 16) & 0x3) | 0x8).toString(16)
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-8${hex.slice(13, 16)}-${variant}${hex.slice(17, 20)}-${hex.slice(20, 32)}`
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i

export function isUuid(s: string): boolean {
  return UUID_RE.test(s)
}
