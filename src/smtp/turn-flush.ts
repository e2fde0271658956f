/*
 * smtp/turn-flush.ts — replies written once per turn of the event loop, for
 * every connection at once.
 *
 * A connection that has run out of input does not write its replies at once:
 * it joins the connections due this turn, and one immediate writes them all,
 * the mail log first (one write for every line any of them logged: the log
 * line is still written before the reply it describes), then each socket's
 * replies in one write. When the spool answers a batch of commits, the
 * sessions it answers cost one log write, not one each.
 */

/** A connection with replies waiting (Connection.flush writes the log, then them). */
export interface Flushable {
  flush(): void;
}

const due = new Set<Flushable>();
let scheduled = false;

function flushDue(): void {
  scheduled = false;
  for (const c of due) {
    due.delete(c);
    c.flush();
  }
}

/** Write `c`'s replies at the end of this turn (a flush of its own before then makes this a no-op). */
export function flushThisTurn(c: Flushable): void {
  due.add(c);
  if (scheduled) return;
  scheduled = true;
  setImmediate(flushDue);
}
