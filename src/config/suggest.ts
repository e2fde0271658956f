/*
 * config/suggest.ts — "did you mean …?" for misspelt keywords and names.
 *
 * Distance is the optimal-string-alignment edit distance (insert, delete,
 * substitute, swap two neighbours: "lisen" → "listen" is 1, "lsiten" → 1).
 * A suggestion is made only when it is obvious: distance ≤ 2 (≤ 1 for words
 * of three letters or fewer), and closer than the word is long.
 */

export function editDistance(a: string, b: string): number {
  const m = a.length;
  const n = b.length;
  const d: number[][] = Array.from({ length: m + 1 }, (_, i) => Array.from({ length: n + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= m; i++) {
    for (let j = 1; j <= n; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      const row = d[i] as number[];
      const prev = d[i - 1] as number[];
      let v = Math.min((prev[j] as number) + 1, (row[j - 1] as number) + 1, (prev[j - 1] as number) + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        v = Math.min(v, ((d[i - 2] as number[])[j - 2] as number) + 1);
      }
      row[j] = v;
    }
  }
  return (d[m] as number[])[n] as number;
}

/** The closest candidate when the match is obvious, else undefined. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  const w = word.toLowerCase();
  const limit = w.length <= 3 ? 1 : 2;
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const dist = editDistance(w, c.toLowerCase());
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  if (best === undefined || best === word || bestDistance > limit || bestDistance >= w.length) return undefined;
  return best;
}

/** '; did you mean "x"?' or '' — to append to a message. */
export function didYouMean(word: string, candidates: Iterable<string>): string {
  const s = suggest(word, candidates);
  return s === undefined ? '' : `; did you mean "${s}"?`;
}
