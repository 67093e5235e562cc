#!/usr/bin/env node
// Thin launcher: the program lives in dist/ (built by `npm run build`; `npm ci` builds it through `prepare`).
import { main } from '../dist/cli/main.js';

process.exitCode = await main(process.argv, { handleSignals: true });
