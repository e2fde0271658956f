/*
 * cli/install/kit.ts — `postern install` and `postern uninstall`: the steps.
 *
 * install, in order (each recorded in the manifest as soon as it is done):
 *   1. check the MTA names for conflicts (nothing is changed if one is
 *      found without --force);
 *   2. the system user `_postern` (unless it exists, or --no-user);
 *   3. the spool (_postern, 0711; root 0700 with --no-user) and /var/mail (if absent: root:mail 2775
 *      when a `mail` group exists, as Debian's, else 1777 root);
 *   4. /etc/mail/smtpd.conf, only if absent;
 *   5. the wrappers, and the MTA names as links to them;
 *   6. the man pages; 7. the systemd unit;
 *   8. when this is the real root and systemd runs: enable and start it.
 * uninstall walks the manifest backwards. A file changed since install
 * (an edited smtpd.conf) and a spool holding files (without --purge) are
 * kept, with a line saying so.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, lstatSync, mkdirSync, readdirSync, readFileSync, renameSync, rmdirSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { defaultSmtpdConf } from './default-conf.js';
import { staged, UNIT_NAME, WRAPPED, type Layout } from './layout.js';
import { conflicts, installAlternatives, removeAlternatives, SAVED_SUFFIX, useAlternatives, wrapperPath, wrapperText } from './links.js';
import { MANIFEST_NAME, readManifest, sha256, writeManifest, type Entry, type Manifest } from './manifest.js';
import { createSystemUser, groupId, passwdEntry, removeSystemUser } from './system-user.js';
import { systemdUnit } from './unit.js';

export interface InstallOptions {
  readonly force: boolean;
  readonly start: boolean;
  readonly createUser: boolean;
  /** Folder of the package's man pages (man/*.5, man/*.8). */
  readonly manSource: string;
  readonly say: (line: string) => void;
}

export function install(l: Layout, o: InstallOptions): void {
  const alt = useAlternatives(l);
  const clash = conflicts(l, alt);
  if (clash.length > 0 && !o.force) {
    throw new Error(`another program owns ${clash.join(', ')}; nothing was changed (--force moves them aside as NAME${SAVED_SUFFIX} and uninstall puts them back)`);
  }
  const m: Manifest = readManifest(staged(l, l.stateDir)) ?? { version: 1, entries: [] };
  const rec = (e: Entry): void => {
    m.entries.push(e);
    writeManifest(staged(l, l.stateDir), m);
  };
  // The manifest's own folder first: the folders made for it are its first entries.
  const first: Entry[] = [];
  mkdirs(l, l.stateDir, 0o755, (e) => first.push(e));
  for (const e of first) rec(e);

  if (o.createUser) {
    if (passwdEntry(l.root, l.user) !== undefined) o.say(`user ${l.user} exists: kept`);
    else {
      createSystemUser(l.root, l.user);
      rec({ kind: 'user', name: l.user });
      o.say(`created system user ${l.user}`);
    }
  }

  if (!existsSync(staged(l, l.spool))) {
    mkdirs(l, dirname(l.spool), 0o755, rec);
    mkdirSync(staged(l, l.spool), { mode: 0o700 });
    rec({ kind: 'spool', path: l.spool });
    o.say(`created the spool ${l.spool}`);
  }
  // The SMTP side's (smtpd gives it to the user at every start too); root's without the user (--no-user).
  const owner = passwdEntry(l.root, l.user);
  chownSync(staged(l, l.spool), owner?.uid ?? 0, owner?.gid ?? 0);
  chmodSync(staged(l, l.spool), owner ? 0o711 : 0o700);

  if (!existsSync(staged(l, l.mailDir))) {
    mkdirs(l, dirname(l.mailDir), 0o755, rec);
    mkdirSync(staged(l, l.mailDir));
    rec({ kind: 'dir', path: l.mailDir });
    const mail = groupId(l.root, 'mail');
    chownSync(staged(l, l.mailDir), 0, mail ?? 0);
    chmodSync(staged(l, l.mailDir), mail !== undefined ? 0o2775 : 0o1777);
    o.say(`created ${l.mailDir} (${mail !== undefined ? 'root:mail 2775' : 'root 1777'})`);
  } else o.say(`${l.mailDir} exists: kept as it is`);

  if (!existsSync(staged(l, l.config))) {
    mkdirs(l, dirname(l.config), 0o755, rec);
    const aliases = existsSync(staged(l, '/etc/aliases')) ? '/etc/aliases' : undefined;
    writeFile(l, l.config, defaultSmtpdConf(l, aliases), 0o644, rec);
    o.say(`wrote ${l.config}`);
  } else o.say(`${l.config} exists: kept`);

  mkdirs(l, l.libexec, 0o755, rec);
  for (const name of WRAPPED) writeFile(l, wrapperPath(l, name), wrapperText(l, name), 0o755, rec);
  for (const c of conflicts(l, alt)) {
    const path = c.slice(0, c.indexOf(' ('));
    renameSync(staged(l, path), staged(l, path + SAVED_SUFFIX));
    rec({ kind: 'saved', path, saved: path + SAVED_SUFFIX });
    o.say(`--force: moved ${path} aside to ${path}${SAVED_SUFFIX}`);
  }
  for (const link of l.links) mkdirs(l, dirname(link.path), 0o755, rec);
  if (alt) {
    installAlternatives(l);
    rec({ kind: 'alternative', name: 'sendmail', path: wrapperPath(l, 'sendmail') });
    o.say(`registered ${l.links.map((x) => x.path).join(', ')} with update-alternatives`);
  } else {
    for (const link of l.links) {
      if (lstatExists(staged(l, link.path))) continue; // already ours (checked above)
      symlinkSync(wrapperPath(l, link.name), staged(l, link.path));
      rec({ kind: 'link', path: link.path, target: wrapperPath(l, link.name) });
    }
    o.say(`linked ${l.links.map((x) => x.path).join(', ')}`);
  }

  for (const page of manPages(o.manSource)) {
    const section = page.slice(page.lastIndexOf('.') + 1);
    mkdirs(l, join(l.manDir, `man${section}`), 0o755, rec);
    writeFile(l, join(l.manDir, `man${section}`, page), readFileSync(join(o.manSource, page)), 0o644, rec);
  }

  mkdirs(l, l.unitDir, 0o755, rec);
  writeFile(l, join(l.unitDir, UNIT_NAME), unitText(l), 0o644, rec);

  if (o.start && l.root === '/' && existsSync('/run/systemd/system')) {
    systemctl(['daemon-reload']);
    systemctl(['enable', '--now', UNIT_NAME]);
    rec({ kind: 'service', unit: UNIT_NAME });
    o.say(`started ${UNIT_NAME} (systemctl status postern; journalctl -u postern)`);
  } else if (l.root === '/' && o.start) {
    o.say(`this machine does not run systemd: start the daemon with ${wrapperPath(l, 'smtpd')} -f ${l.config} (it detaches; stop it with smtpctl stop)`);
  } else {
    o.say(`not started${l.root !== '/' ? ` (staging root ${l.root})` : ''}: systemctl enable --now ${UNIT_NAME}, or ${wrapperPath(l, 'smtpd')} -f ${l.config}`);
  }
}

