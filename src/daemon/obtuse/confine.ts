/*
 * daemon/obtuse/confine.ts — Obtuse smtpd's chroot(2), the Linux way.
 *
 * Node.js cannot call chroot(2) or setuid(2)-then-exec on itself, so the
 * receiver is confined from outside, before it runs a line of Postern:
 *
 *   smtpd -c HOME …        (root)  checks the command line, resolves -u/-g,
 *    └ unshare --mount --propagation private node obtuse-stage.js confine …
 *       (root, in a private mount namespace) binds the port, builds a new
 *       root on a tmpfs — HOME at its own path (read-write), /usr, Postern's
 *       code, /etc/resolv.conf, /etc/localtime, /etc/hosts and four /dev
 *       nodes (read-only) — makes it read-only and runs:
 *       └ chroot --userspec=UID:GID --groups=GID ROOT node obtuse-stage.js receive …
 *          (-u/-g, confined) the SMTP receiver, given the bound socket as fd 3.
 *
 * The mounts exist only in the namespace and vanish with its last process;
 * the host's mount table is never touched. mountPlan() is pure (the list
 * of mounts, as argument vectors); confine() carries it out.
 */
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';

export interface ConfineSpec {
  /** Empty folder the new root is mounted on (visible only in the namespace). */
  readonly root: string;
  readonly home: string;
  /** Postern's installation (dist/, node_modules/, package.json), read-only. */
  readonly code: string;
  /** The node binary; its folder is bound too when it is not under /usr. */
  readonly node: string;
}

export type MountStep =
  | { readonly kind: 'dir'; readonly path: string }
  | { readonly kind: 'file'; readonly path: string }
  | { readonly kind: 'symlink'; readonly path: string; readonly target: string }
  | { readonly kind: 'mount'; readonly argv: readonly string[] };

const ETC_FILES = ['resolv.conf', 'localtime', 'hosts'] as const;
const DEV_NODES = ['null', 'zero', 'random', 'urandom'] as const;

function bindRo(src: string, dst: string): MountStep[] {
  return [
    { kind: 'mount', argv: ['--bind', src, dst] },
    { kind: 'mount', argv: ['-o', 'remount,bind,ro,nosuid,nodev', dst] },
  ];
}

/**
 * The new root, step by step. `exists` tells which optional sources are
 * there: HOME/etc/FILE is preferred to the host's /etc/FILE (the Obtuse
 * layout of seed 001 copies resolv.conf and localtime into the home).
 */
export function mountPlan(s: ConfineSpec, exists: (path: string) => boolean): MountStep[] {
  const r = (p: string): string => join(s.root, p);
  const steps: MountStep[] = [{ kind: 'mount', argv: ['-t', 'tmpfs', '-o', 'mode=0755,size=1m,nosuid,nodev', 'tmpfs', s.root] }];
  steps.push({ kind: 'dir', path: r('/usr') }, ...bindRo('/usr', r('/usr')));
  for (const l of ['lib', 'lib64', 'bin', 'sbin']) steps.push({ kind: 'symlink', path: r(`/${l}`), target: `usr/${l}` });
  const nodeDir = dirname(s.node);
  if (!nodeDir.startsWith('/usr/')) steps.push({ kind: 'dir', path: r(nodeDir) }, ...bindRo(nodeDir, r(nodeDir)));
  steps.push({ kind: 'dir', path: r(s.code) }, ...bindRo(s.code, r(s.code)));
  steps.push({ kind: 'dir', path: r(s.home) }, { kind: 'mount', argv: ['--bind', s.home, r(s.home)] }, { kind: 'mount', argv: ['-o', 'remount,bind,nosuid,nodev', r(s.home)] });
  steps.push({ kind: 'dir', path: r('/etc') });
  for (const f of ETC_FILES) {
    const src = exists(join(s.home, 'etc', f)) ? join(s.home, 'etc', f) : `/etc/${f}`;
    if (!exists(src)) continue;
    steps.push({ kind: 'file', path: r(`/etc/${f}`) }, ...bindRo(src, r(`/etc/${f}`)));
  }
  steps.push({ kind: 'dir', path: r('/dev') });
  for (const d of DEV_NODES) steps.push({ kind: 'file', path: r(`/dev/${d}`) }, { kind: 'mount', argv: ['--bind', `/dev/${d}`, r(`/dev/${d}`)] });
  steps.push({ kind: 'mount', argv: ['-o', 'remount,ro,nosuid,nodev', s.root] });
  return steps;
}

/** Carry out the plan (root, inside a private mount namespace). Throws with the failing step. */
export function confine(s: ConfineSpec): void {
  for (const step of mountPlan(s, existsSync)) {
    switch (step.kind) {
      case 'dir':
        mkdirSync(step.path, { recursive: true, mode: 0o755 });
        break;
      case 'file':
        writeFileSync(step.path, '', { mode: 0o644 });
        break;
      case 'symlink':
        symlinkSync(step.target, step.path);
        break;
      case 'mount': {
        const r = spawnSync('mount', [...step.argv], { encoding: 'utf8' });
        if (r.status !== 0) throw new Error(`mount ${step.argv.join(' ')}: ${(r.stderr || r.error?.message || `status ${r.status}`).trim()}`);
        break;
      }
    }
  }
}
