/*
 * privsep/listen.ts — how a listening socket is bound: by this process,
 * or, for the SMTP side of a root-started smtpd, by the privileged parent
 * (daemon/privsep/), which binds only what its own reading of the
 * configuration names (SMTP listeners, the HTTP listener, the control
 * socket) and hands the bound socket over. The SMTP side needs this
 * because it runs without root: ports below 1024, and the control socket's
 * folder, are root's.
 */
import type { Server } from 'node:net';

export type BindSpec =
  | { readonly kind: 'tcp'; readonly host: string; readonly port: number; readonly backlog?: number }
  | { readonly kind: 'unix'; readonly path: string };

/** Asks for a bound socket; resolves with a handle `Server.listen()` takes. */
export type Binder = (spec: BindSpec) => Promise<Server>;

let binder: Binder | undefined;

/** From now on, sockets are bound by `b` (the SMTP side of a root-started smtpd). */
export function setBinder(b: Binder | undefined): void {
  binder = b;
}

/** Is a binder in force (this process may not bind for itself)? */
export function hasBinder(): boolean {
  return binder !== undefined;
}

/**
 * Listen on `spec`: directly, or on the socket the binder hands over. Rejects with the bind's error.
 * Resolves with the server that listens: `server`, or for a Unix socket handed over, the server Node
 * made for it, given `server`'s connection listeners (Node adopts a handed-over TCP handle, not a pipe).
 */
export async function listenOn(server: Server, spec: BindSpec): Promise<Server> {
  const handle = binder ? await binder(spec) : undefined;
  if (handle && spec.kind === 'unix') {
    for (const l of server.listeners('connection')) handle.on('connection', l as (...a: unknown[]) => void);
    handle.maxConnections = server.maxConnections;
    return handle;
  }
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      resolve();
    };
    if (handle) server.listen(handle, done);
    else if (spec.kind === 'unix') server.listen(spec.path, done);
    else server.listen({ host: spec.host, port: spec.port, backlog: spec.backlog ?? 511, ipv6Only: false }, done);
  });
  return server;
}
