import type { Nats } from '../streams/connect.ts'
import { decodeJson } from '../streams/envelope.ts'
import { userRef } from '../streams/audit.ts'
import { erasingStream } from '../streams/topology.ts'

// Which users are being erased, for every api process to see: a marker a user (named by userRef, never the id) in
// `<PREFIX>_ERASING`, one a subject. Writes for a marked user are refused (409 erasure_in_progress): data arriving
// while the erase runs would outlive it. A marker ends with the erase, or by its own deadline if the erase died.

export interface ErasingDeps {
  nats: Pick<Nats, 'js' | 'jsm'>
  prefix: string
  /** HPH_USER_REF_SECRET */
  userRefSecret: string
}

const subjectOf = (deps: ErasingDeps, userId: string) => `${deps.prefix}.erasing.${userRef(deps.userRefSecret, userId)}`

/** Marks the user as being erased until `untilMs` (an erase renews it each round). */
export async function markErasing(deps: ErasingDeps, userId: string, untilMs: number): Promise<void> {
  await deps.nats.js.publish(subjectOf(deps, userId), Buffer.from(JSON.stringify({ until: new Date(untilMs).toISOString() })))
}

/** Whether an erase of the user is running (its marker is there and not past its deadline). */
export async function isErasing(deps: ErasingDeps, userId: string, nowMs = Date.now()): Promise<boolean> {
  const m = await deps.nats.jsm.streams.getMessage(erasingStream(deps.prefix), { last_by_subj: subjectOf(deps, userId) })
  if (!m) return false
  const until = Date.parse(String((decodeJson(m.data) as { until?: unknown }).until))
  return Number.isFinite(until) && until > nowMs
}

/** Ends the marker (the erase finished, or gave up). */
export async function clearErasing(deps: ErasingDeps, userId: string): Promise<void> {
  await deps.nats.jsm.streams.purge(erasingStream(deps.prefix), { filter: subjectOf(deps, userId) })
}
