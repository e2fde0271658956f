#!/usr/bin/env bash
# Install the programs the test suite talks to (its "peers") on Debian, as
# root, then check that each is there; run as another user it only checks.
# The README names this script; .ci/run calls it. No test is skipped for
# lack of a tool: a missing one fails here, with its name.
set -euo pipefail

export DEBIAN_FRONTEND=noninteractive
if [ "$(id -u)" = 0 ]; then
  apt-get update -qq
  # Package scripts must not start services (postfix) on the CI machine.
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod +x /usr/sbin/policy-rc.d
  fi
  # The real peers the tests talk to:
  #   swaks             third-party SMTP client
  #   python3, python3-aiosmtpd   smtplib / email / mailbox; an SMTP and LMTP server
  #   postfix           smtp-sink (a real SMTP server that can accept, defer or reject)
  #   procmail          a real MDA
  #   openssl           certificates for the tests, s_client
  #   passwd            useradd/chpasswd for the privilege-drop and system-password tests
  #   haproxy           a real proxy in front of a proxy-v2 listener (send-proxy-v2)
  #   testssl.sh        the torture run's TLS audit (long mode; installed as `testssl`)
  #   iproute2          ss, to see the sockets a daemon still holds (CLOSE-WAIT)
  #   libnet-ssleay-perl, libio-socket-ssl-perl   swaks's TLS (recommends, left out by --no-install-recommends)
  #   rsyslog           a real syslog daemon for the log tests (started by the tests on their own socket)
  #   logrotate         rotates a log file, then SIGUSR1
  #   fail2ban          fail2ban-regex checks the shipped filter against the daemon's log
  #   bsdutils          logger(1), which the daemon itself uses to reach syslog (essential; named to be sure)
  #   prometheus        promtool: checks /metrics' text and etc/monitoring's rules
  #   chromium          the dashboard's test in a real browser (puppeteer-core drives it; nothing is downloaded)
  #   systemd           systemd-analyze verify for the unit `postern install` writes
  #   groff-base        groff -man -ww for the man pages
  #   libnss-systemd    a user known only through NSS (/run/userdb), users-nss.test.ts
  #   oidentd           a real identd (RFC 1413) for the Obtuse rules file's %U and user@host
  #   util-linux, mount unshare, chroot, nsenter, mount: the Obtuse gateway's confinement
  #   socat             an inetd-style launcher for `smtpserver -n` (systemd-socket-activate too, from systemd)
  #   nsd               a real authoritative DNS server on loopback for the tests' zones (test/helpers/nsd.ts)
  #   ldnsutils unbound DNSSEC for the DANE tests: zones signed with ldns-signzone, validated by unbound (test/helpers/dnssec.ts)
  #   rspamd, opendkim, opendkim-tools, clamav-daemon, clamav-milter, python3-milter   real milters (filter tests)
  #   opensmtpd-filter-rspamd, opensmtpd-filter-dkimsign, python3-dkim   OpenSMTPD's filter processes, a DKIM verifier
  #   python3-dkim, python3-spf, python3-dnspython, opendkim   dkimpy, pyspf and OpenDKIM (opendkim -t) as third-party DKIM/ARC/SPF peers (mailauth-*.test.ts)
  #   postgresql        the cluster spool's database (initdb/pg_ctl in a temp folder, as user postgres)
  #   dovecot-core, dovecot-lmtpd   the benchmark's LMTP destination, started by the harness's test (bench-harness.test.ts)
  apt-get install -y -qq --no-install-recommends swaks libnet-ssleay-perl libio-socket-ssl-perl python3 python3-aiosmtpd postfix procmail openssl passwd haproxy testssl.sh iproute2 rsyslog logrotate fail2ban bsdutils prometheus chromium systemd groff-base libnss-systemd oidentd util-linux mount socat nsd ldnsutils unbound rspamd opendkim opendkim-tools clamav-daemon clamav-milter python3-milter opensmtpd-filter-rspamd opensmtpd-filter-dkimsign python3-dkim python3-spf python3-dnspython postgresql dovecot-core dovecot-lmtpd >/dev/null
  # postfix's package may leave a daemon on port 25; nothing of ours uses it.
  postfix stop >/dev/null 2>&1 || true
fi
for tool in swaks python3 procmail openssl haproxy ss /usr/sbin/smtp-sink /usr/sbin/rsyslogd /usr/sbin/logrotate fail2ban-regex logger promtool /usr/bin/chromium systemd-analyze groff /usr/sbin/oidentd unshare chroot nsenter socat /usr/sbin/nsd /usr/sbin/nsd-checkzone ldns-keygen ldns-signzone /usr/sbin/unbound /usr/sbin/unbound-checkconf /usr/bin/rspamd /usr/sbin/opendkim /usr/sbin/opendkim-genkey /usr/sbin/clamd /usr/sbin/clamav-milter /usr/libexec/opensmtpd/filter-rspamd /usr/libexec/opensmtpd/filter-dkimsign /usr/sbin/dovecot /usr/lib/dovecot/lmtp; do
  command -v "$tool" >/dev/null || { echo "test peers: $tool is missing" >&2; exit 1; }
done
compgen -G '/usr/lib/postgresql/*/bin/initdb' >/dev/null || { echo "test peers: postgresql (initdb) is missing" >&2; exit 1; }
/usr/bin/python3 -c 'import aiosmtpd' || { echo "test peers: python3-aiosmtpd is missing" >&2; exit 1; }
/usr/bin/python3 -c 'import Milter, dkim, spf, dns.resolver' || { echo "test peers: python3-milter, python3-dkim, python3-spf or python3-dnspython is missing" >&2; exit 1; }
perl -MIO::Socket::SSL -MNet::SSLeay -e1 || { echo "test peers: swaks cannot do TLS (libio-socket-ssl-perl, libnet-ssleay-perl)" >&2; exit 1; }

