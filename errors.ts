/** Typed errors with a stable `code`; mapped to HTTP in api/errors.ts and to DLQ reasons in streams/consumer.ts. */
export class HphError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly details: Array<{ path: string; problem: string }> = [],
  ) {
    super(message)
    this.name = new.target.name
  }
}

/** Input that can never be processed as it is: never retried, sent to the DLQ by a stage. */
export class ValidationError extends HphError {
  constructor(message: string, details: Array<{ path: string; problem: string }> = []) {
    super('validation_failed', message, details)
  }
}

/** A dependency is away (database, NATS): retried with backoff, never dead-lettered. */
export class TransientError extends HphError {
  constructor(
    message: string,
    override readonly cause?: unknown,
  ) {
    super('transient', message)
  }
}
