/*
 * cluster/periodic.ts — the loop each piece of shared policy state runs
 * (failrate.ts, rates.ts, connections.ts): every `everyMs`, one exchange
 * with the database (never two at once); the first failure after a
 * success is logged once with what holds meanwhile, and the first success
 * after failures once more. The timer never keeps the process alive.
 */
export abstract class Periodic {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private down = false;

  protected constructor(
    private readonly what: string,
    private readonly meanwhile: string,
    private readonly logLine?: (line: string) => void,
  ) {}

  /** One exchange with the database; throws when it is away. */
  protected abstract exchange(): Promise<void>;
  /** Undo what exchange() took out of its pending state before it failed. */
  protected abstract failed(): void;

  start(everyMs: number): void {
    this.timer = setInterval(() => void this.sync(), everyMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Is the database away (the last exchange failed)? */
  get isDown(): boolean {
    return this.down;
  }

  sync(): Promise<void> {
    this.running ??= this.once().finally(() => (this.running = undefined));
    return this.running;
  }

  private async once(): Promise<void> {
    try {
      await this.exchange();
      if (this.down) this.logLine?.(`cluster: ${this.what} shared again`);
      this.down = false;
    } catch (e) {
      this.failed();
      if (!this.down) this.logLine?.(`cluster: cannot share ${this.what} (${this.meanwhile}): ${(e as Error).message}`);
      this.down = true;
    }
  }
}
