/*
 * spool/fs/layout.ts — where things live under the spool root.
 *
 *   ROOT/VERSION                 "postern-spool 1\n"; checked at open
 *   ROOT/incoming/<msgid>        a large message being written (temp)
 *   ROOT/journal/<pid>-<seq>.jnl journal segments not yet checkpointed (journal-format.ts)
 *   ROOT/queue/<bb>/<msgid>      committed message file (bb = first 2 hex)
 *   ROOT/queue/<bb>/<msgid>.log  its outcome records
 *   ROOT/corrupt/                files that failed validation, for a human
 *   ROOT/offline/                reserved for the sendmail command
 *
 * Every folder is mode 0700 and every file 0600.
 */
import { join } from 'node:path';

export const FORMAT_VERSION = 1;
export const VERSION_TEXT = `postern-spool ${FORMAT_VERSION}\n`;

export class Layout {
  readonly incoming: string;
  readonly journal: string;
  readonly queue: string;
  readonly corrupt: string;
  readonly offline: string;
  readonly versionFile: string;

  constructor(readonly root: string) {
    this.incoming = join(root, 'incoming');
    this.journal = join(root, 'journal');
    this.queue = join(root, 'queue');
    this.corrupt = join(root, 'corrupt');
    this.offline = join(root, 'offline');
    this.versionFile = join(root, 'VERSION');
  }

  /** All 256 bucket names, "00" … "ff". */
  static buckets(): string[] {
    return Array.from({ length: 256 }, (_, i) => i.toString(16).padStart(2, '0'));
  }

  bucketDir(msgid: string): string {
    return join(this.queue, msgid.slice(0, 2));
  }

  messagePath(msgid: string): string {
    return join(this.queue, msgid.slice(0, 2), msgid);
  }

  logPath(msgid: string): string {
    return join(this.queue, msgid.slice(0, 2), `${msgid}.log`);
  }

  incomingPath(msgid: string): string {
    return join(this.incoming, msgid);
  }
}
