/*
 * cli/control-entry.ts — `sendmail -q`: ask the daemon to run the queue now
 * (implemented by cli/smtpctl.ts).
 */
export async function controlMain(args: string[], configFile: string | undefined): Promise<void> {
  const m = (await import('./smtpctl.js' as string)) as { main?: (argv: string[], prog: string) => Promise<void> | void };
  if (typeof m.main !== 'function') {
    process.stderr.write('sendmail: -q is not available in this build\n');
    process.exit(1);
  }
  await m.main([...(configFile ? ['-f', configFile] : []), ...args], 'smtpctl');
}
