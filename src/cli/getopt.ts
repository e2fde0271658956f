/*
 * cli/getopt.ts — POSIX getopt for the commands (smtpd, later smtpctl,
 * sendmail, makemap): bundled flags (-dv), attached or separate values
 * (-fFILE, -f FILE), "--" ends options. Errors are one line, in the
 * classic BSD wording, so every command reports them the same way.
 */

export interface GetoptResult {
  readonly flags: ReadonlySet<string>;
  /** Values of options taking an argument, in order given (repeatable options keep them all). */
  readonly values: ReadonlyMap<string, readonly string[]>;
  readonly operands: readonly string[];
}

/** spec is getopt's: "dFhnvD:f:T:" — a letter followed by ":" takes a value. */
export function getopt(argv: readonly string[], spec: string): GetoptResult | { error: string } {
  const takes = new Map<string, boolean>();
  for (let i = 0; i < spec.length; i++) {
    const c = spec[i] as string;
    if (c === ':') continue;
    takes.set(c, spec[i + 1] === ':');
  }
  const flags = new Set<string>();
  const values = new Map<string, string[]>();
  const operands: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--') {
      operands.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      operands.push(...argv.slice(i));
      break;
    }
    for (let j = 1; j < a.length; j++) {
      const c = a[j] as string;
      const t = takes.get(c);
      if (t === undefined) return { error: `unknown option -- ${c}` };
      if (!t) {
        flags.add(c);
        continue;
      }
      let v = a.slice(j + 1);
      if (v === '') {
        const next = argv[i + 1];
        if (next === undefined) return { error: `option requires an argument -- ${c}` };
        v = next;
        i++;
      }
      values.set(c, [...(values.get(c) ?? []), v]);
      break;
    }
  }
  return { flags, values, operands };
}

/** How many times a flag was given (`-v -v`, `-vv`): getopt's flags are a set. */
export function countFlag(argv: readonly string[], spec: string, flag: string): number {
  let n = 0;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i] as string;
    if (a === '--' || !a.startsWith('-') || a === '-') break;
    for (let j = 1; j < a.length; j++) {
      const c = a[j] as string;
      if (c === flag) n++;
      const k = spec.indexOf(c);
      if (k >= 0 && spec[k + 1] === ':') {
        if (j === a.length - 1) i++;
        break;
      }
    }
  }
  return n;
}
