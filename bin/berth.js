#!/usr/bin/env node
// Entry point of the `berth` command: the compiled CLI lives in dist/ (built by `npm ci`'s prepare step).
import { main } from '../dist/cli/main.js';

await main(process.argv);
