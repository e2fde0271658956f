/*
 * scheduler/seam.ts — the scheduler as the SMTP server sees it, before the
 * real scheduler exists: ETRN is acknowledged (RFC 1985 §5 "250 queuing
 * started"), queued messages are counted. The delivery work replaces it.
 */
import { reply, type Reply } from '../mail/reply.js';
import type { SchedulerSeam } from '../queue/seam.js';
import type { Envelope } from '../mail/envelope.js';

export class QueueOnlyScheduler implements SchedulerSeam {
  queued = 0;

  etrn(domain: string): Reply {
    return reply(250, '2.0.0', `Queuing for node ${domain} started`);
  }

  enqueued(_env: Envelope): void {
    this.queued++;
  }
}
