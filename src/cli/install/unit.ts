/*
 * cli/install/unit.ts — the systemd unit `postern install` writes.
 *
 * Each hardening line says why it is there, or why a stricter one is not:
 * smtpd's privileged parent stays root and delivers as the recipient
 * (effective ids per job, setpriv for commands; mailbox files, `|command`
 * and `/file` destinations from aliases and ~/.forward), while its SMTP side
 * gives up root for _postern (docs/architecture.md, "Privilege
 * separation"); anything that would stop a delivery as another user, in
 * their home, with their programs, stays off.
 * docs/administration.md ("The systemd unit") says the same for readers.
 */
export function systemdUnit(o: { smtpd: string; smtpctl: string; config: string; spool: string }): string {
  return `# postern.service — written by "postern install"; removed by "postern uninstall".
# Local changes belong in "systemctl edit postern" (a drop-in), not here.
[Unit]
Description=Postern mail transfer agent (SMTP server)
Documentation=man:smtpd(8) man:smtpd.conf(5) man:smtpctl(8)
After=network-online.target nss-lookup.target
Wants=network-online.target

[Service]
# -d: stay in the foreground and log to standard error, which the journal keeps.
Type=simple
ExecStartPre=${o.smtpd} -n -f ${o.config}
ExecStart=${o.smtpd} -d -f ${o.config}
ExecReload=${o.smtpctl} -f ${o.config} reload
ExecStop=${o.smtpctl} -f ${o.config} stop
Restart=on-failure
RestartSec=5s
TimeoutStopSec=60s
KillMode=mixed

# Two processes: the privileged parent (root: binds, delivers as the users)
# and the SMTP side (_postern, started by the parent, no capabilities left
# once it has given up root). The spool (${o.spool}) is _postern's.
# /etc, /usr and /boot read-only for the daemon and every delivery it runs
# (ProtectSystem=full). Not "strict": that would make /var/mail, the users'
# homes (Maildir, ~/.forward destinations) and whatever their |commands
# write read-only too.
ProtectSystem=full
# A private /tmp and /var/tmp: the daemon and the programs it runs for
# deliveries do not see (or leave files in) the system's. A |command that
# hands files to another service through /tmp would need this off.
PrivateTmp=yes
# Not ProtectHome: deliveries write into the users' homes (Maildir,
# ~/.forward files and commands).
ProtectHome=no
# Not NoNewPrivileges: it would strip the set-group-id bit from MDAs that
# rely on it (procmail and other dotlocking MDAs are setgid mail on Debian,
# to lock in /var/mail). Postern's own deliveries do not need it: they drop
# privileges with setuid()/setgid(), which NoNewPrivileges allows. Turn it
# on with a drop-in when no delivery runs a set-id program.
NoNewPrivileges=no
# What root (the privileged parent) may still do, and nothing else:
#   NET_BIND_SERVICE  port 25 (and 465/587), bound for the SMTP side
#   SETUID SETGID     the SMTP side becomes _postern; a delivery becomes its recipient
#   CHOWN FOWNER      the spool given to _postern; a mailbox in a root-only spool given to its owner
#   DAC_OVERRIDE DAC_READ_SEARCH  open a user's mailbox, ~/.forward or sendmail's offline file
#   KILL              signal the SMTP side (_postern) and stop a delivery program past its time limit
CapabilityBoundingSet=CAP_NET_BIND_SERVICE CAP_SETUID CAP_SETGID CAP_CHOWN CAP_FOWNER CAP_DAC_OVERRIDE CAP_DAC_READ_SEARCH CAP_KILL
# Kernel and system settings are none of an MTA's business.
ProtectKernelTunables=yes
ProtectKernelModules=yes
ProtectKernelLogs=yes
ProtectControlGroups=yes
ProtectClock=yes
ProtectHostname=yes
RestrictNamespaces=yes
RestrictRealtime=yes
LockPersonality=yes
# IPv4, IPv6, Unix sockets (control socket, syslog) and netlink (the
# interfaces' addresses for "listen on IF" and "local").
RestrictAddressFamilies=AF_UNIX AF_INET AF_INET6 AF_NETLINK
# Not MemoryDenyWriteExecute: Node.js compiles JavaScript to machine code
# at run time (its JIT needs writable, executable memory).

[Install]
WantedBy=multi-user.target
`;
}
