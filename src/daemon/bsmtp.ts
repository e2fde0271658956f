/*
 * daemon/bsmtp.ts — a batched SMTP stream (BSMTP: a file or a pipe of SMTP
 * commands and message texts, written without waiting for replies) fed to
 * a session one command at a time, as ZMailer's `smtpserver -i` reads one.
 *
 * The feeder sends a line and waits for its reply; after DATA it sends the
 * message text up to the line "." when the reply was 354, and otherwise
 * skips it and sends RSET. So a broken transaction — a refused MAIL, every RCPT refused,
 * a DATA without recipients — costs that transaction only: its text is
 * never read as commands, and the batch goes on with the next MAIL. Lines
 * may end in CRLF or LF alone. `echo` (-v) sees every line of the batch
 * before its reply, for a faithful transcript. At the end of the input a
 * QUIT is sent unless the batch had one.
 */

/** Complete replies as a session writes them; `next()` is the code of the next one (0 once closed). */
export class ReplyReader {
  private text = '';
  private readonly codes: number[] = [];
  private waiting: ((code: number) => void) | undefined;
  private closed = false;

  push(chunk: Buffer | string): void {
    this.text += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let nl: number;
    while ((nl = this.text.indexOf('\n')) >= 0) {
      const line = this.text.slice(0, nl).replace(/\r$/, '');
      this.text = this.text.slice(nl + 1);
      const m = /^(\d{3})(?: |$)/.exec(line);
      if (m) this.deliver(Number(m[1]));
    }
  }

  close(): void {
    this.closed = true;
    this.deliver(0);
  }

  next(): Promise<number> {
    const c = this.codes.shift();
    if (c !== undefined) return Promise.resolve(c);
    if (this.closed) return Promise.resolve(0);
    return new Promise((r) => (this.waiting = r));
  }

  private deliver(code: number): void {
    const w = this.waiting;
    this.waiting = undefined;
    if (w) w(code);
    else if (code !== 0) this.codes.push(code);
  }
}

export interface BatchIo {
  /** One line to the session (CRLF is added). */
  send(line: string): void;
  /** The input is over. */
  end(): void;
  readonly replies: ReplyReader;
  readonly echo?: (line: string) => void;
}

export interface BatchSummary {
  readonly commands: number;
  /** Transactions whose text was skipped because DATA was refused. */
  readonly skipped: number;
}

/** Lines of a stream, without their line ends. */
export async function* lines(input: AsyncIterable<Buffer | string>): AsyncGenerator<string> {
  let rest = '';
  for await (const chunk of input) {
    rest += typeof chunk === 'string' ? chunk : chunk.toString('utf8');
    let nl: number;
    while ((nl = rest.indexOf('\n')) >= 0) {
      yield rest.slice(0, nl).replace(/\r$/, '');
      rest = rest.slice(nl + 1);
    }
  }
  if (rest !== '') yield rest.replace(/\r$/, '');
}

/** Feed a batch to a session (its greeting not yet read); resolves when the batch is done. */
export async function feedBatch(input: AsyncIterable<string>, io: BatchIo): Promise<BatchSummary> {
  let commands = 0;
  let skipped = 0;
  const greeting = await io.replies.next();
  if (greeting < 200 || greeting >= 400) {
    io.end();
    return { commands, skipped };
  }
  let mode: 'command' | 'data' | 'skip' = 'command';
  let quit = false;
  for await (const line of input) {
    if (mode === 'skip') {
      if (line === '.') mode = 'command';
      continue;
    }
    io.echo?.(line);
    io.send(line);
    if (mode === 'data') {
      if (line === '.') {
        mode = 'command';
        if ((await io.replies.next()) === 0) break;
      }
      continue;
    }
    commands++;
    const code = await io.replies.next();
    if (code === 0) break;
    const verb = line.trim().split(/\s+/)[0]?.toUpperCase();
    if (verb === 'DATA') {
      if (code === 354) mode = 'data';
      else {
        // The transaction is broken: its text is skipped, and RSET clears what is left of it.
        mode = 'skip';
        skipped++;
        io.echo?.('RSET');
        io.send('RSET');
        if ((await io.replies.next()) === 0) break;
      }
    }
    if (verb === 'QUIT' || code === 421) {
      quit = true;
      break;
    }
  }
  if (!quit && mode !== 'data') {
    io.send('QUIT');
    await io.replies.next();
  }
  io.end();
  return { commands, skipped };
}
