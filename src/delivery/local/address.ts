/*
 * delivery/local/address.ts — the parts of a recipient address that local
 * delivery uses, and the one test every name taken from an address passes
 * before it becomes part of a path.
 *
 *   bob+lists@example.org  →  local "bob+lists", user "bob",
 *                             extension "lists", domain "example.org"
 *
 * The sub-address delimiter is "+", as OpenSMTPD's and Postfix's default.
 */

export interface AddressParts {
  readonly local: string;
  readonly domain: string;
  /** The local part without its +extension. */
  readonly user: string;
  readonly extension?: string;
}

export function splitAddress(address: string): AddressParts {
  const at = address.lastIndexOf('@');
  const local = at < 0 ? address : address.slice(0, at);
  const domain = at < 0 ? '' : address.slice(at + 1);
  const plus = local.indexOf('+');
  if (plus <= 0 || plus === local.length - 1) return { local, domain, user: plus === local.length - 1 ? local.slice(0, -1) : local };
  return { local, domain, user: local.slice(0, plus), extension: local.slice(plus + 1) };
}

/**
 * Why `name` may not be a file name below a mail root, or undefined when it
 * may: no "/", no NUL or control character, not empty, and no leading "."
 * (which also rules out "." and "..").
 */
export function unsafeName(name: string): string | undefined {
  if (name === '') return 'empty name';
  if (name.includes('/')) return 'contains "/"';
  if (name.startsWith('.')) return 'starts with "."';
  // eslint-disable-next-line no-control-regex
  if (/[\x00-\x1f\x7f]/.test(name)) return 'contains a control character';
  return undefined;
}
