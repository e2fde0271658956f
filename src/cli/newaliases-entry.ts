/*
 * cli/newaliases-entry.ts — `sendmail -bi` and the `newaliases` name: rebuild
 * the aliases table (implemented by cli/makemap.ts).
 */
export async function newaliasesMain(argv: string[]): Promise<void> {
  const m = (await import('./makemap.js')) as { main?: (argv: string[], prog: string) => Promise<void> | void };
  if (typeof m.main !== 'function') {
    process.stderr.write('newaliases: not available in this build\n');
    process.exit(1);
  }
  await m.main(argv, 'newaliases');
}
