/*
 * auth/authenticator.ts — is this user name and password right?
 *
 * Sources, in this order of precedence:
 *   `smtp auth-pipe "/path"`  an external program (ZMailer's SMTP-auth-pipe): run without a shell,
 *                             user name as its argument, password on stdin; exit 0 = accepted
 *   `listen … auth <table>`   a credentials table: `user HASH` (see auth/hash.ts)
 *   `listen … auth`           the system's passwords, checked by PAM's unix_chkpwd helper; needs root
 * Outcomes are tri-state: ok, refused, or a temporary error (454 4.7.0).
 * Nothing here ever logs a password.
 */
import { systemPasswordCheck } from '../privsep/passwords.js';
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import type { Config, Listener } from '../config/model.js';
import type { TableRegistry } from '../table/table.js';
import { verifyPassword, plainSecret } from './hash.js';

export type AuthOutcome = { readonly kind: 'ok' } | { readonly kind: 'refused' } | { readonly kind: 'error'; readonly reason: string };

const UNIX_CHKPWD = ['/usr/sbin/unix_chkpwd', '/sbin/unix_chkpwd'];

export class Authenticator {
  constructor(
    private readonly config: Config,
    private readonly tables: TableRegistry,
    private readonly timeoutMs = 10_000,
  ) {}

  async check(listener: Listener, user: string, password: string): Promise<AuthOutcome> {
    if (user === '' || /[\x00-\x1f\x7f]/.test(user) || user.length > 255) return { kind: 'refused' };
    const pipe = this.config.smtp.authPipe;
    if (pipe !== undefined) return this.runPipe(pipe, user, password);
    if (listener.authTable !== undefined) {
      const r = this.tables.lookup(listener.authTable, user);
      if (r.kind === 'error') return { kind: 'error', reason: r.reason };
      if (r.kind === 'notfound') return { kind: 'refused' };
      try {
        return (await verifyPassword(password, r.value.trim())) ? { kind: 'ok' } : { kind: 'refused' };
      } catch (e) {
        return { kind: 'error', reason: (e as Error).message };
      }
    }
    return this.systemPassword(user, password);
  }

  /** Can CRAM-MD5 be offered on this listener (its table holds clear-text secrets)? */
  cramAvailable(listener: Listener): boolean {
    if (listener.authTable === undefined || this.config.smtp.authPipe !== undefined) return false;
    const t = this.tables.get(listener.authTable);
    const keys = t?.keys();
    if (!t || !Array.isArray(keys)) return false;
    return (keys as readonly string[]).some((k) => {
      const v = t.get(k);
      return v.kind === 'found' && plainSecret(v.value.trim()) !== undefined;
    });
  }

  cramSecret(listener: Listener, user: string): string | undefined | { error: string } {
    if (listener.authTable === undefined) return undefined;
    const r = this.tables.lookup(listener.authTable, user);
    if (r.kind === 'error') return { error: r.reason };
    return r.kind === 'found' ? plainSecret(r.value.trim()) : undefined;
  }

  private runPipe(program: string, user: string, password: string): Promise<AuthOutcome> {
    return this.run(program, [user], `${password}\n`, (code) => (code === 0 ? { kind: 'ok' } : { kind: 'refused' }));
  }

  private systemPassword(user: string, password: string): Promise<AuthOutcome> {
    // The SMTP side of a root-started smtpd: the privileged parent checks (privsep/passwords.ts).
    const viaParent = systemPasswordCheck();
    if (viaParent) return user.startsWith('-') ? Promise.resolve({ kind: 'refused' }) : viaParent(user, password);
    return this.checkSystemPassword(user, password);
  }

  /** The check itself, as root: unix_chkpwd. */
  checkSystemPassword(user: string, password: string): Promise<AuthOutcome> {
    if (process.getuid?.() !== 0) return Promise.resolve({ kind: 'error', reason: 'system passwords can only be checked when running as root' });
    const helper = UNIX_CHKPWD.find((p) => existsSync(p));
    if (!helper) return Promise.resolve({ kind: 'error', reason: 'unix_chkpwd (PAM) is not installed' });
    if (user.startsWith('-')) return Promise.resolve({ kind: 'refused' });
    // unix_chkpwd reads the password NUL-terminated on stdin; exit 0 = right password.
    return this.run(helper, [user, 'nonull'], `${password}\0`, (code) => (code === 0 ? { kind: 'ok' } : { kind: 'refused' }));
  }

  private run(cmd: string, args: string[], input: string, judge: (code: number | null) => AuthOutcome): Promise<AuthOutcome> {
    return new Promise((resolve) => {
      let done = false;
      const finish = (o: AuthOutcome): void => {
        if (done) return;
        done = true;
        clearTimeout(timer);
        resolve(o);
      };
      const child = spawn(cmd, args, { stdio: ['pipe', 'ignore', 'ignore'], env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        finish({ kind: 'error', reason: `${cmd} timed out` });
      }, this.timeoutMs);
      child.on('error', (e) => finish({ kind: 'error', reason: `${cmd}: ${e.message}` }));
      child.on('exit', (code, signal) => finish(signal ? { kind: 'error', reason: `${cmd} killed by ${signal}` } : judge(code)));
      child.stdin.on('error', () => undefined);
      child.stdin.end(input);
    });
  }
}
