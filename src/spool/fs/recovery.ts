/*
 * spool/fs/recovery.ts — preparing the spool folder and checking it at open.
 *
 * prepare(): create the folders (0700) and the VERSION file on a new spool,
 * refuse a folder whose VERSION names another format or that holds files
 * without a VERSION (probably not a spool at all). Every folder created is
 * made durable by an fsync of its parent.
 *
 * recover(): remove what incoming/ holds (messages whose commit never
 * finished: nobody was told 250 for them), validate every file in queue/
 * (trailer, checksum, envelope schema, right bucket), move what fails to
 * corrupt/ with the reason in the report and the log, and drop outcome logs
 * whose message is gone. A file that cannot be read at all (EACCES, EIO)
 * is logged and left in place: that is not proof of damage, and moving a
 * whole queue aside over a permission mistake would stop all delivery.
 * With check = false only names are checked here (see recover()).
 * Nothing found on disk can make this throw except a failure to move a
 * file out of the way. Folder work uses synchronous calls (this runs once,
 * before the spool serves anyone); the file checks run asynchronously, 32
 * at a time.
 *
 * Run recover() in one process only, before any writer starts: it removes
 * every file in incoming/, including ones another live process is writing.
 */
import { closeSync, existsSync, fsyncSync, lstatSync, mkdirSync, openSync, readFileSync, readdirSync, renameSync, rmSync, statSync, writeSync } from 'node:fs';
import { basename, dirname, join, relative } from 'node:path';
import type { RecoveryReport } from '../spool.js';
import { SpoolError, isErrno } from '../errors.js';
import { Layout, VERSION_TEXT } from './layout.js';
import { readHeadAt } from './message-file.js';
import { fsyncPath } from './sync-path.js';

type Log = (line: string) => void;

const fsyncDir = (path: string): void => fsyncPath(path);

/** mkdir -p with mode 0700; fsyncs the parent of every folder it creates. */
function ensureDir(path: string): boolean {
  if (existsSync(path)) {
    if (!statSync(path).isDirectory()) throw new SpoolError('STATE', `${path} exists and is not a folder`);
    return false;
  }
  const parent = dirname(path);
  if (parent !== path) ensureDir(parent);
  try {
    mkdirSync(path, { mode: 0o700 });
  } catch (err) {
    if (isErrno(err, 'EEXIST')) return false;
    throw err;
  }
  fsyncDir(parent);
  return true;
}

function writeVersion(layout: Layout): void {
  const tmp = `${layout.versionFile}.tmp`;
  const fd = openSync(tmp, 'w', 0o600);
  try {
    writeSync(fd, VERSION_TEXT);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
  renameSync(tmp, layout.versionFile);
  fsyncDir(layout.root);
}

/** Create or check the spool folder. Throws SpoolError('VERSION') on a mismatch. */
export function prepare(layout: Layout, log: Log): void {
  ensureDir(layout.root);
  const mode = statSync(layout.root).mode;
  // Search permission for others is expected (0711: sendmail reaches offline/); read or write is not.
  if ((mode & 0o066) !== 0) log(`spool: warning: ${layout.root} is accessible to group/others (mode ${(mode & 0o777).toString(8)})`);
  let version: string | undefined;
  try {
    version = readFileSync(layout.versionFile, 'utf8');
  } catch (err) {
    if (!isErrno(err, 'ENOENT')) throw err;
  }
  if (version === undefined) {
    // The daemon keeps its pid file and control socket in the spool root by default.
    const others = readdirSync(layout.root).filter((n) => n !== 'VERSION.tmp' && !/^(smtpd\.(pid|sock)|enqueue\.sock)$/.test(n));
    if (others.length > 0) {
      throw new SpoolError('VERSION', `${layout.root} has no VERSION file but is not empty; not a Postern spool?`);
    }
    writeVersion(layout);
  } else if (version !== VERSION_TEXT) {
    throw new SpoolError('VERSION', `${layout.versionFile} says ${JSON.stringify(version.trim())}; this Postern reads ${JSON.stringify(VERSION_TEXT.trim())}`);
  }
  for (const dir of [layout.incoming, layout.journal, layout.queue, layout.corrupt, layout.offline]) ensureDir(dir);
  let created = false;
  for (const b of Layout.buckets()) {
    const dir = join(layout.queue, b);
    if (existsSync(dir)) continue;
    mkdirSync(dir, { mode: 0o700 });
    created = true;
  }
  if (created) fsyncDir(layout.queue);
}

/** Run `fn` on every item, at most `limit` at a time. */
async function eachLimited<T>(items: readonly T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) await fn(items[next++] as T);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}

/**
 * `check: false` (the daemon with a large queue): only names are looked at
 * here; each message file is validated when it is first loaded
 * (FsSpool.load(), which moves a corrupt one aside then), so a queue of a
 * million files is opened in the time it takes to list it, and no file is
 * read twice. The report then counts the message files found, unchecked.
 */
export function recover(layout: Layout, log: Log, check = true): Promise<RecoveryReport & { readonly msgids: readonly string[] }> {
  return new Recovery(layout, log).run(check);
}

/** Move `path` into corrupt/ under a free name; returns the new path (the caller fsyncs the folders). */
export function moveToCorrupt(layout: Layout, path: string): string {
  const base = basename(path);
  let target = join(layout.corrupt, base);
  for (let n = 1; existsSync(target); n++) target = join(layout.corrupt, `${base}.${n}`);
  renameSync(path, target);
  return target;
}

class Recovery {
  private readonly corrupt: { name: string; reason: string }[] = [];
  private readonly touched = new Set<string>();
  private removedIncomplete = 0;
  private messages = 0;

