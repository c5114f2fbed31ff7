#!/usr/bin/env node
// The main job (`npm run demo`): load a Hugging Face checkpoint (default: the shipped models/tiny-kjv, a
// ~2M-parameter Llama trained on the King James Bible), stream a continuation of a prompt to stdout, then
// print prefill and decode tokens/s and where the time went (per-kernel totals from T.profile).
//
//   node examples/generate.js ["prompt"] [--model DIR] [--max N] [--temperature T] [--top-k K] [--top-p P]
//                             [--seed S] [--backend cpu|js|cuda] [--dtype float32|bfloat16|float16]
'use strict';
const path = require('path');
const T = require('..');

function parseArgs(argv) {
  const o = { model: path.join(__dirname, '..', 'models', 'tiny-kjv'), prompt: 'And God said', max: 64, seed: 1 };
  const names = { '--model': 'model', '--max': 'max', '--temperature': 'temperature', '--top-k': 'topK', '--top-p': 'topP', '--seed': 'seed', '--backend': 'backend', '--dtype': 'dtype' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (names[a]) {
      const v = argv[++i];
      o[names[a]] = ['model', 'backend', 'dtype'].includes(names[a]) ? v : Number(v);
    } else if (a === '-h' || a === '--help') {
      console.log('usage: node examples/generate.js ["prompt"] [--model DIR] [--max N] [--temperature T] [--top-k K] [--top-p P] [--seed S] [--backend cpu|js|cuda] [--dtype D]');
      process.exit(0);
    } else o.prompt = a;
  }
  return o;
}

const ms = (x) => (x < 1 ? `${(x * 1000).toFixed(0)} µs` : `${x.toFixed(1)} ms`);

async function main() {
  const o = parseArgs(process.argv.slice(2));
  const t0 = performance.now();
  const model = await T.loadModel(o.model, { backend: o.backend, dtype: o.dtype });
  const c = model.config;
  const be = o.backend || T.getBackend();
  console.error(
    `${path.basename(o.model)}: ${c.architecture}, hidden ${c.hiddenSize}, ${c.numLayers} layers, ${c.numHeads} heads / ${c.numKvHeads} kv heads, ` +
      `vocab ${c.vocabSize}, ${(model.weightBytes / 1048576).toFixed(1)} MB of ${model.weightDtype} weights, loaded in ${ms(performance.now() - t0)}; backend ${be}`,
  );
  const gen = { maxNewTokens: o.max, seed: o.seed };
  for (const k of ['temperature', 'topK', 'topP']) if (o[k] !== undefined) gen[k] = o[k];
  const d = model.generationConfig;
  const temp = gen.temperature ?? (d.doSample ? d.temperature : 0);
  console.error(`sampling: ${temp === 0 ? 'greedy' : `temperature ${temp}, top-k ${gen.topK ?? d.topK}, top-p ${gen.topP ?? d.topP}, seed ${o.seed}`}\n`);

  await model.generate(o.prompt, { maxNewTokens: 2, temperature: 0 }); // warm-up: JIT and first-call costs stay out of the numbers
  let result;
  const report = await T.profile(async () => {
    process.stdout.write(o.prompt);
    const s = model.stream(o.prompt, gen);
    for await (const piece of s) process.stdout.write(piece.text);
    result = await s.result;
  });
  process.stdout.write('\n\n');

  const st = result.stats;
  const kernelMs = report.records.reduce((n, r) => n + r.durationNs, 0) / 1e6;
  console.log(`prompt ${st.promptTokens} tokens, generated ${st.generatedTokens} (${result.finishReason})`);
  console.log(`prefill: ${st.prefillTokensPerSec.toFixed(1)} tokens/s (${ms(st.prefillMs)}, time to first token)`);
  console.log(`decode:  ${st.decodeTokensPerSec.toFixed(1)} tokens/s (${st.decodeTokens} steps in ${ms(st.decodeMs)})`);
  console.log(`\nwhere the time went: ${ms(kernelMs)} in kernels, ${ms(Math.max(0, st.totalMs - kernelMs))} in JS around them (tensor bookkeeping, sampling, detokenizing)`);
  console.log(report.table({ roofline: false, limit: 10 }));
  model.dispose();
}

main().catch((e) => {
  console.error(e instanceof T.TesseraError ? `error (${e.code}): ${e.message}` : e);
  process.exit(1);
});
