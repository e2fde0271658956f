/*
 * mailauth/sign/from-config.ts — the DKIM signer `mailauth sign <table>`
 * asks for, or none. The table is looked up through the daemon's registry,
 * so a reload that changes the table's contents takes effect at once.
 */
import type { Config } from '../../config/model.js';
import type { TableRegistry } from '../../table/table.js';
import { KeyTable } from './keys.js';
import { SignPool } from './sign-pool.js';
import { OutboundSigner } from './signer.js';

export function outboundSigner(config: Config, tables: Pick<TableRegistry, 'lookup'>): OutboundSigner | undefined {
  const { sign, seal, verify } = config.mailauth ?? {};
  if (sign === undefined && seal === undefined) return undefined;
  const keys = new KeyTable((key) => (sign !== undefined ? tables.lookup(sign.keys, key) : { kind: 'notfound' }));
  const sealer = seal !== undefined ? { ...seal, authservId: (verify?.authservId ?? config.hostname).toLowerCase() } : undefined;
  return new OutboundSigner(keys, new SignPool(), sealer);
}
