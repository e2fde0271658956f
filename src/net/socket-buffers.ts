/*
 * net/socket-buffers.ts — SO_RCVBUF / SO_SNDBUF on a listening TCP socket
 * (ZMailer's TcpRcvBufferSize / TcpXmitBufferSize). Node.js has no
 * setsockopt() for TCP sockets, but socket options belong to the socket,
 * not to the descriptor: a child process given the same socket as its fd 3
 * sets them for everyone who holds it. The child is perl (perl-base is
 * Essential on Debian, and its Socket module is in it), run once per
 * listener at start with a fixed script and two numbers as arguments —
 * nothing from the network. Linux gives every connection accepted on the
 * socket the listener's buffer sizes (and, as for any setsockopt, doubles
 * the value for its bookkeeping; `ss -tm` shows it).
 */
import { spawnSync } from 'node:child_process';

export interface SocketBuffers {
  readonly receive?: number;
  readonly send?: number;
}

const SCRIPT = [
  'use strict; use Socket qw(SOL_SOCKET SO_RCVBUF SO_SNDBUF);',
  'open(my $s, "+<&=", 3) or die "fd 3: $!\\n";',
  'my ($rcv, $snd) = @ARGV;',
  'if ($rcv > 0) { setsockopt($s, SOL_SOCKET, SO_RCVBUF, pack("i", $rcv)) or die "SO_RCVBUF: $!\\n"; }',
  'if ($snd > 0) { setsockopt($s, SOL_SOCKET, SO_SNDBUF, pack("i", $snd)) or die "SO_SNDBUF: $!\\n"; }',
  'print unpack("i", getsockopt($s, SOL_SOCKET, SO_RCVBUF)), " ", unpack("i", getsockopt($s, SOL_SOCKET, SO_SNDBUF)), "\\n";',
].join('\n');

/** The descriptor of a listening net.Server (undefined when Node does not show one). */
export function serverFd(server: object): number | undefined {
  const fd = (server as { _handle?: { fd?: unknown } })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Set the buffers of the socket behind `fd`; the sizes the kernel now
 * reports, or an error message (perl missing, an option refused).
 */
export function setSocketBuffers(fd: number, b: SocketBuffers): { receive: number; send: number } | { error: string } {
  const r = spawnSync('perl', ['-e', SCRIPT, String(b.receive ?? 0), String(b.send ?? 0)], { stdio: ['ignore', 'pipe', 'pipe', fd], encoding: 'utf8', timeout: 10_000 });
  if (r.error) return { error: `perl: ${r.error.message}` };
  if (r.status !== 0) return { error: r.stderr.trim() || `perl exited with status ${String(r.status)}` };
  const [receive, send] = r.stdout.trim().split(/\s+/).map(Number);
  return { receive: receive ?? 0, send: send ?? 0 };
}
