/*
 * table/table-db.ts — compiled tables: the `db` backend and makemap's output.
 *
 * A compiled table is a cdb file (table/cdb.ts) holding one record per
 * entry — key lowercased, value UTF-8, "" for list entries — plus one
 * record under the key "\0postern-table" whose value describes the file:
 *   {"format":"postern-table","version":1,"type":"map|aliases|set","entries":N}
 * No lookup key can contain NUL, so that record never answers a lookup.
 *
 * Reading keeps a descriptor open and uses positioned reads: a replaced
 * file (rename) is seen after reload(); a file damaged or truncated in
 * place gives lookups an error (the caller defers), never a crash — the
 * reason Postern does not memory-map its tables (see docs/tables.md).
 *
 * Writing is atomic (writeCompiledTable): a temporary file in the same
 * folder, fsync, rename over the old table, fsync of the folder. Until the
 * rename the old table stays in force; on any error it is left untouched.
 */
import { closeSync, fchmodSync, fchownSync, fsyncSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { buildCdb, CdbReader } from './cdb.js';
import type { Lookup, Table } from './table.js';
import { NOT_FOUND } from './table.js';

export const META_KEY = '\0postern-table';
export const FORMAT_VERSION = 1;

export type CompiledType = 'map' | 'aliases' | 'set';

export interface CompiledMeta {
  readonly format: 'postern-table';
  readonly version: number;
  readonly type: CompiledType;
  readonly entries: number;
}

/** A compiled table open for reading: validated header and description. */
export class CompiledTable {
  private constructor(
    private readonly cdb: CdbReader,
    readonly meta: CompiledMeta,
  ) {}

  /** Open and validate; throws "PATH: reason". */
  static open(path: string): CompiledTable {
    let cdb: CdbReader;
    try {
      cdb = CdbReader.open(path);
    } catch (e) {
      if (looksLikeText(path)) throw new Error(`${path}: a text file, not a compiled table (compile it with makemap, or declare it as file:${path})`);
      throw new Error(describeFsError(path, e));
    }
    try {
      const raw = cdb.get(Buffer.from(META_KEY));
      if (raw === undefined) throw new Error(`${path}: not a Postern compiled table (rebuild it with makemap)`);
      let meta: CompiledMeta;
      try {
        meta = JSON.parse(raw.toString('utf8')) as CompiledMeta;
      } catch {
        throw new Error(`${path}: damaged compiled table: unreadable description`);
      }
      if (meta.format !== 'postern-table') throw new Error(`${path}: not a Postern compiled table (rebuild it with makemap)`);
      if (meta.version !== FORMAT_VERSION) throw new Error(`${path}: compiled table format version ${meta.version} is not supported (this Postern reads version ${FORMAT_VERSION}; rebuild it with makemap)`);
      return new CompiledTable(cdb, meta);
    } catch (e) {
      cdb.close();
      throw e;
    }
  }

  get(key: string): string | undefined {
    if (key.includes('\0')) return undefined;
    return this.cdb.get(Buffer.from(key, 'utf8'))?.toString('utf8');
  }

  /** Every entry in file order (the description record left out). */
  *entries(): Generator<{ key: string; value: string }> {
    for (const r of this.cdb.entries()) {
      const key = r.key.toString('utf8');
      if (key === META_KEY) continue;
      yield { key, value: r.data.toString('utf8') };
    }
  }

  close(): void {
    this.cdb.close();
  }
}

/** The `db` table backend. */
export class DbTable implements Table {
  private table: CompiledTable | undefined;
  private keyCache: readonly string[] | undefined;
  private loadError: string | undefined;

  constructor(
    readonly name: string,
    readonly path: string,
  ) {
    try {
      this.reload();
    } catch (e) {
      this.loadError = (e as Error).message;
    }
  }

  get(key: string): Lookup {
    if (!this.table) return { kind: 'error', reason: this.loadError ?? `${this.path}: not open` };
    try {
      const v = this.table.get(key);
      return v === undefined ? NOT_FOUND : { kind: 'found', value: v };
    } catch (e) {
      return { kind: 'error', reason: (e as Error).message };
    }
  }

  /** Read once per open file and kept: only services that scan (netaddr, wildcard domains) need it. */
  keys(): readonly string[] | { readonly error: string } {
    if (!this.table) return { error: this.loadError ?? `${this.path}: not open` };
    if (this.keyCache) return this.keyCache;
    try {
      this.keyCache = [...this.table.entries()].map((e) => e.key);
      return this.keyCache;
    } catch (e) {
      return { error: (e as Error).message };
    }
  }

  get error(): string | undefined {
    return this.table ? undefined : this.loadError;
  }

  /** What makemap wrote about the file (type, number of entries). */
  get meta(): CompiledMeta | undefined {
    return this.table?.meta;
  }

  /** Open the file again (after makemap replaced it); on failure the old contents stay and this throws "PATH: reason". */
  reload(): void {
    const next = CompiledTable.open(this.path);
    const old = this.table;
    this.table = next;
    this.keyCache = undefined;
    this.loadError = undefined;
    old?.close();
  }

  close(): void {
    this.table?.close();
    this.table = undefined;
    this.loadError = `${this.path}: closed`;
  }
}

export interface WriteOptions {
  /** File mode; default: the existing table's, else 0644. */
  readonly mode?: number;
  /** Owner for a new file (applied only when running as root). */
  readonly uid?: number;
  readonly gid?: number;
}

/**
 * Write entries as a compiled table at `out`, atomically. Keys must be
 * lowercased and unique (the text parser guarantees both). If `out`
 * exists, its mode and owner are kept, so a table made group-readable for
 * the daemon (seed 002: chmod 640, chgrp _smtpd) stays so when rebuilt.
 */
export function writeCompiledTable(out: string, entries: readonly { key: string; value: string }[], type: CompiledType, opts: WriteOptions = {}): void {
  const meta: CompiledMeta = { format: 'postern-table', version: FORMAT_VERSION, type, entries: entries.length };
  const records: [Buffer, Buffer][] = [[Buffer.from(META_KEY), Buffer.from(JSON.stringify(meta))]];
  for (const e of entries) {
    if (e.key.includes('\0') || e.value.includes('\0')) throw new Error(`NUL character in entry "${e.key.replace(/\0/g, '\\0')}"`);
    records.push([Buffer.from(e.key, 'utf8'), Buffer.from(e.value, 'utf8')]);
  }
  const chunks = buildCdb(records);

  let mode = opts.mode ?? 0o644;
  let owner: { uid: number; gid: number } | undefined = opts.uid !== undefined && opts.gid !== undefined ? { uid: opts.uid, gid: opts.gid } : undefined;
  try {
    const st = statSync(out);
    mode = st.mode & 0o7777;
    owner = { uid: st.uid, gid: st.gid };
  } catch {
    // a new table
  }

  const dir = dirname(out);
  const tmp = join(dir, `.${basename(out)}.${randomBytes(6).toString('hex')}.tmp`);
  let fd: number | undefined = openSync(tmp, 'wx', 0o600);
  try {
    writeAll(fd, chunks);
    fchmodSync(fd, mode);
    if (owner && process.getuid?.() === 0) fchownSync(fd, owner.uid, owner.gid);
    fsyncSync(fd);
    closeSync(fd);
    fd = undefined;
    renameSync(tmp, out);
  } catch (e) {
    if (fd !== undefined) closeSync(fd);
    try {
      unlinkSync(tmp);
    } catch {
      // already gone
    }
    throw e;
  }
  fsyncDir(dir);
}

/** Write the chunks in order, about 1 MiB per system call. */
function writeAll(fd: number, chunks: readonly Buffer[]): void {
  let batch: Buffer[] = [];
  let size = 0;
  const flush = (): void => {
    const buf = Buffer.concat(batch, size);
    let off = 0;
    while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
    batch = [];
    size = 0;
  };
  for (const c of chunks) {
    batch.push(c);
    size += c.length;
    if (size >= 1 << 20) flush();
  }
  if (size > 0) flush();
}

function fsyncDir(dir: string): void {
  const fd = openSync(dir, 'r');
  try {
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** A cdb header is mostly small binary numbers; a table's text is printable. */
function looksLikeText(path: string): boolean {
  try {
    const fd = openSync(path, 'r');
    try {
      const buf = Buffer.alloc(512);
      const n = readSync(fd, buf, 0, buf.length, 0);
      // eslint-disable-next-line no-control-regex
      return n > 0 && !/[\x00-\x08\x0e-\x1f]/.test(buf.subarray(0, n).toString('latin1'));
    } finally {
      closeSync(fd);
    }
  } catch {
    return false;
  }
}

function describeFsError(path: string, e: unknown): string {
  const err = e as NodeJS.ErrnoException;
  if (err.code === 'ENOENT') return `${path}: no such file (build it with makemap, or newaliases for the aliases table)`;
  if (err.code === 'EACCES') return `${path}: permission denied`;
  if (err.message.startsWith(path)) return err.message;
  return `${path}: ${err.message}`;
}
