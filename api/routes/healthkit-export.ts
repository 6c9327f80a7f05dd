import type { Readable } from 'node:stream'
import type { FastifyInstance } from 'fastify'
import { z } from 'zod'
import type { Nats } from '../../streams/connect.ts'
import { importExport } from '../../ingest/healthkit-export/import.ts'
import type { ExportLimits } from '../../ingest/healthkit-export/limits.ts'
import type { ExportFormat } from '../../ingest/healthkit-export/reader.ts'
import type { ErasingDeps } from '../../privacy/erasing.ts'
import { refuseWhileErasing } from '../erasing.ts'
import { HttpError } from '../errors.ts'
import { traceparentOf } from '../../ingest/raw-batch.ts'
import { errors, GUARDED_ERRORS, UserParams, v1 } from '../openapi.ts'
import { checkUserId } from './samples.ts'

export interface HealthkitExportRouteDeps {
  nats: Nats
  prefix: string
  maxSamples: number
  batchSize: number
  inFlight: number
  /** HPH_MAX_EXPORT_BYTES: the body limit of this route alone (413 beyond) */
  maxBytes: number
  /** HPH_MAX_CONCURRENT_IMPORTS: uploads parsed at once by this process (503 beyond) */
  maxConcurrent: number
  /** the HPH_EXPORT_MAX_* limits and the parse thread's heap */
  limits: ExportLimits
  parserHeapMb: number
  /** where erasures in progress are marked: an upload stops when its user's erase begins */
  erasing?: ErasingDeps
}

const count = z.number().int()
const ImportAnswer = z.object({
  stream: z.string(),
  batches: count.describe('batches stored (or already there)'),
  published: count.describe('of those, new'),
  duplicates: count.describe('of those, already stored'),
  firstSeq: count.optional(),
  lastSeq: count.optional(),
  records: count,
  accepted: count,
  rejected: count,
  derived: count.describe("hrv_rmssd samples derived from the beat lists of HRV records, besides the records' own"),
  types: z.record(z.string(), z.object({ read: count, accepted: count, rejected: count })).describe('per HealthKit type understood'),
  skippedRecords: z.record(z.string(), count).describe('<Record> elements of other types, by type'),
  otherElements: z.record(z.string(), count).describe('other elements (Workout, ActivitySummary, …), by name'),
  rejections: z.array(z.object({ line: count, type: z.string(), problem: z.string() })).describe('the first rejections, with the line of their <Record>'),
  bytesRead: count,
  xmlBytes: count,
  seconds: z.number(),
})

/** How long a refused upload is told to wait: an export takes tens of seconds to import. */
const BUSY_RETRY_S = 30

/** Content types of export.xml and export.zip; Windows sends its zips as x-zip-compressed. */
const FORMATS: Record<string, ExportFormat> = {
  'application/xml': 'xml',
  'text/xml': 'xml',
  'application/zip': 'zip',
  'application/x-zip-compressed': 'zip',
}

/** The body as it arrives, counted against the route's own limit. */
async function* limited(body: Readable, maxBytes: number): AsyncGenerator<Uint8Array> {
  let seen = 0
  for await (const chunk of body as AsyncIterable<Buffer>) {
    seen += chunk.length
    if (seen > maxBytes) throw new HttpError(413, 'payload_too_large', `the export is larger than ${maxBytes} bytes (HPH_MAX_EXPORT_BYTES)`)
    yield chunk
  }
}

/** POST /v1/users/:userId/healthkit-export (docs/api.md §4). */
export async function healthkitExportRoutes(app: FastifyInstance, deps: HealthkitExportRouteDeps): Promise<void> {
  let running = 0
  /** users whose export is being imported by this process: one at a time each */
  const importing = new Set<string>()
  // its own plugin scope: these content types (and no body limit of the app's) apply to this route only
  await app.register(async (scope) => {
    scope.removeAllContentTypeParsers()
    // the body is handed on as the raw stream and read through the reader, never buffered whole
    scope.addContentTypeParser(Object.keys(FORMATS), (_req, payload, done) => done(null, payload))

    const schema = {
      ...v1('samples'),
      summary: "backfill from an Apple Health export: export.xml or the Health app's export.zip, streamed (re-uploading the same export adds nothing)",
      params: UserParams,
      consumes: Object.keys(FORMATS),
      'x-body': 'the export file as it is',
      response: { 202: ImportAnswer.describe('every batch of the export is in HPH_INGEST'), ...errors(...GUARDED_ERRORS, 413, 415) },
    }
    scope.post<{ Params: { userId: string } }>('/v1/users/:userId/healthkit-export', { schema }, async (req, reply) => {
      // the access hook (api/access.ts) has authorised the token for this user
      const userId = checkUserId(req.params.userId)
      const mediaType = (req.headers['content-type'] ?? '').split(';')[0]!.trim().toLowerCase()
      const format = FORMATS[mediaType]
      if (!format) throw new HttpError(415, 'unsupported_media_type', `Content-Type must be one of ${Object.keys(FORMATS).join(', ')}`)
      const length = Number(req.headers['content-length'])
      if (Number.isFinite(length) && length > deps.maxBytes) {
        throw new HttpError(413, 'payload_too_large', `the export is larger than ${deps.maxBytes} bytes (HPH_MAX_EXPORT_BYTES)`)
      }
      // each upload is parsed on a thread of its own: beyond the limit, the client is asked to come back
      if (running >= deps.maxConcurrent) {
        throw new HttpError(503, 'busy', `${running} exports are being imported by this server (HPH_MAX_CONCURRENT_IMPORTS); retry in ${BUSY_RETRY_S} s`, [], {
          'retry-after': String(BUSY_RETRY_S),
        })
      }
      if (importing.has(userId)) {
        throw new HttpError(409, 'import_in_progress', `an export of ${userId} is being imported; one at a time per user (retry in ${BUSY_RETRY_S} s)`, [], {
          'retry-after': String(BUSY_RETRY_S),
        })
      }
      running++
      importing.add(userId)
      let result
      try {
        result = await importExport(
          {
            ingest: { js: deps.nats.js, nc: deps.nats.nc, prefix: deps.prefix, maxSamples: deps.maxSamples },
            batchSize: deps.batchSize,
            inFlight: deps.inFlight,
            source: 'api',
            traceparent: traceparentOf(req.headers.traceparent),
            limits: deps.limits,
            parserHeapMb: deps.parserHeapMb,
            // docs/operating.md §7: an erase that begins while the upload runs stops it before its next batch
            ...(deps.erasing ? { beforeBatch: refuseWhileErasing(deps.erasing, userId) } : {}),
          },
          { userId, format, input: limited(req.body as Readable, deps.maxBytes) },
        )
      } finally {
        running--
        importing.delete(userId)
      }
      req.log.info({ userId, batches: result.batches, published: result.published, records: result.records, bytes: result.bytesRead, seconds: result.seconds }, 'export imported')
      return reply.status(202).send(result)
    })
  })
}
