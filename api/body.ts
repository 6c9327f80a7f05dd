// Input hardening: a JSON text nested deeper than any batch needs is refused before it is parsed, since
// later steps (JSON.stringify of the raw payload, prototype-key scans) recurse and would overflow the stack.

/**
 * The deepest nesting of arrays/objects in a JSON text (strings skipped); stops counting past `limit`. A string is
 * skipped to its closing quote with indexOf (a quote after an odd run of backslashes is escaped): most of a batch's
 * characters are inside strings, and the search is about three times faster than looking at each of them.
 */
export function jsonDepth(text: string, limit = Number.POSITIVE_INFINITY): number {
  let depth = 0
  let max = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x22) {
      for (;;) {
        const quote = text.indexOf('"', i + 1)
        if (quote < 0) return max // an unterminated string runs to the end
        let b = quote - 1
        while (text.charCodeAt(b) === 0x5c) b--
        i = quote
        if ((quote - 1 - b) % 2 === 0) break
      }
    } else if (c === 0x5b || c === 0x7b) {
      if (++depth > max) {
        max = depth
        if (max > limit) return max
      }
    } else if (c === 0x5d || c === 0x7d) depth--
  }
  return max
}
