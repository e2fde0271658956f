/*
 * submit/enqueue-socket.ts — where `sendmail` tells the daemon a file is
 * waiting in offline/ (a Unix socket, mode 0666: any local user may submit
 * mail, as with OpenSMTPD's and Postfix's sendmail). One line each way:
 *
 *   → ENQUEUE <name>
 *   ← OK <msgid> [<n> rejected: …]  |  REFUSED <code> <text>  |  TEMPFAIL <text>
 *
 * The socket can only point at files of offline/; what the file contains is
 * checked by LocalEnqueuer. A malformed request gets an error line.
 */
import { createServer, type Server } from 'node:net';
import { chmodSync, unlinkSync } from 'node:fs';
import type { MailLog } from '../log/maillog.js';
import type { LocalEnqueuer } from './local-enqueue.js';

export class EnqueueSocket {
  private server?: Server;

  constructor(
    private readonly path: string,
    private readonly enqueuer: LocalEnqueuer,
    private readonly log: MailLog,
  ) {}

  async listen(): Promise<void> {
    try {
      unlinkSync(this.path);
    } catch {
      /* none left over */
    }
    const server = createServer((sock) => {
      let buf = '';
      sock.setEncoding('utf8');
      sock.on('error', () => undefined);
      sock.on('data', (d: string) => {
        buf += d;
        if (buf.length > 1024) return sock.end('ERROR request too long\n');
        const nl = buf.indexOf('\n');
        if (nl < 0) return;
        const line = buf.slice(0, nl);
        buf = '';
        const m = /^ENQUEUE ([A-Za-z0-9._-]{1,128})$/.exec(line);
        if (!m || m[1] === undefined) return sock.end('ERROR bad request\n');
        this.enqueuer.enqueue(m[1]).then(
          (r) => {
            if (r.kind === 'ok') sock.end(`OK ${r.msgid}${r.rejected.length ? ` ${r.rejected.length} rejected: ${r.rejected.map((x) => `${x.rcpt} (${x.reason})`).join(', ')}` : ''}\n`);
            else if (r.kind === 'refused') sock.end(`REFUSED ${r.code} ${r.text}\n`);
            else sock.end(`TEMPFAIL ${r.text}\n`);
          },
          (e: Error) => {
            this.log.error(`enqueue: ${e.message}`);
            sock.end('TEMPFAIL internal error\n');
          },
        );
      });
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(this.path, () => resolve());
    });
    chmodSync(this.path, 0o666);
    this.server = server;
  }

  close(): void {
    this.server?.close();
    try {
      unlinkSync(this.path);
    } catch {
      /* gone */
    }
  }
}
