/*
 * control/protocol.ts — the control socket's wire format. Pure: no socket.
 *
 * One JSON object per line (LF; a CR before it is ignored), UTF-8, each
 * line at most MAX_REQUEST_BYTES:
 *
 *   → {"id":1,"command":["show","queue"],"args":{"msgid":"1a2b3c4d"}}
 *   ← {"id":1,"ok":true,"data":[…]}
 *   ← {"id":1,"ok":false,"error":"no such message: 1a2b3c4d"}
 *
 * A streaming command (monitor, show message) answers several replies with
 * the same id: each but the last carries "more":true; monitor has no last
 * one and streams until the client goes away.
 *
 * Every command and its arguments are declared in COMMANDS; parseRequest()
 * checks a line against it, so the server's handlers only ever see typed,
 * validated arguments. A request that fails the check (bad JSON, unknown
 * command, wrong types, oversized line) gets an error reply with the
 * request's id when one could be read, else id null.
 */

/** Longest request line accepted, in bytes (without the LF). */
export const MAX_REQUEST_BYTES = 64 * 1024;

/** What an argument may hold. Ids are normalised to lower case. */
export type ArgKind = 'msgid' | 'evpid' | 'id' | 'target' | 'name';

interface ArgSpec {
  readonly kind: ArgKind;
  readonly optional?: true;
}

interface CommandSpec {
  readonly args: Readonly<Record<string, ArgSpec>>;
  /** The answer is a stream of replies (see the file header). */
  readonly stream?: true;
}

/** The commands, by name (their words joined by one space), and their arguments. */
export const COMMANDS = {
  'show queue': { args: { msgid: { kind: 'msgid', optional: true } } },
  'show envelope': { args: { evpid: { kind: 'evpid' } } },
  'show message': { args: { id: { kind: 'id' } }, stream: true },
  'show stats': { args: {} },
  'show status': { args: {} },
  'show hosts': { args: {} },
  'show routes': { args: {} },
  'show cluster': { args: {} },
  schedule: { args: { target: { kind: 'target' } } },
  remove: { args: { target: { kind: 'target' } } },
  'pause envelope': { args: { target: { kind: 'target' } } },
  'resume envelope': { args: { target: { kind: 'target' } } },
  'pause smtp': { args: {} },
  'pause mta': { args: {} },
  'pause mda': { args: {} },
  'resume smtp': { args: {} },
  'resume mta': { args: {} },
  'resume mda': { args: {} },
  'log brief': { args: {} },
  'log verbose': { args: {} },
  monitor: { args: {}, stream: true },
  'update table': { args: { name: { kind: 'name' } } },
  reload: { args: {} },
  stop: { args: {} },
} as const satisfies Readonly<Record<string, CommandSpec>>;

export type CommandName = keyof typeof COMMANDS;

/** The validated arguments of a command, as strings. */
export type Args = Readonly<Record<string, string>>;

export interface Request {
  readonly id: number;
  readonly name: CommandName;
  readonly args: Args;
}

export type Reply =
  | { readonly id: number | null; readonly ok: true; readonly data: unknown; readonly more?: true }
  | { readonly id: number | null; readonly ok: false; readonly error: string };

export type ParsedRequest = { readonly ok: true; readonly request: Request } | { readonly ok: false; readonly id: number | null; readonly error: string };

const ARG_PATTERNS: Readonly<Record<ArgKind, { re: RegExp; what: string }>> = {
  msgid: { re: /^[0-9a-f]{8}$/i, what: 'a message id (8 hex digits)' },
  evpid: { re: /^[0-9a-f]{16}$/i, what: 'an envelope id (16 hex digits)' },
  id: { re: /^([0-9a-f]{8}|[0-9a-f]{16})$/i, what: 'a message id (8 hex digits) or an envelope id (16)' },
  target: { re: /^([0-9a-f]{8}|[0-9a-f]{16}|all)$/i, what: 'a message id (8 hex digits), an envelope id (16) or "all"' },
  name: { re: /^[A-Za-z0-9_.@:+-]{1,255}$/, what: 'a table name' },
};

/** Is `s` a valid value of kind `k`? */
export function argValid(k: ArgKind, s: string): boolean {
  return ARG_PATTERNS[k].re.test(s);
}

/** How an argument kind is described in errors. */
export function argWhat(k: ArgKind): string {
  return ARG_PATTERNS[k].what;
}

