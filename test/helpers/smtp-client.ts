/*
 * test/helpers/smtp-client.ts — a raw SMTP client for tests: send exact
 * bytes, read replies one at a time. Used where a third-party client would
 * not send what the test needs (smuggling, pipelining, broken syntax).
 */
import { connect, type Socket } from 'node:net';

export interface ParsedReply {
  readonly code: number;
  readonly lines: string[];
  readonly text: string;
}

export class RawClient {
  private buf = '';
  private waiters: (() => void)[] = [];
  closed = false;

  private constructor(readonly socket: Socket) {
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => {
      this.buf += d;
      this.wake();
    });
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => undefined);
  }

  static open(port: number, host = '127.0.0.1', localAddress?: string): Promise<RawClient> {
    return new Promise((resolve, reject) => {
      const s = connect({ port, host, localAddress, noDelay: true }, () => resolve(new RawClient(s)));
      s.once('error', reject);
    });
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    w.forEach((f) => f());
  }

  send(data: string | Buffer): void {
    this.socket.write(data);
  }

  /** Read one (possibly multi-line) reply; rejects on timeout or when the server closed first. */
  async reply(timeoutMs = 5000): Promise<ParsedReply> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const r = this.take();
      if (r) return r;
      if (this.closed) throw new Error(`connection closed while waiting for a reply (buffer: ${JSON.stringify(this.buf)})`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`timeout waiting for a reply (buffer: ${JSON.stringify(this.buf)})`);
      await new Promise<void>((res) => {
        const t = setTimeout(res, left);
        this.waiters.push(() => {
          clearTimeout(t);
          res();
        });
      });
    }
  }

  private take(): ParsedReply | undefined {
    const lines: string[] = [];
    let pos = 0;
    for (;;) {
      const nl = this.buf.indexOf('\r\n', pos);
      if (nl < 0) return undefined;
      const line = this.buf.slice(pos, nl);
      lines.push(line);
      pos = nl + 2;
      if (line.length < 4 || line[3] === ' ') break;
    }
    this.buf = this.buf.slice(pos);
    const code = Number(lines[0]?.slice(0, 3));
    return { code, lines, text: lines.join('\n') };
  }

  /** Whatever arrived but was not read as a reply. */
  get pending(): string {
    return this.buf;
  }

  /** Resolves when the server closed the connection (or after timeout, false). */
  async waitClosed(timeoutMs = 5000): Promise<boolean> {
    const deadline = Date.now() + timeoutMs;
    while (!this.closed && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    return this.closed;
  }

  close(): void {
    this.socket.destroy();
  }
}

/**
 * Run a dialogue script against a server:
 *   S: 220            expect a reply starting with this text ("250 2.1.0", "5" …)
 *   C: EHLO x         send the line + CRLF ("C:" alone sends an empty line)
 *   R: text           send raw text (escapes \r \n \0 allowed), no CRLF added
 *   CLOSED            expect the server to close the connection
 */
export async function dialogue(client: RawClient, script: string): Promise<ParsedReply[]> {
  const got: ParsedReply[] = [];
  for (const rawLine of script.split('\n')) {
    const line = rawLine.trim();
    if (line === '' || line.startsWith('#')) continue;
    if (line === 'C:') client.send('\r\n');
    else if (line.startsWith('C: ')) client.send(`${line.slice(3)}\r\n`);
    else if (line.startsWith('R: ')) client.send(unescape(line.slice(3)));
    else if (line.startsWith('S: ')) {
      const want = line.slice(3);
      const r = await client.reply();
      got.push(r);
      const last = r.lines[r.lines.length - 1] ?? '';
      const first = r.lines[0] ?? '';
      const head = `${first.slice(0, 3)} ${last.slice(4)}`;
      if (!head.startsWith(want) && !last.startsWith(want)) throw new Error(`expected "${want}", got:\n${r.text}`);
    } else if (line === 'CLOSED') {
      if (!(await client.waitClosed())) throw new Error('expected the server to close the connection');
    } else throw new Error(`bad script line: ${line}`);
  }
  return got;
}

export function unescape(s: string): string {
  return s.replace(/\\(r|n|0|t|\\)/g, (_, c: string) => ({ r: '\r', n: '\n', '0': '\0', t: '\t', '\\': '\\' })[c] ?? c);
}
