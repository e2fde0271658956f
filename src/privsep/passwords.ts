/*
 * privsep/passwords.ts — who checks a system password (`listen … auth`):
 * PAM's unix_chkpwd answers only root for another user's password, so the
 * SMTP side of a root-started smtpd asks its privileged parent, which runs
 * the same check as root (auth/authenticator.ts). Unset: the process
 * checks for itself.
 */
export type SystemPasswordOutcome = { readonly kind: 'ok' } | { readonly kind: 'refused' } | { readonly kind: 'error'; readonly reason: string };
export type SystemPasswordCheck = (user: string, password: string) => Promise<SystemPasswordOutcome>;

let check: SystemPasswordCheck | undefined;

export function setSystemPasswordCheck(c: SystemPasswordCheck | undefined): void {
  check = c;
}

export function systemPasswordCheck(): SystemPasswordCheck | undefined {
  return check;
}
