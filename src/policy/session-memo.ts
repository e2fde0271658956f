/*
 * policy/session-memo.ts — what a phase remembers about a session between
 * its phases (a DNS list score asked at connect, read again at RCPT),
 * keyed by session id. Bounded: past `max` sessions the oldest memo goes
 * (a session that old has ended, or pays one more lookup).
 */

/** A memo factory: memo(id) returns the same object for a session id, made by `make` the first time. */
export function sessionMemos<M>(make: () => M, max = 10_000): (id: string) => M {
  const memos = new Map<string, M>();
  return (id) => {
    let m = memos.get(id);
    if (m === undefined) {
      if (memos.size >= max) memos.delete(memos.keys().next().value as string);
      m = make();
      memos.set(id, m);
    }
    return m;
  };
}
