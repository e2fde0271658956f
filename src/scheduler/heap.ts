/*
 * scheduler/heap.ts — a binary min-heap of (time, id) pairs.
 *
 * The schedule keeps its timers (next retry, expiry) in heaps with lazy
 * deletion: an entry is never removed when its envelope changes; whoever
 * pops it checks that it still applies. rebuild() drops the stale ones when
 * they outnumber the live ones.
 */

export interface Timed {
  readonly at: number;
  readonly id: string;
}

export class MinHeap {
  private items: Timed[] = [];

  get size(): number {
    return this.items.length;
  }

  push(at: number, id: string): void {
    const a = this.items;
    a.push({ at, id });
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if ((a[p] as Timed).at <= (a[i] as Timed).at) break;
      [a[p], a[i]] = [a[i] as Timed, a[p] as Timed];
      i = p;
    }
  }

  peek(): Timed | undefined {
    return this.items[0];
  }

  pop(): Timed | undefined {
    const a = this.items;
    const top = a[0];
    const last = a.pop();
    if (top === undefined || last === undefined || a.length === 0) return top;
    a[0] = last;
    let i = 0;
    for (;;) {
      const l = 2 * i + 1;
      const r = l + 1;
      let m = i;
      if (l < a.length && (a[l] as Timed).at < (a[m] as Timed).at) m = l;
      if (r < a.length && (a[r] as Timed).at < (a[m] as Timed).at) m = r;
      if (m === i) break;
      [a[m], a[i]] = [a[i] as Timed, a[m] as Timed];
      i = m;
    }
    return top;
  }

  /** Keep only the entries `keep` accepts (one O(n) pass plus a heapify). */
  rebuild(keep: (t: Timed) => boolean): void {
    const old = this.items.filter(keep);
    this.items = [];
    for (const t of old) this.push(t.at, t.id);
  }
}
