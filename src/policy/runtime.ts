/*
 * policy/runtime.ts — what the policy files (ZMailer's smtpserver.conf,
 * `-s` styles) change in how a session talks, as built by policy/build.ts
 * and read by smtp/session.ts. Data only: the session applies it.
 */
import type { StyleFlag } from '../config/zmailer/helo-patterns.js';

/**
 * What the policy files change in a session (policy/build.ts). Absent:
 * Postern's own behaviour.
 */
export interface SessionRuntime {
  /** EHLO allowed (ZMailer's NoEHLO: HELO only). */
  readonly ehlo: boolean;
  /** Multi-line replies (ZMailer's no-multiline-replies: one line each, except the EHLO list). */
  readonly multilineReplies: boolean;
  /** The 220 greeting's lines (ZMailer's hdr220). */
  readonly greeting?: (v: { readonly hostname: string; readonly clientAddress: string; readonly localPort: number }) => readonly string[];
  /** The style flags of a session that greeted with `helo` (undefined: before HELO). Absent: no styles. */
  readonly style?: (helo: string | undefined) => ReadonlySet<StyleFlag>;
  /** `-s strict`: strict path syntax whatever the style. */
  readonly strict?: boolean;
  /** What the Received: header shows of TLS (rcvd-tls-mode, rcvd-tls-peer). Absent: all of it. */
  readonly received?: { readonly tlsMode: boolean; readonly tlsPeer: boolean; readonly ident?: boolean; readonly whoson?: boolean; readonly authUser?: boolean };
  /** ZMailer's allowsourceroute: a recipient's source route is kept as its original recipient (ORCPT), for DSNs and the log. */
  readonly keepSourceRoute?: boolean;
  /** ZMailer's MSA-mode: MAIL needs AUTH unless this says the client is trusted. */
  readonly msaTrusted?: (ip: string) => boolean;
}