/** Check one request line against COMMANDS. */
export function parseRequest(line: string): ParsedRequest {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return { ok: false, id: null, error: 'malformed request: not JSON' };
  }
  if (typeof v !== 'object' || v === null || Array.isArray(v)) return { ok: false, id: null, error: 'malformed request: not a JSON object' };
  const o = v as Record<string, unknown>;
  const id = o['id'];
  if (typeof id !== 'number' || !Number.isSafeInteger(id) || id < 0) return { ok: false, id: null, error: 'malformed request: "id" must be a non-negative integer' };
  const fail = (error: string): ParsedRequest => ({ ok: false, id, error });
  for (const k of Object.keys(o)) if (k !== 'id' && k !== 'command' && k !== 'args') return fail(`malformed request: unknown member "${printable(k)}"`);
  const command = o['command'];
  if (!Array.isArray(command) || command.length === 0 || command.length > 4 || !command.every((w) => typeof w === 'string')) {
    return fail('malformed request: "command" must be an array of words');
  }
  const name = command.join(' ');
  if (!Object.hasOwn(COMMANDS, name)) return fail(`unknown command "${printable(name)}"`);
  const spec: CommandSpec = COMMANDS[name as CommandName];
  const raw = o['args'] ?? {};
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) return fail('malformed request: "args" must be an object');
  const given = raw as Record<string, unknown>;
  const args: Record<string, string> = {};
  for (const k of Object.keys(given)) if (!Object.hasOwn(spec.args, k)) return fail(`${name}: unknown argument "${printable(k)}"`);
  for (const [k, a] of Object.entries(spec.args)) {
    const val = given[k];
    if (val === undefined) {
      if (a.optional) continue;
      return fail(`${name}: missing argument "${k}"`);
    }
    if (typeof val !== 'string' || !argValid(a.kind, val)) return fail(`${name}: "${k}" must be ${argWhat(a.kind)}`);
    args[k] = a.kind === 'name' ? val : val.toLowerCase();
  }
  return { ok: true, request: { id, name: name as CommandName, args } };
}

/** Is the command's answer a stream? */
export function isStream(name: CommandName): boolean {
  return (COMMANDS[name] as CommandSpec).stream === true;
}

/** One reply or request as a line. */
export function encodeLine(obj: unknown): string {
  return `${JSON.stringify(obj)}\n`;
}

/** A request line for `name` (words split on spaces) with `args`. */
export function encodeRequest(id: number, name: CommandName, args: Args = {}): string {
  return encodeLine({ id, command: name.split(' '), args });
}

/** Check a reply line read by a client. */
export function parseReply(line: string): Reply | undefined {
  let v: unknown;
  try {
    v = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const id = o['id'];
  if (id !== null && typeof id !== 'number') return undefined;
  if (o['ok'] === true) return o['more'] === true ? { id, ok: true, data: o['data'], more: true } : { id, ok: true, data: o['data'] };
  if (o['ok'] === false && typeof o['error'] === 'string') return { id, ok: false, error: o['error'] };
  return undefined;
}

export type LineEvent = { readonly line: string } | { readonly tooLong: true };

/**
 * Cuts a byte stream into lines of at most `max` bytes (a CR before the LF
 * not counted). A longer line is reported once (tooLong) and skipped up to
 * its LF, without ever holding more than max + 1 bytes.
 */
export class LineDecoder {
  private parts: Buffer[] = [];
  private size = 0;
  private skipping = false;

  constructor(private readonly max: number) {}

  push(chunk: Buffer): LineEvent[] {
    const out: LineEvent[] = [];
    let start = 0;
    for (;;) {
      const nl = chunk.indexOf(0x0a, start);
      const piece = chunk.subarray(start, nl < 0 ? chunk.length : nl);
      if (!this.skipping) {
        if (this.size + piece.length > this.max + 1) {
          this.drop();
          this.skipping = true;
          out.push({ tooLong: true });
        } else {
          this.parts.push(piece);
          this.size += piece.length;
        }
      }
      if (nl < 0) return out;
      if (!this.skipping) {
        let bytes = Buffer.concat(this.parts, this.size);
        if (bytes.length > 0 && bytes[bytes.length - 1] === 0x0d) bytes = bytes.subarray(0, -1);
        if (bytes.length > this.max) out.push({ tooLong: true });
        else if (bytes.toString('latin1').trim() !== '') out.push({ line: bytes.toString('utf8') });
      }
      this.skipping = false;
      this.drop();
      start = nl + 1;
    }
  }

  private drop(): void {
    this.parts = [];
    this.size = 0;
  }
}

/** Keep control characters and quotes out of error text echoed back. */
function printable(s: string): string {
  // eslint-disable-next-line no-control-regex
  const t = s.replace(/[\x00-\x1f\x7f"\\]/g, '?');
  return t.length > 64 ? `${t.slice(0, 63)}…` : t;
}
