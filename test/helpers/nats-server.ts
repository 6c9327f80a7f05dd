import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './proxy.ts'

// Test-only: a private nats-server (JetStream, file store in a temporary directory) that a test may
// stop and start again on the same port and store, without touching the server other tests share.

export interface NatsServer {
  url: string
  /** stops the server (SIGTERM) and waits for it to exit; its store stays */
  stop(): Promise<void>
  /** starts it again on the same port and store; resolves once it accepts clients */
  start(): Promise<void>
  /** stops it and removes its store */
  close(): Promise<void>
}

export async function startNatsServer(bin = 'nats-server'): Promise<NatsServer> {
  const port = await freePort()
  const storeDir = await mkdtemp(join(tmpdir(), 'hph-nats-'))
  let proc: ChildProcess | undefined
  let exited: Promise<void> = Promise.resolve()

  async function start(): Promise<void> {
    const child = spawn(bin, ['-js', '-a', '127.0.0.1', '-p', String(port), '-sd', storeDir], { stdio: ['ignore', 'ignore', 'pipe'] })
    proc = child
    exited = new Promise((resolve) => child.once('exit', () => resolve()))
    let log = ''
    let ready = false
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`nats-server did not become ready within 20 s:\n${log}`)), 20_000)
      // read its log until it is ready, then keep draining the pipe
      child.stderr?.on('data', (d: Buffer) => {
        if (ready) return
        log += d.toString()
        if (log.includes('Server is ready')) {
          ready = true
          clearTimeout(timer)
          resolve()
        }
      })
      child.once('error', (err) => {
        clearTimeout(timer)
        reject(err)
      })
      child.once('exit', (code) => {
        clearTimeout(timer)
        reject(new Error(`nats-server exited with ${code} before it was ready:\n${log}`))
      })
    })
  }

  async function stop(): Promise<void> {
    if (proc && proc.exitCode === null && proc.signalCode === null) proc.kill('SIGTERM')
    await exited
    proc = undefined
  }

  await start()
  return {
    url: `nats://127.0.0.1:${port}`,
    start,
    stop,
    async close() {
      await stop()
      await rm(storeDir, { recursive: true, force: true })
    },
  }
}
