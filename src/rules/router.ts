/*
 * scheduler/route.ts — how the scheduler routes a message it writes itself
 * (a DSN to the original sender).
 *
 * The daemon passes a Router bound to the smtpd.conf rules, evaluated as
 * for a locally submitted message from the null sender, with the same
 * expansion as at RCPT time (aliases, virtual tables): the answer is the
 * recipient's action and destination, as the session would have put in the
 * envelope. An { error } answer (no rule accepts, lookup failed) makes the
 * runner log the DSN and drop it.
 */
import type { Destination } from '../mail/envelope.js';

export type RouteResult =
  | { readonly action: string; readonly dest: Destination; readonly rule?: string }
  | { readonly error: string };

export type Router = (address: string) => RouteResult | Promise<RouteResult>;
