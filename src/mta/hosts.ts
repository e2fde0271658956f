/*
 * mta/hosts.ts — what the relay agent knows of the remote hosts it has
 * talked to since the start, for `smtpctl show hosts` (as OpenSMTPD's):
 * per address and port, the name it was reached by, sessions open now
 * (cached idle ones included), sessions and messages taken in all, failed
 * connections in a row and the last error. Bounded: past MAX_HOSTS the entries unused the longest go.
 */

export interface HostView {
  readonly host: string;
  readonly address: string;
  readonly state: 'up' | 'down';
  readonly active: number;
  readonly sessions: number;
  readonly messages: number;
  /** Connections that failed since the last one that worked. */
  readonly errors: number;
  readonly lastError?: string;
  /** ISO time of the last connection or attempt. */
  readonly last: string;
}

interface Entry {
  host: string;
  active: number;
  sessions: number;
  messages: number;
  errors: number;
  lastError: string | undefined;
  last: number;
}

export const MAX_HOSTS = 1000;

export class HostTable {
  /** address:port → entry, least recently used first. */
  private readonly byAddress = new Map<string, Entry>();

  constructor(private readonly now: () => number = Date.now) {}

  connected(address: string, host: string): void {
    const e = this.touch(address, host);
    e.active++;
    e.sessions++;
    e.errors = 0;
    e.lastError = undefined;
  }

  disconnected(address: string, host: string): void {
    const e = this.touch(address, host);
    e.active = Math.max(0, e.active - 1);
  }

  /** A message taken by that host (for at least one of its recipients). */
  sent(address: string, host: string): void {
    this.touch(address, host).messages++;
  }

  failed(address: string, host: string, error: string): void {
    const e = this.touch(address, host);
    e.errors++;
    e.lastError = error;
  }

  list(): HostView[] {
    return [...this.byAddress]
      .map(([address, e]) => ({
        host: e.host,
        address,
        state: e.errors > 0 && e.active === 0 ? ('down' as const) : ('up' as const),
        active: e.active,
        sessions: e.sessions,
        messages: e.messages,
        errors: e.errors,
        ...(e.lastError !== undefined ? { lastError: e.lastError } : {}),
        last: new Date(e.last).toISOString(),
      }))
      .sort((a, b) => a.host.localeCompare(b.host) || a.address.localeCompare(b.address));
  }

  private touch(address: string, host: string): Entry {
    let e = this.byAddress.get(address);
    if (e !== undefined) this.byAddress.delete(address);
    else e = { host, active: 0, sessions: 0, messages: 0, errors: 0, lastError: undefined, last: 0 };
    e.host = host;
    e.last = this.now();
    this.byAddress.set(address, e);
    if (this.byAddress.size > MAX_HOSTS) {
      // The least recently used entry without a session open goes.
      for (const [k, v] of this.byAddress) {
        if (v.active === 0) {
          this.byAddress.delete(k);
          break;
        }
      }
    }
    return e;
  }
}
