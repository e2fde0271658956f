#!/usr/bin/env node
import '../dist/src/cli/smtpd.js';