  constructor(
    private readonly layout: Layout,
    private readonly log: Log,
  ) {}

  async run(check: boolean): Promise<RecoveryReport & { readonly msgids: readonly string[] }> {
    this.clearIncoming();
    if (!check) return this.runByNames();
    const candidates: { path: string; msgid: string }[] = [];
    const logs: string[] = [];
    for (const [name, dir] of this.bucketDirs()) {
      for (const entry of readdirSync(dir, { withFileTypes: true })) {
        const path = join(dir, entry.name);
        const m = /^([0-9a-f]{8})(\.log)?$/.exec(entry.name);
        if (m === null || !entry.isFile()) this.quarantine(path, 'unexpected file name or type');
        else if (!entry.name.startsWith(name)) this.quarantine(path, `belongs in bucket ${entry.name.slice(0, 2)}, found in ${name}`);
        else if (m[2] !== undefined) logs.push(path);
        else candidates.push({ path, msgid: entry.name });
      }
    }
    const bad: { path: string; reason: string }[] = [];
    await eachLimited(candidates, 32, async ({ path, msgid }) => {
      try {
        await readHeadAt(path, msgid);
        this.messages++;
      } catch (err) {
        if (err instanceof SpoolError && err.code === 'CORRUPT') bad.push({ path, reason: err.message });
        else if (err instanceof SpoolError && err.code === 'NOT_FOUND') return; // vanished meanwhile
        // EACCES, EIO …: maybe passing (permissions, a flaky disk); not proof of damage.
        else this.log(`spool: warning: cannot read ${this.rel(path)}, left in place: ${(err as Error).message}`);
      }
    });
    bad.sort((a, b) => (a.path < b.path ? -1 : 1));
    const quarantined = new Set<string>();
    for (const { path, reason } of bad) {
      this.quarantine(path, reason);
      quarantined.add(path);
    }
    for (const path of logs) {
      const msgPath = path.slice(0, -'.log'.length);
      if (existsSync(msgPath)) continue;
      if (quarantined.has(msgPath)) {
        this.quarantine(path, 'outcome log of a corrupt message', true);
      } else {
        rmSync(path, { force: true });
        this.touched.add(dirname(path));
        this.log(`spool: removed ${this.rel(path)}: outcome log without a message`);
      }
    }
    for (const dir of this.touched) fsyncDir(dir);
    const msgids = candidates.filter((c) => !quarantined.has(c.path)).map((c) => c.msgid);
    return { messages: this.messages, removedIncomplete: this.removedIncomplete, corrupt: this.corrupt, msgids };
  }

  /**
   * check = false: names only, and lean (a million entries): no path or
   * object per entry, no stat; a non-file with a message's name is met by
   * load() instead (and left in place, as an unreadable file is).
   */
  private runByNames(): RecoveryReport & { readonly msgids: readonly string[] } {
    const msgids: string[] = [];
    for (const [name, dir] of this.bucketDirs()) {
      const first = msgids.length;
      const logs: string[] = [];
      for (const entry of readdirSync(dir)) {
        const m = /^([0-9a-f]{8})(\.log)?$/.exec(entry);
        if (m === null) this.quarantine(join(dir, entry), 'unexpected file name or type');
        else if (!entry.startsWith(name)) this.quarantine(join(dir, entry), `belongs in bucket ${entry.slice(0, 2)}, found in ${name}`);
        else if (m[2] !== undefined) logs.push(m[1] as string);
        else msgids.push(entry);
      }
      const here = logs.length > 0 ? new Set(msgids.slice(first)) : undefined;
      for (const id of logs) {
        if (here?.has(id)) continue;
        rmSync(join(dir, `${id}.log`), { force: true });
        this.touched.add(dir);
        this.log(`spool: removed ${this.rel(join(dir, `${id}.log`))}: outcome log without a message`);
      }
    }
    for (const dir of this.touched) fsyncDir(dir);
    return { messages: msgids.length, removedIncomplete: this.removedIncomplete, corrupt: this.corrupt, msgids };
  }

  /** The bucket folders of queue/ as [name, path], sorted; anything else there goes to corrupt/. */
  private bucketDirs(): [string, string][] {
    const buckets = new Set(Layout.buckets());
    const found: [string, string][] = [];
    for (const name of readdirSync(this.layout.queue).sort()) {
      const dir = join(this.layout.queue, name);
      if (buckets.has(name) && lstatSync(dir).isDirectory()) found.push([name, dir]);
      else this.quarantine(dir, 'unexpected entry in queue/');
    }
    return found;
  }

  private clearIncoming(): void {
    const entries = readdirSync(this.layout.incoming);
    for (const name of entries) {
      const path = join(this.layout.incoming, name);
      let size = 0;
      try {
        size = lstatSync(path).size;
      } catch {
        /* gone already */
      }
      rmSync(path, { recursive: true, force: true });
      this.removedIncomplete++;
      this.log(`spool: removed incomplete ${this.rel(path)} (${size} bytes, never committed)`);
    }
    if (entries.length > 0) fsyncDir(this.layout.incoming);
  }

  /** Move `path` into corrupt/ under a free name. */
  private quarantine(path: string, reason: string, companion = false): void {
    const target = moveToCorrupt(this.layout, path);
    this.touched.add(dirname(path));
    this.touched.add(this.layout.corrupt);
    if (!companion) this.corrupt.push({ name: this.rel(path), reason });
    this.log(`spool: moved ${this.rel(path)} to ${this.rel(target)}: ${reason}`);
  }

  private rel(path: string): string {
    return relative(this.layout.root, path);
  }
}
