#!/usr/bin/env node
// A streaming chat-style loop over stdin lines: each line you type is a prompt, the model's continuation
// streams back as it is generated (the shipped tiny-kjv model is a plain language model, so "chat" is
// prompt -> continuation; an instruction-tuned checkpoint with a chat template would wrap the turns).
// Works interactively or piped:  printf 'And God said\nBlessed are\n' | node examples/chat.js
//
//   node examples/chat.js [--model DIR] [--max N] [--temperature T] [--seed S] [--backend cpu|js]
'use strict';
const path = require('path');
const readline = require('readline');
const T = require('..');

function parseArgs(argv) {
  const o = { model: path.join(__dirname, '..', 'models', 'tiny-kjv'), max: 80, seed: 1 };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i].replace(/^--/, '');
    if (['model', 'backend'].includes(k)) o[k] = argv[++i];
    else if (['max', 'temperature', 'seed'].includes(k)) o[k] = Number(argv[++i]);
    else throw new Error(`unknown argument ${argv[i]}`);
  }
  return o;
}

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const model = await T.loadModel(o.model, { backend: o.backend });
  const tty = process.stdin.isTTY;
  if (tty) console.log(`${path.basename(o.model)} loaded (${model.config.architecture}). Type a prompt; an empty line or Ctrl-D ends.`);
  const rl = readline.createInterface({ input: process.stdin, terminal: tty });
  let turn = 0;
  const ask = () => tty && process.stdout.write('\n> ');
  ask();
  for await (const line of rl) {
    const prompt = line.trim();
    if (!prompt) break;
    if (!tty) process.stdout.write(`> ${prompt}\n`);
    const gen = { maxNewTokens: o.max, seed: o.seed + turn++, stop: ['\n'] };
    if (o.temperature !== undefined) gen.temperature = o.temperature;
    process.stdout.write(prompt);
    const s = model.stream(prompt, gen);
    for await (const piece of s) process.stdout.write(piece.text);
    const r = await s.result;
    process.stdout.write(`\n  [${r.stats.generatedTokens} tokens, ${r.stats.decodeTokensPerSec.toFixed(0)} tokens/s, ${r.finishReason}]\n`);
    ask();
  }
  rl.close();
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof T.TesseraError ? `error (${e.code}): ${e.message}` : e);
  process.exit(1);
});
