#!/usr/bin/env node
// Runs every test/*.test.js in its own process (a crash in one file cannot hide the others), reads the
// TAP each prints, and ends with the line `N passed, N failed` (assertions). A file that exits non-zero
// without a failing assertion counts as one failure. Usage: node test/run.js [name-filter ...]
'use strict';
const { spawn } = require('child_process');
const fs = require('fs');
const path = require('path');

const filters = process.argv.slice(2);
const files = fs.readdirSync(__dirname)
  .filter((f) => f.endsWith('.test.js'))
  .filter((f) => filters.length === 0 || filters.some((p) => f.includes(p)))
  .sort();

function runFile(file) {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, [path.join(__dirname, file)], {
      env: { ...process.env, TESSERA_QUIET: process.env.TESSERA_QUIET || '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('close', (code, signal) => {
      let pass = 0;
      let fail = 0;
      let skip = 0;
      const failures = [];
      const lines = out.split('\n');
      lines.forEach((line, i) => {
        if (/^ok \d+/.test(line)) {
          if (/# SKIP/i.test(line)) skip++;
          else pass++;
        } else if (/^not ok \d+/.test(line)) {
          if (/# TODO/i.test(line)) return;
          fail++;
          failures.push(lines.slice(i, i + 12).join('\n'));
        }
      });
      if ((code !== 0 || signal) && fail === 0) {
        fail++;
        failures.push(`process exited with ${signal || code}\n${err.slice(-3000)}`);
      }
      resolve({ file, pass, fail, skip, failures, ms: Date.now() - t0, notes: lines.filter((l) => /^# (cuda|note)/i.test(l)) });
    });
  });
}

(async () => {
  let pass = 0;
  let fail = 0;
  let skip = 0;
  for (const f of files) {
    const r = await runFile(f);
    pass += r.pass;
    fail += r.fail;
    skip += r.skip;
    console.log(`${r.fail ? 'FAIL' : 'ok  '} ${f}: ${r.pass} passed, ${r.fail} failed${r.skip ? `, ${r.skip} skipped` : ''} (${(r.ms / 1000).toFixed(1)} s)`);
    for (const n of r.notes) console.log(`     ${n}`);
    for (const x of r.failures.slice(0, 5)) console.log(x.replace(/^/gm, '     | '));
  }
  console.log(`${pass} passed, ${fail} failed${skip ? `, ${skip} skipped` : ''}`);
  process.exitCode = fail ? 1 : 0;
})();
