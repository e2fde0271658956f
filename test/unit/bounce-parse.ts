/*
 * test/unit/bounce-parse.ts — parse a delivery status notification with a
 * real MIME parser (Python's email package, stdlib only) and return its
 * structure as JSON, for the scheduler and bounce tests.
 */
import { python, run } from '../helpers/tools.js';

export interface ParsedDsn {
  /** Top-level header fields, unfolded, in order. */
  readonly headers: [string, string][];
  readonly contentType: string;
  readonly params: Record<string, string>;
  readonly defects: string[];
  readonly parts: {
    readonly type: string;
    readonly headers: [string, string][];
    readonly text?: string;
    /** message/delivery-status (or global): the blocks, each a list of fields. */
    readonly blocks?: [string, string][][];
    /** message/rfc822 or global: the embedded message's fields and body. */
    readonly message?: { readonly headers: [string, string][]; readonly body: string };
  }[];
}

const SCRIPT = String.raw`
import sys, json, email, email.parser
data = sys.stdin.buffer.read()
def fix(s):
    try:
        return s.encode('ascii', 'surrogateescape').decode('utf-8')
    except Exception:
        return s
def unfold(v):
    return fix(str(v)).replace('\r\n', '').replace('\n', '')
def hdrs(m):
    return [[k, unfold(v)] for k, v in m.raw_items()]
# Python parses only message/delivery-status into blocks: read the global one the same way.
raw = data.replace(b'Content-Type: message/global-delivery-status', b'Content-Type: message/delivery-status; x-was=global')
msg = email.message_from_bytes(raw)
out = {'headers': hdrs(msg), 'contentType': msg.get_content_type(), 'params': dict((k, v) for k, v in msg.get_params()[1:]),
       'defects': [type(d).__name__ for d in msg.defects], 'parts': []}
for part in msg.get_payload():
    ct = part.get_content_type()
    if part.get_param('x-was') == 'global':
        ct = 'message/global-delivery-status'
    p = {'type': ct, 'headers': [h for h in hdrs(part) if h[0] != 'Content-Type' or 'x-was' not in h[1]]}
    out['defects'] += [type(d).__name__ for d in part.defects]
    if ct in ('message/delivery-status', 'message/global-delivery-status'):
        p['blocks'] = [hdrs(b) for b in part.get_payload()]
    elif part.get_content_maintype() == 'message' and ct != 'message/global-headers':
        inner = part.get_payload(0)
        p['message'] = {'headers': hdrs(inner), 'body': fix(inner.get_payload())}
    elif ct == 'message/global-headers':
        # Python reads a headers-only message/* as a message without body.
        inner = part.get_payload(0)
        p['text'] = ''.join(k + ': ' + fix(v) + '\r\n' for k, v in inner.raw_items())
    else:
        p['text'] = part.get_payload(decode=True).decode('utf-8')
    out['parts'].append(p)
print(json.dumps(out))
`;

export async function parseDsn(bytes: Buffer): Promise<ParsedDsn> {
  const r = await run(python(), ['-c', SCRIPT], { input: bytes });
  if (r.status !== 0) throw new Error(`python email parser failed: ${r.stderr}`);
  return JSON.parse(r.stdout) as ParsedDsn;
}

/** The value of the first field called `name` (case-insensitive). */
export function field(list: readonly [string, string][] | undefined, name: string): string | undefined {
  return list?.find(([k]) => k.toLowerCase() === name.toLowerCase())?.[1];
}
