/*
 * test/unit/delivery-helpers.ts — shared bits for the delivery-*.test.ts
 * files (unit and e2e): a configuration from smtpd.conf text, fake users, a
 * DeliveryTask over an in-memory message, Python's mailbox module as the
 * mail reader.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { formatDiagnostic, loadConfigText } from '../../src/config/load.js';
import type { Action, Config } from '../../src/config/model.js';
import type { DeliveryTask, RecipientResult } from '../../src/delivery/agent.js';
import { LocalAgent, type LocalAgentOptions } from '../../src/delivery/local/agent.js';
import type { UserBase, UserInfo } from '../../src/users/system-users.js';
import { MailLog } from '../../src/log/maillog.js';
import type { Envelope, EnvelopeRecipient } from '../../src/mail/envelope.js';
import { TableRegistry } from '../../src/table/table.js';
import { python, run } from '../helpers/tools.js';

export const IS_ROOT = process.getuid?.() === 0;
/** privsep settings to test: as root, both the deliver-as helper and in-daemon delivery. */
export const MODES: readonly boolean[] = IS_ROOT ? [true, false] : [false];

/** A fresh folder, removed after the test. Readable by everyone so that helpers running as other users can reach below it. */
export function tmpDir(t: { after(fn: () => void): void }, prefix = 'postern-dlv-'): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

/** A configuration from smtpd.conf text (no errors allowed). */
export function config(text: string): Config {
  const r = loadConfigText(text, 'smtpd.conf', { hostname: 'mx.example.org', cwd: '/' });
  const errors = r.diagnostics.filter((d) => d.severity === 'error').map(formatDiagnostic);
  assert.deepEqual(errors, []);
  assert.ok(r.config);
  return r.config;
}

export function actionOf(c: Config, name: string): Action {
  const a = c.actions.get(name);
  assert.ok(a, `no action ${name}`);
  return a;
}

/** Users that all map to the current uid/gid (deliveries in tests run as whoever runs the tests). */
export class FakeUsers implements UserBase {
  readonly users = new Map<string, UserInfo>();
  constructor(entries: Record<string, { home: string; uid?: number; gid?: number }>) {
    for (const [name, e] of Object.entries(entries)) {
      this.users.set(name, { name, uid: e.uid ?? process.getuid?.() ?? 0, gid: e.gid ?? process.getgid?.() ?? 0, home: e.home, shell: '/bin/sh' });
    }
  }
  lookup(name: string): UserInfo | undefined {
    return this.users.get(name) ?? this.users.get(name.toLowerCase());
  }
}

export function agent(opts: Partial<LocalAgentOptions> & Pick<LocalAgentOptions, 'config' | 'users'>, lines: string[] = []): LocalAgent {
  return new LocalAgent({ tables: new TableRegistry(), log: new MailLog({ sink: (l) => lines.push(l), trace: new Set(['mda']) }), ...opts });
}

/** An RFC 5322 message with CRLF line ends. */
export function message(headers: Record<string, string>, body: string): Buffer {
  const head = Object.entries(headers)
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  return Buffer.from(`${head}\r\n${body.replace(/\r?\n/g, '\r\n')}`);
}

let counter = 0;

export interface TaskSpec {
  readonly action: Action;
  readonly recipients: readonly (string | (Partial<EnvelopeRecipient> & { address: string }))[];
  readonly message: Buffer;
  readonly sender?: string;
  /** Feed the body in chunks of this size (default 64 KiB). */
  readonly chunk?: number;
  readonly signal?: AbortSignal;
  readonly envelope?: Partial<Envelope>;
}

export function task(spec: TaskSpec): DeliveryTask {
  const msgid = (++counter).toString(16).padStart(8, '0');
  const recipients: EnvelopeRecipient[] = spec.recipients.map((r, i) => ({
    evpid: `${msgid}${(i + 1).toString(16).padStart(8, '0')}`,
    action: spec.action.name,
    ...(typeof r === 'string' ? { address: r } : r),
  }));
  const envelope: Envelope = {
    version: 1,
    msgid,
    sender: spec.sender ?? 'alice@example.net',
    recipients,
    body: '8BITMIME',
    smtputf8: false,
    arrival: Date.now(),
    client: { address: '127.0.0.1', port: 40000, helo: 'client.example.net', proto: 'ESMTP', listener: '127.0.0.1:25' },
    size: spec.message.length,
    ...spec.envelope,
  };
  const chunk = spec.chunk ?? 65536;
  return {
    envelope,
    recipients,
    action: spec.action,
    attempt: 1,
    signal: spec.signal ?? new AbortController().signal,
    openBody: () => {
      const parts: Buffer[] = [];
      for (let off = 0; off < spec.message.length; off += chunk) parts.push(spec.message.subarray(off, off + chunk));
      return Readable.from(parts);
    },
  };
}

export function statuses(rs: readonly RecipientResult[]): string[] {
  return rs.map((r) => `${r.status} ${r.enhanced}`);
}

export interface ParsedMessage {
  readonly from: string;
  readonly headers: [string, string][];
  readonly body: string;
}

/** Read an mbox with Python's mailbox module (a real mail reader). */
export async function readMboxWithPython(path: string): Promise<ParsedMessage[]> {
  const script = `
import json, mailbox, sys
out = []
for m in mailbox.mbox(sys.argv[1], create=False):
    out.append({"from": m.get_from(), "headers": [[k, v] for k, v in m.items()], "body": m.get_payload()})
print(json.dumps(out))
`;
  const r = await run(python(), ['-c', script, path]);
  assert.equal(r.status, 0, r.stderr);
  return JSON.parse(r.stdout) as ParsedMessage[];
}
