/*
 * config/parse-http.ts — the `http` statements (the HTTP listener for
 * /metrics, the API and the dashboard), and their checks:
 *
 *   http listen on ADDRESS [port N] [tls pki NAME]
 *   http token NAME file "PATH" role admin|read-only
 *   http max-connections N
 *
 * Without `http listen on` there is no HTTP listener. Bound beyond
 * loopback (anything but 127.0.0.0/8, ::1, localhost), the listener needs
 * `tls pki NAME` and at least one token: the configuration is refused
 * otherwise, with the position of the listen statement.
 */
import type { Cursor } from './cursor.js';
import { where } from './cursor.js';
import type { Diagnostics } from './diagnostics.js';
import { DEFAULT_HTTP_MAX_CONNECTIONS, DEFAULT_HTTP_PORT, type HttpDraft, type HttpOptions, type HttpRole } from './http-options.js';
import { checkHostname, isIpAddress, parseCount, parsePort } from './values.js';

const SUB = ['listen', 'token', 'max-connections'];
const ROLES: readonly HttpRole[] = ['admin', 'read-only'];

export function parseHttp(c: Cursor): void {
  c.next();
  const http = c.draft.http;
  const sub = c.next();
  if (sub.kind !== 'word' || !SUB.includes(sub.text)) c.unknown(sub, SUB, '"http" option');
  if (sub.text === 'listen') {
    c.expectWord('on', '"http listen"');
    const a = c.value('an address after "http listen on" (e.g. 127.0.0.1)');
    if (!isIpAddress(a.text) && checkHostname(a.text) !== undefined) c.error(a.pos, `invalid address "${a.text}" after "http listen on"`);
    let port = DEFAULT_HTTP_PORT;
    let pki: string | undefined;
    while (!c.atEnd()) {
      const t = c.next();
      if (t.kind === 'word' && t.text === 'port') {
        const v = c.value('a port after "port"');
        const p = parsePort(v.text, true);
        if (p.ok) port = p.value;
        else c.error(v.pos, p.error);
      } else if (t.kind === 'word' && t.text === 'tls') {
        c.expectWord('pki', '"tls"');
        const n = c.value('a pki name after "tls pki"');
        pki = n.text;
        c.ref('pki', n.text, n.pos);
      } else c.unknown(t, ['port', 'tls'], '"http listen" option');
    }
    c.end('http');
    if (http.listen !== undefined) c.error(sub.pos, `"http listen" is already given at ${where(http.listen.pos, sub.pos)}`);
    else http.listen = { address: a.text, port, ...(pki !== undefined ? { pki } : {}), pos: sub.pos };
    return;
  }
  if (sub.text === 'token') {
    const name = c.value('a token name after "http token" (it names who made each change in the log)');
    if (!/^[A-Za-z0-9_.@-]{1,64}$/.test(name.text)) c.error(name.pos, `invalid token name "${name.text}" (letters, digits, "_", ".", "@", "-"; at most 64)`);
    c.expectWord('file', `"http token ${name.text}"`);
    const file = c.value('the path of a file holding the token after "file"');
    c.expectWord('role', `"http token ${name.text} file …"`);
    const role = c.next();
    if (role.kind !== 'word' || !(ROLES as readonly string[]).includes(role.text)) c.unknown(role, ROLES, 'role');
    c.end('http');
    const first = http.tokens.find((t) => t.name === name.text);
    if (first !== undefined) c.error(name.pos, `http token "${name.text}" is already defined at ${where(first.pos, name.pos)}`);
    else http.tokens.push({ name: name.text, file: c.path(file.text), role: role.text as HttpRole, pos: name.pos });
    return;
  }
  const v = c.value('a number after "http max-connections"');
  c.end('http');
  const n = parseCount(v.text, '"http max-connections"', 1);
  if (n.ok) http.maxConnections = { value: n.value, pos: v.pos };
  else c.error(v.pos, n.error);
}

/** Is `address` loopback only? */
export function isLoopback(address: string): boolean {
  return address === 'localhost' || address === '::1' || /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(address);
}

/** The HTTP options, or undefined when there is no listener; errors go to `diags`. */
export function buildHttp(d: HttpDraft, diags: Diagnostics): HttpOptions | undefined {
  const l = d.listen;
  if (l === undefined) {
    const t = d.tokens[0];
    if (t !== undefined) diags.error(t.pos, '"http token" without "http listen on …": there is no HTTP listener to use it');
    if (d.maxConnections !== undefined) diags.error(d.maxConnections.pos, '"http max-connections" without "http listen on …"');
    return undefined;
  }
  if (!isLoopback(l.address)) {
    if (l.pki === undefined) diags.error(l.pos, `"http listen on ${l.address}" is beyond loopback: add "tls pki NAME" (and an "http token") or listen on 127.0.0.1`);
    if (d.tokens.length === 0) diags.error(l.pos, `"http listen on ${l.address}" is beyond loopback: it needs at least one "http token NAME file PATH role …"`);
  }
  return { address: l.address, port: l.port, ...(l.pki !== undefined ? { pki: l.pki } : {}), tokens: d.tokens, maxConnections: d.maxConnections?.value ?? DEFAULT_HTTP_MAX_CONNECTIONS, pos: l.pos };
}
