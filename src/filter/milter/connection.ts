/*
 * filter/milter/connection.ts — one socket to a milter: send packets, wait
 * for the next answer with a deadline. The bytes are cut by the pure codec
 * (codec.ts); this file only binds it to a socket and a timer.
 *
 * Any failure — refused connection, a timeout, a closed socket, a packet
 * that breaks the protocol — becomes a MilterError with a short reason for
 * the log; the socket is then destroyed and every later call fails at once.
 */
import net from 'node:net';
import { MilterDecoder, parseResponse, type Response } from './codec.js';

export class MilterError extends Error {}

/** Where a milter listens: "inet:HOST:PORT", "inet6:[ADDR]:PORT", "unix:/PATH" or "/PATH" (Postfix's and sendmail's forms). */
export type MilterAddress = { readonly kind: 'tcp'; readonly host: string; readonly port: number } | { readonly kind: 'unix'; readonly path: string };

export function parseMilterAddress(s: string): MilterAddress | undefined {
  if (s.startsWith('/')) return { kind: 'unix', path: s };
  const unix = /^(?:unix|local):(\/.+)$/.exec(s);
  if (unix) return { kind: 'unix', path: unix[1]! };
  const inet = /^inet6?:(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(s) ?? /^inet:(\d{1,5})@(.+)$/.exec(s);
  if (!inet) return undefined;
  const [host, port] = inet[3] !== undefined ? [inet[1] ?? inet[2]!, Number(inet[3])] : [inet[2]!, Number(inet[1])];
  if (port < 1 || port > 65535) return undefined;
  return { kind: 'tcp', host, port };
}

export class MilterConnection {
  readonly #socket: net.Socket;
  readonly #decoder = new MilterDecoder();
  readonly #ready: Response[] = [];
  #waiter?: { resolve: (r: Response) => void; reject: (e: Error) => void; timer: NodeJS.Timeout; readonly timeoutMs: number };
  #failure?: MilterError;

  private constructor(socket: net.Socket) {
    this.#socket = socket;
    socket.on('data', (chunk: Buffer) => {
      for (const p of this.#decoder.push(chunk)) this.#ready.push(parseResponse(p));
      if (this.#decoder.error !== undefined) this.fail(`malformed packet (${this.#decoder.error})`);
      else this.#wake();
    });
    socket.on('error', (e) => this.fail(e.message));
    socket.on('close', () => this.fail('connection closed by the milter'));
  }

  /** Connect within `timeoutMs`. */
  static open(address: MilterAddress, timeoutMs: number): Promise<MilterConnection> {
    return new Promise((resolve, reject) => {
      const socket = address.kind === 'tcp' ? net.connect({ host: address.host, port: address.port }) : net.connect({ path: address.path });
      socket.setNoDelay(true);
      const timer = setTimeout(() => {
        socket.destroy();
        reject(new MilterError(`connect timeout after ${timeoutMs} ms`));
      }, timeoutMs);
      socket.once('error', (e) => {
        clearTimeout(timer);
        reject(new MilterError(`cannot connect: ${e.message}`));
      });
      socket.once('connect', () => {
        clearTimeout(timer);
        socket.removeAllListeners('error');
        resolve(new MilterConnection(socket));
      });
    });
  }

  get failed(): boolean {
    return this.#failure !== undefined;
  }

  send(...packets: Buffer[]): void {
    if (this.#failure) return;
    this.#socket.write(packets.length === 1 ? packets[0]! : Buffer.concat(packets));
  }

  /** The next answer; a "progress" answer restarts the deadline and is not returned. */
  next(timeoutMs: number): Promise<Response> {
    if (this.#failure) return Promise.reject(this.#failure);
    return new Promise((resolve, reject) => {
      this.#waiter = { resolve, reject, timeoutMs, timer: this.#arm(timeoutMs) };
      this.#wake();
    });
  }

  #arm(timeoutMs: number): NodeJS.Timeout {
    return setTimeout(() => this.fail(`timeout after ${timeoutMs} ms`), timeoutMs);
  }

  /** End the connection; an answer still awaited fails ("closed"). */
  close(): void {
    if (this.#waiter) return this.fail('closed while an answer was awaited');
    this.#failure ??= new MilterError('closed');
    this.#socket.end();
  }

  fail(why: string): void {
    if (this.#failure) return;
    this.#failure = new MilterError(why);
    this.#socket.destroy();
    const w = this.#waiter;
    this.#waiter = undefined;
    if (w) {
      clearTimeout(w.timer);
      w.reject(this.#failure);
    }
  }

  #wake(): void {
    while (this.#waiter && this.#ready.length > 0) {
      const r = this.#ready.shift()!;
      const w = this.#waiter;
      if (r.kind === 'progress') {
        clearTimeout(w.timer);
        w.timer = this.#arm(w.timeoutMs);
        continue;
      }
      this.#waiter = undefined;
      clearTimeout(w.timer);
      w.resolve(r);
    }
  }
}
