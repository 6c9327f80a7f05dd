import net from 'node:net'

// Test-only: a TCP proxy that can be cut (every connection reset, new ones refused) or hung (no byte moves) and restored,
// so a test can take a dependency away from one pipeline without touching the shared server.

export interface TcpProxy {
  port: number
  /** how many client connections are open through the proxy */
  readonly connections: number
  /** resets every connection and refuses (resets) new ones until restore() */
  cut(): void
  /**
   * black-holes: every connection stays open but no byte moves either way, and new connections are accepted
   * and never answered (a failover, a partition), until restore() lets the bytes flow again
   */
  hang(): void
  restore(): void
  close(): Promise<void>
}

/** A free TCP port on 127.0.0.1 (free when asked; whoever binds it next gets it). */
export async function freePort(): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise<void>((resolve) => server.close(() => resolve()))
  return port
}

export async function startTcpProxy(target: { host: string; port: number }): Promise<TcpProxy> {
  const pairs = new Set<{ client: net.Socket; upstream: net.Socket }>()
  /** connections accepted while hung: their upstream is made at restore() */
  const waiting = new Set<net.Socket>()
  let open = true
  let hung = false
  const flow = (pair: { client: net.Socket; upstream: net.Socket }) => {
    pair.client.pipe(pair.upstream)
    pair.upstream.pipe(pair.client)
  }
  const stall = (pair: { client: net.Socket; upstream: net.Socket }) => {
    pair.client.unpipe(pair.upstream)
    pair.upstream.unpipe(pair.client)
    pair.client.pause()
    pair.upstream.pause()
  }
  const join = (client: net.Socket) => {
    const upstream = net.connect(target.port, target.host)
    const pair = { client, upstream }
    pairs.add(pair)
    // either side failing or ending takes the other down, as a dead server or network would
    const teardown = () => {
      pairs.delete(pair)
      client.destroy()
      upstream.destroy()
    }
    client.on('error', teardown).on('close', teardown)
    upstream.on('error', teardown).on('close', teardown)
    flow(pair)
  }
  const server = net.createServer((client) => {
    if (!open) {
      client.resetAndDestroy()
      return
    }
    if (hung) {
      waiting.add(client)
      client.pause()
      const forget = () => waiting.delete(client)
      client.on('error', forget).on('close', forget)
      return
    }
    join(client)
  })
  await new Promise<void>((resolve, reject) => server.once('error', reject).listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  const cut = () => {
    open = false
    for (const { client, upstream } of [...pairs]) {
      client.resetAndDestroy()
      upstream.destroy()
    }
    pairs.clear()
    for (const client of [...waiting]) client.resetAndDestroy()
    waiting.clear()
  }
  return {
    port,
    get connections() {
      return pairs.size
    },
    cut,
    hang() {
      hung = true
      for (const pair of pairs) stall(pair)
    },
    restore() {
      open = true
      if (hung) {
        hung = false
        for (const pair of pairs) flow(pair)
        for (const client of [...waiting]) {
          waiting.delete(client)
          if (!client.destroyed) join(client)
        }
      }
    },
    async close() {
      cut()
      await new Promise<void>((resolve) => server.close(() => resolve()))
    },
  }
}

/** `url` with its host and port replaced by the proxy's. */
export function throughProxy(url: string, proxy: Pick<TcpProxy, 'port'>): string {
  const u = new URL(url)
  u.hostname = '127.0.0.1'
  u.port = String(proxy.port)
  return u.toString()
}