function unitText(l: Layout): string {
  return systemdUnit({ smtpd: wrapperPath(l, 'smtpd'), smtpctl: wrapperPath(l, 'smtpctl'), config: l.config, spool: l.spool });
}

export function uninstall(l: Layout, o: { readonly purge: boolean; readonly say: (line: string) => void }): void {
  const m = readManifest(staged(l, l.stateDir));
  if (!m) throw new Error(`no record of an install under ${staged(l, l.stateDir)} (nothing to undo)`);
  const kept: string[] = [];
  // A spool kept for its mail keeps the manifest (and the folders around it) for a later --purge.
  const remaining: Entry[] = [];
  for (const e of [...m.entries].reverse()) {
    switch (e.kind) {
      case 'service':
        if (l.root === '/' && existsSync('/run/systemd/system')) systemctl(['disable', '--now', e.unit]);
        break;
      case 'file': {
        const p = staged(l, e.path);
        if (!existsSync(p)) break;
        if (sha256(readFileSync(p)) !== e.sha256) {
          kept.push(`${e.path} (changed since install)`);
          break;
        }
        unlinkSync(p);
        break;
      }
      case 'link':
        if (lstatExists(staged(l, e.path))) unlinkSync(staged(l, e.path));
        break;
      case 'alternative':
        removeAlternatives(l, e.path);
        break;
      case 'saved':
        if (!lstatExists(staged(l, e.path)) && lstatExists(staged(l, e.saved))) {
          renameSync(staged(l, e.saved), staged(l, e.path));
          o.say(`put ${e.path} back`);
        }
        break;
      case 'spool':
        if (!existsSync(staged(l, e.path))) break;
        if (!o.purge && holdsFiles(staged(l, e.path))) {
          kept.push(`${e.path} (holds files: uninstall --purge removes it)`);
          remaining.push(e);
          break;
        }
        rmSync(staged(l, e.path), { recursive: true, force: true });
        break;
      case 'user':
        if (passwdEntry(l.root, e.name) !== undefined) removeSystemUser(l.root, e.name);
        break;
      case 'dir':
        if (e.path === l.stateDir) {
          if (remaining.length > 0) {
            remaining.push(e);
            break;
          }
          rmSync(join(staged(l, l.stateDir), MANIFEST_NAME), { force: true });
        }
        try {
          rmdirSync(staged(l, e.path));
        } catch {
          if (remaining.length > 0) remaining.push(e);
          else kept.push(`${e.path} (not empty)`);
        }
        break;
    }
  }
  if (remaining.length > 0) writeManifest(staged(l, l.stateDir), { version: 1, entries: [...remaining].reverse() });
  if (l.root === '/' && existsSync('/run/systemd/system')) systemctl(['daemon-reload']);
  for (const k of kept) o.say(`kept ${k}`);
  o.say('uninstalled');
}

/** mkdir -p, recording each folder it creates. */
function mkdirs(l: Layout, path: string, mode: number, rec: (e: Entry) => void): void {
  if (existsSync(staged(l, path))) return;
  mkdirs(l, dirname(path), mode, rec);
  mkdirSync(staged(l, path), { mode });
  chmodSync(staged(l, path), mode);
  rec({ kind: 'dir', path });
}

function writeFile(l: Layout, path: string, data: string | Buffer, mode: number, rec: (e: Entry) => void): void {
  writeFileSync(staged(l, path), data, { mode });
  chmodSync(staged(l, path), mode);
  rec({ kind: 'file', path, sha256: sha256(data) });
}

function manPages(dir: string): string[] {
  try {
    return readdirSync(dir).filter((f) => /\.[1-8]$/.test(f)).sort();
  } catch {
    return [];
  }
}

function holdsFiles(dir: string): boolean {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (!e.isDirectory()) return true;
    if (holdsFiles(join(dir, e.name))) return true;
  }
  return false;
}

function lstatExists(p: string): boolean {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
}

function systemctl(args: string[]): void {
  const r = spawnSync('systemctl', args, { encoding: 'utf8', env: { PATH: '/usr/sbin:/usr/bin:/sbin:/bin' } });
  if (r.status !== 0) throw new Error(`systemctl ${args.join(' ')}: ${(r.stderr || `exit ${r.status}`).trim()}`);
}
