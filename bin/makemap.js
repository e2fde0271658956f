#!/usr/bin/env node
import { main } from '../dist/src/cli/makemap.js';
await main(process.argv.slice(2), 'makemap');
