/*
 * cli/install/default-conf.ts — the /etc/mail/smtpd.conf that
 * `postern install` writes when there is none: a plain MTA for one host.
 * Listens on every interface on port 25, delivers mail for this host's
 * names to /var/mail/USER (mbox, as OpenSMTPD's default), relays mail
 * from local senders (this host's own programs, via sendmail or
 * 127.0.0.1) anywhere, and refuses to relay for anyone else. The
 * system's aliases file (/etc/aliases) is used when it exists.
 */
export function defaultSmtpdConf(l: { spool: string; mailDir: string }, aliases: string | undefined): string {
  const alias = aliases !== undefined ? ` alias <aliases>` : '';
  const table = aliases !== undefined ? `table aliases file:${aliases}\n\n` : '';
  return `# /etc/mail/smtpd.conf — written by "postern install" (see smtpd.conf(5),
# docs/configuration.md). Edit freely: "postern uninstall" keeps this file
# once it differs from what install wrote.

queue path "${l.spool}"
mbox path "${l.mailDir}"

# Every interface (IPv6 and IPv4), port 25; add "tls pki NAME" for STARTTLS.
listen on any port 25

${table}action "local" mbox${alias}
action "relay" relay

# Mail for this host's names goes to its users; only this host may relay.
match from any for local action "local"
match from local for any action "relay"
`;
}
