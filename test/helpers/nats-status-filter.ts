import net from 'node:net'

// Test-only: a loopback proxy in front of nats-server that drops some of the server's status messages (the
// `HMSG` frames whose headers start `NATS/1.0 <code>`: 100 heartbeats, 408 expiry answers) on their way to the
// client, and passes every other byte as it came. It makes, on demand, what nats-server 2.9 does now and then
// under load: a pull request that ends at its expiry without the 408 that says so.

export interface NatsStatusFilter {
  port: number
  /** the status codes dropped from now on (an empty list passes everything) */
  drop(codes: readonly number[]): void
  /** how many status messages were dropped so far */
  readonly dropped: number
  close(): Promise<void>
}

const CRLF = Buffer.from('\r\n')

/** Splits the server's byte stream into protocol frames (a control line, and a message's payload with it). */
class FrameSplitter {
  private buf: Buffer = Buffer.alloc(0)
  constructor(private readonly onFrame: (frame: Buffer, statusCode: number | undefined) => void) {}

  push(chunk: Buffer): void {
    this.buf = this.buf.length ? Buffer.concat([this.buf, chunk]) : chunk
    for (;;) {
      const eol = this.buf.indexOf(CRLF)
      if (eol < 0) return
      const line = this.buf.subarray(0, eol).toString('latin1')
      let end = eol + 2
      let statusCode: number | undefined
      if (line.startsWith('MSG ') || line.startsWith('HMSG ')) {
        const fields = line.split(' ')
        const total = Number(fields[fields.length - 1])
        end += total + 2
        if (this.buf.length < end) return
        if (line.startsWith('HMSG ')) {
          const headers = this.buf.subarray(eol + 2, eol + 2 + Number(fields[fields.length - 2])).toString('latin1')
          const m = /^NATS\/1\.0 (\d{3})/.exec(headers)
          if (m) statusCode = Number(m[1])
        }
      }
      const frame = this.buf.subarray(0, end)
      this.buf = this.buf.subarray(end)
      this.onFrame(frame, statusCode)
    }
  }
}

export async function startNatsStatusFilter(target: { host: string; port: number }): Promise<NatsStatusFilter> {
  let dropping = new Set<number>()
  let dropped = 0
  const sockets = new Set<net.Socket>()
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host)
    sockets.add(client).add(upstream)
    const teardown = () => {
      client.destroy()
      upstream.destroy()
      sockets.delete(client)
      sockets.delete(upstream)
    }
    client.on('error', teardown).on('close', teardown)
    upstream.on('error', teardown).on('close', teardown)
    client.pipe(upstream)
    const splitter = new FrameSplitter((frame, code) => {
      if (code !== undefined && dropping.has(code)) dropped++
      else client.write(frame)
    })
    upstream.on('data', (chunk: Buffer) => splitter.push(chunk))
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  return {
    port: (server.address() as net.AddressInfo).port,
    drop(codes) {
      dropping = new Set(codes)
    },
    get dropped() {
      return dropped
    },
    async close() {
      for (const s of sockets) s.destroy()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}
