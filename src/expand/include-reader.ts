/*
 * expand/include-reader.ts — the program include-as.ts runs with a user's
 * ids: `node include-reader.js -- PATH…` reads the tree of :include: files
 * from PATHs (include.ts's rules) and prints one JSON array of what it read
 * (raw text and whether the file is group/world-writable, or why not), for
 * the root caller to parse itself. It reads nothing else and writes nothing.
 */
import { readIncludeTree } from './include-as.js';

const paths = process.argv.slice(2).filter((a, i) => !(i === 0 && a === '--'));
process.stdout.write(JSON.stringify(readIncludeTree(paths)));
