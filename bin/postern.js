#!/usr/bin/env node
// Every Postern command; the name it is invoked under picks which (see src/cli/main.ts).
import '../dist/src/cli/main.js';
