/*
 * cli/sendmail-modes.ts — sendmail's other modes: -bp (mailq), -bi
 * (newaliases) and -q (run the queue now: `smtpctl schedule all`).
 */
import { toolConfig } from './config-for-tools.js';
import { mailq } from './mailq.js';

export async function otherModes(mode: string, configFile: string | undefined, prog: string): Promise<void> {
  if (mode === 'p') {
    process.exitCode = await mailq(toolConfig(configFile, prog));
    return;
  }
  if (mode === 'i') {
    const { newaliasesMain } = await import('./newaliases-entry.js');
    return newaliasesMain(configFile ? ['-f', configFile] : []);
  }
  const { controlMain } = await import('./control-entry.js');
  return controlMain(['schedule', 'all'], configFile);
}
