/*
 * wire/header-scan.ts — a streaming look at the header section of a message
 * (RFC 5322 §2.2, §3.6), for hop counting (RFC 5321 §6.3: too many
 * "Received:" fields means a mail loop).
 *
 * Fed the decoded content (CR LF line endings) in arbitrary chunks; keeps a
 * few bits of state, never a copy. The header section ends at the first
 * empty line (CR LF, or a lone LF, at a line start); after that push() does
 * nothing. A "Received" field is a line that starts with the name
 * "Received" (any case), optional SP/HTAB (obs-optional, RFC 5322 §4.5.3)
 * and ":". Continuation lines (starting with SP/HTAB) and other names that
 * merely begin with "Received" (Received-SPF) do not count. Content with no
 * empty line is all header section.
 *
 * Per header line the work is a comparison of at most 9 bytes at its start
 * and one Buffer.indexOf for its end.
 */

const CR = 13;
const LF = 10;
const SP = 32;
const HTAB = 9;
const COLON = 58;
/** Lower-case "received"; a byte b matches letter l when (b | 0x20) === l. */
const NAME = Buffer.from('received', 'latin1');

/* States. NAME_0 + k: the first k letters of NAME matched (1 <= k <= 8). */
const SKIP = 0; // inside a line that is not (or no longer) a candidate
const LINE_START = 1;
const LINE_START_CR = 2; // CR at a line start: an empty line if LF follows
const NAME_0 = 2;
const NAME_FULL = NAME_0 + NAME.length;
const AFTER_NAME_WSP = NAME_FULL + 1; // "Received" then SP/HTAB
const DONE = AFTER_NAME_WSP + 1;

export class HeaderScanner {
  private state = LINE_START;
  private count = 0;

  push(chunk: Buffer): void {
    let st = this.state;
    if (st === DONE) return;
    const len = chunk.length;
    let i = 0;
    while (i < len) {
      if (st === SKIP) {
        const lf = chunk.indexOf(LF, i);
        if (lf < 0) break;
        i = lf + 1;
        st = LINE_START;
        continue;
      }
      const c = chunk[i]!;
      if (st === LINE_START) {
        if (c === CR) {
          st = LINE_START_CR;
          i++;
        } else if (c === LF) {
          st = DONE;
          break;
        } else if ((c | 0x20) === NAME[0]) {
          st = NAME_0 + 1;
          i++;
        } else {
          st = SKIP;
        }
      } else if (st === LINE_START_CR) {
        if (c === LF) {
          st = DONE;
          break;
        }
        st = SKIP;
      } else if (st < NAME_FULL) {
        if ((c | 0x20) === NAME[st - NAME_0]) {
          st++;
          i++;
        } else {
          st = SKIP;
        }
      } else if (c === COLON) {
        this.count++;
        st = SKIP;
        i++;
      } else if (c === SP || c === HTAB) {
        st = AFTER_NAME_WSP;
        i++;
      } else {
        st = SKIP;
      }
    }
    this.state = st;
  }

  get inHeaders(): boolean {
    return this.state !== DONE;
  }

  get receivedCount(): number {
    return this.count;
  }
}
