/*
 * delivery/local/helper-frame.ts — the message bytes on the deliver-as
 * helper's standard input, framed so that the helper can tell the end of
 * the message from the daemon dying half-way through it (a `kill -9` of
 * the daemon closes the pipe exactly as the end of the message would):
 *
 *   <length in hex> LF <that many bytes>      one chunk, repeated
 *   0 LF                                      the end of the message
 *
 * A stream that ends before "0 LF", or a malformed length, makes the
 * decoder fail: the job then fails as a temporary error (the mbox is
 * truncated back, the maildir file removed, the mda killed) instead of
 * delivering a truncated message, and the daemon's next start delivers
 * the whole message again.
 */
import { Transform, type TransformCallback } from 'node:stream';

/** The longest length line accepted ("ffffffff" + LF). */
const MAX_HEADER = 9;

/** Daemon side: frame the message bytes. */
export function frameEncoder(): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, cb) {
      if (chunk.length === 0) return cb();
      cb(null, Buffer.concat([Buffer.from(`${chunk.length.toString(16)}\n`, 'latin1'), chunk]));
    },
    flush(cb) {
      cb(null, Buffer.from('0\n', 'latin1'));
    },
  });
}

/** Helper side: the message bytes back; an error if the frame is broken or never ends. */
export function frameDecoder(): Transform {
  let header = '';
  let left = 0; // bytes of the current chunk still to come
  let ended = false;
  return new Transform({
    transform(chunk: Buffer, _enc, cb: TransformCallback) {
      let i = 0;
      while (i < chunk.length) {
        if (ended) return cb(new Error('message frame: data after the end'));
        if (left > 0) {
          const n = Math.min(left, chunk.length - i);
          this.push(chunk.subarray(i, i + n));
          left -= n;
          i += n;
          continue;
        }
        const c = chunk[i++] as number;
        if (c !== 0x0a) {
          header += String.fromCharCode(c);
          if (header.length >= MAX_HEADER || !/^[0-9a-f]+$/.test(header)) return cb(new Error('message frame: bad chunk length'));
          continue;
        }
        if (header === '') return cb(new Error('message frame: bad chunk length'));
        left = parseInt(header, 16);
        header = '';
        if (left === 0) ended = true;
      }
      cb();
    },
    flush(cb) {
      cb(ended ? null : new Error('message cut short (the daemon went away before the end of the message)'));
    },
  });
}
