/**
 * Inference invariants of the ONNX Runtime engine: the KV cache equals full recomputation, batching
 * and padding change nothing, a mixed attacker/defender batch equals each adapter alone, a zero-B
 * adapter equals the base, and sampling is reproducible from its seed.
 */
import { strict as assert } from 'node:assert';
import { createAdapter } from '../../extension/engine/lora/adapter';
import { LanguageModel } from '../../extension/engine/runtime/language-model';
import { GraphSession } from '../../extension/engine/runtime/session';
import { buildDecoder as buildQwen2 } from '../../extension/engine/model/decoder';
import { tempDir, writeRandomCheckpoint } from '../helpers/random-checkpoint';

const close = (a: (number | null)[], b: (number | null)[], tol: number, what: string) => {
  assert.equal(a.length, b.length, what);
  a.forEach((x, i) => {
    if (x === null || b[i] === null) assert.equal(x, b[i], `${what}[${i}]`);
    else assert.ok(Math.abs(x - (b[i] as number)) <= tol, `${what}[${i}]: ${x} vs ${b[i]}`);
  });
};

describe('inference engine', function () {
  let lm: LanguageModel;
  before(() => {
    lm = LanguageModel.load(writeRandomCheckpoint(tempDir(), { vocabSize: 80, numLayers: 2, numHeads: 4, numKvHeads: 2 }), { threads: 2 });
  });
  after(() => lm.dispose());

  const adapters = () => [
    createAdapter(lm.config, { rank: 4, alpha: 8, targets: ['q_proj', 'v_proj', 'gate_proj'], seed: 11, init: 'random' }),
    createAdapter(lm.config, { rank: 2, alpha: 4, targets: ['k_proj', 'o_proj', 'down_proj', 'up_proj'], seed: 12, init: 'random' }),
  ];

  it('generation with the KV cache reproduces the log-probs of full recomputation (padded, mixed batch)', async () => {
    const ads = adapters();
    const rows = [
      { prompt: [3, 4, 5], adapter: -1, seed: 1 },
      { prompt: [9, 10, 11, 12, 13, 14, 15], adapter: 0, seed: 2 },
      { prompt: [20], adapter: 1, seed: 3 },
    ];
    const gens = await lm.generate(rows, ads, { maxNewTokens: 8, temperature: 1, topP: 1, stopTokens: [] });
    const scored = await lm.score(rows.map((r, i) => ({ ids: [...r.prompt, ...gens[i].tokens], adapter: r.adapter })), ads);
    gens.forEach((gen, i) => close(scored[i].slice(rows[i].prompt.length), gen.logprobs, 2e-5, `row ${i}`));
  });

  it('a batch equals its rows run one by one (scoring and generation)', async () => {
    const ads = adapters();
    const rows = [
      { ids: [1, 2, 3, 4, 5, 6], adapter: 0 },
      { ids: [7, 8], adapter: 1 },
      { ids: [30, 31, 32, 33], adapter: -1 },
    ];
    const batched = await lm.score(rows, ads);
    for (let i = 0; i < rows.length; i++) close(batched[i], (await lm.score([rows[i]], ads))[0], 2e-5, `row ${i}`);
    const gRows = rows.map((r, i) => ({ prompt: r.ids, adapter: r.adapter, seed: 100 + i }));
    const opts = { maxNewTokens: 6, temperature: 0.9, topP: 0.95, stopTokens: [] };
    const together = await lm.generate(gRows, ads, opts);
    for (let i = 0; i < gRows.length; i++) {
      const [alone] = await lm.generate([gRows[i]], ads, opts);
      assert.deepEqual(alone.tokens, together[i].tokens, `row ${i} tokens`);
    }
  });

  it('rows that stop early leave the batch, and every row generates what it generates alone', async () => {
    const ads = adapters();
    // A quarter of the vocabulary stops a row, so rows finish at different steps and the batch shrinks.
    const stopTokens = Array.from({ length: 20 }, (_, i) => 4 * i);
    const gRows = Array.from({ length: 12 }, (_, i) => ({ prompt: [1 + i, 2 + i, 3 + 2 * i], adapter: (i % 3) - 1, seed: 500 + i }));
    const opts = { maxNewTokens: 16, temperature: 1, topP: 1, stopTokens };
    const together = await lm.generate(gRows, ads, opts);
    const lengths = new Set(together.map((g) => g.tokens.length));
    assert.ok(lengths.size >= 3, `rows finish at different steps: ${[...lengths]}`);
    for (let i = 0; i < gRows.length; i++) {
      const [alone] = await lm.generate([gRows[i]], ads, opts);
      assert.deepEqual(together[i].tokens, alone.tokens, `row ${i} tokens`);
      assert.equal(together[i].finish, alone.finish, `row ${i} finish`);
      close(together[i].logprobs, alone.logprobs, 2e-5, `row ${i} log-probs`);
    }
    // And the log-probs are the model's: scoring the whole sequence gives them back.
    const scored = await lm.score(gRows.map((r, i) => ({ ids: [...r.prompt, ...together[i].tokens], adapter: r.adapter })), ads);
    together.forEach((g, i) => close(scored[i].slice(gRows[i].prompt.length), g.logprobs, 2e-5, `row ${i} rescored`));
  });

  it('a mixed attacker/defender batch equals running each adapter alone', async () => {
    const [attacker, defender] = adapters();
    const rows = [
      { ids: [5, 6, 7, 8, 9], adapter: 0 },
      { ids: [10, 11, 12], adapter: 1 },
      { ids: [5, 6, 7, 8, 9], adapter: -1 },
    ];
    const mixed = await lm.score(rows, [attacker, defender]);
    close(mixed[0], (await lm.score([{ ids: rows[0].ids, adapter: 0 }], [attacker]))[0], 2e-5, 'attacker');
    close(mixed[1], (await lm.score([{ ids: rows[1].ids, adapter: 0 }], [defender]))[0], 2e-5, 'defender');
    close(mixed[2], (await lm.score([{ ids: rows[2].ids, adapter: -1 }]))[0], 2e-5, 'base');
    // The adapters really change the model.
    assert.ok(Math.abs((mixed[0][4] as number) - (mixed[2][4] as number)) > 1e-3);
  });

  it('an adapter with B = 0 (PEFT initialisation) is exactly the base model', async () => {
    const fresh = createAdapter(lm.config, { rank: 8, alpha: 16, targets: ['q_proj', 'k_proj', 'v_proj', 'o_proj', 'gate_proj', 'up_proj', 'down_proj'], seed: 5 });
    const ids = [4, 8, 15, 16, 23, 42];
    const [withAdapter] = await lm.score([{ ids, adapter: 0 }], [fresh]);
    const [base] = await lm.score([{ ids, adapter: -1 }]);
    close(withAdapter, base, 1e-6, 'zero adapter');
  });

  it('next-token log-probs equal scoring each candidate appended to the row', async () => {
    const ads = adapters();
    const rows = [
      { ids: [3, 4, 5, 6], adapter: 0 },
      { ids: [7, 8], adapter: -1 },
    ];
    const candidates = [0, 9, 40, 79];
    const next = await lm.nextTokenLogprobs(rows, candidates, ads);
    for (let r = 0; r < rows.length; r++) {
      for (let k = 0; k < candidates.length; k++) {
        const [scored] = await lm.score([{ ids: [...rows[r].ids, candidates[k]], adapter: rows[r].adapter }], ads);
        assert.ok(Math.abs(next[r][k] - (scored[rows[r].ids.length] as number)) < 2e-5);
      }
    }
  });

  it('next-token log-probs of rows sharing a prefix (run once per adapter) equal scoring each row alone', async () => {
    const ads = adapters();
    const prefix = [21, 22, 23, 24, 25, 26];
    const rows = [
      { ids: [...prefix, 40, 41, 42], adapter: 0 },
      { ids: [...prefix, 50], adapter: 1 },
      { ids: [...prefix, 60, 61], adapter: -1 },
      { ids: [...prefix, 40, 41, 42], adapter: 1 },
      { ids: [...prefix.slice(0, 5), 70, 71, 72, 73], adapter: 0 },
    ];
    const candidates = [0, 9, 40, 79];
    const next = await lm.nextTokenLogprobs(rows, candidates, ads);
    for (let r = 0; r < rows.length; r++) {
      for (let k = 0; k < candidates.length; k++) {
        const [scored] = await lm.score([{ ids: [...rows[r].ids, candidates[k]], adapter: rows[r].adapter }], ads);
        assert.ok(Math.abs(next[r][k] - (scored[rows[r].ids.length] as number)) < 2e-5, `row ${r}, candidate ${candidates[k]}`);
      }
    }
  });

  it('greedy decoding is deterministic and stops at a stop token', async () => {
    const [a] = await lm.generate([{ prompt: [1, 2, 3], adapter: -1 }], [], { maxNewTokens: 10, temperature: 0, topP: 1, stopTokens: [] });
    const [b] = await lm.generate([{ prompt: [1, 2, 3], adapter: -1 }], [], { maxNewTokens: 10, temperature: 0, topP: 1, stopTokens: [] });
    assert.deepEqual(a.tokens, b.tokens);
    assert.equal(a.finish, 'length');
    const stop = a.tokens[3];
    const [c] = await lm.generate([{ prompt: [1, 2, 3], adapter: -1 }], [], { maxNewTokens: 10, temperature: 0, topP: 1, stopTokens: [stop] });
    assert.equal(c.finish, 'stop');
    assert.deepEqual(c.tokens, a.tokens.slice(0, a.tokens.indexOf(stop) + 1));
  });

  it('sampling is reproducible from its seed and differs across seeds', async () => {
    const run = (seed: number) => lm.generate([{ prompt: [1, 2], adapter: -1, seed }], [], { maxNewTokens: 12, temperature: 1, topP: 1, stopTokens: [] });
    assert.deepEqual((await run(7))[0].tokens, (await run(7))[0].tokens);
    assert.notDeepEqual((await run(7))[0].tokens, (await run(8))[0].tokens);
  });

  it('samples from softmax(logits / T), restricted to the top-p nucleus', async () => {
    const prompt = [11, 12, 13];
    const all = Array.from({ length: lm.config.vocabSize }, (_, i) => i);
    const [lp] = await lm.nextTokenLogprobs([{ ids: prompt, adapter: -1 }], all);
    const n = 4000;
    for (const { temperature, topP } of [{ temperature: 1, topP: 1 }, { temperature: 0.5, topP: 1 }, { temperature: 1, topP: 0.6 }]) {
      // The exact target distribution, computed on the host in float64.
      const scaled = lp.map((x) => x / temperature);
      const max = Math.max(...scaled);
      let p = scaled.map((x) => Math.exp(x - max));
      const z = p.reduce((a, b) => a + b);
      p = p.map((x) => x / z);
      if (topP < 1) {
        const order = all.slice().sort((a, b) => p[b] - p[a]);
        let mass = 0;
        const keep = new Set<number>();
        for (const t of order) {
          if (mass >= topP) break;
          keep.add(t);
          mass += p[t];
        }
        p = p.map((x, t) => (keep.has(t) ? x / mass : 0));
      }
      const gens = await lm.generate(Array.from({ length: n }, (_, i) => ({ prompt, adapter: -1, seed: 1000 + i })), [], { maxNewTokens: 1, temperature, topP, stopTokens: [] });
      const counts = new Array<number>(all.length).fill(0);
      gens.forEach((g) => counts[g.tokens[0]]++);
      const tv = 0.5 * counts.reduce((s, c, t) => s + Math.abs(c / n - p[t]), 0);
      // The expected total-variation distance of n draws is about sqrt(V/(2πn)) ≈ 0.05 here.
      assert.ok(tv < 0.09, `T=${temperature} top-p=${topP}: total variation ${tv}`);
      if (topP < 1) assert.ok(counts.every((c, t) => c === 0 || p[t] > 0), 'a token outside the nucleus was sampled');
      // Each sampled token carries its log-probability at temperature 1.
      gens.slice(0, 20).forEach((g) => assert.ok(Math.abs(g.logprobs[0] - lp[g.tokens[0]]) < 1e-5));
    }
  });

  it('top-p keeps only the nucleus', async () => {
    // With a tiny top-p only the most likely token survives, so sampling equals greedy decoding.
    const [greedy] = await lm.generate([{ prompt: [9, 9], adapter: -1 }], [], { maxNewTokens: 8, temperature: 0, topP: 1, stopTokens: [] });
    const [nucleus] = await lm.generate([{ prompt: [9, 9], adapter: -1, seed: 3 }], [], { maxNewTokens: 8, temperature: 1, topP: 1e-6, stopTokens: [] });
    assert.deepEqual(nucleus.tokens, greedy.tokens);
  });

  it('weights above the protobuf limit go to an external data file (forced with a low threshold)', async () => {
    const { graph } = buildQwen2({ config: lm.config, dtype: 'float32', weights: { kind: 'frozen', data: lm.weights }, lora: null, kvCache: false, head: 'token-logprobs' });
    const s = await GraphSession.create(graph, { threads: 1, externalThreshold: 1024 });
    const ids = BigInt64Array.from([1n, 2n, 3n]);
    const out = await s.run({
      input_ids: { dtype: 'int64', dims: [1, 3], data: ids },
      attention_mask: { dtype: 'int64', dims: [1, 3], data: BigInt64Array.from([1n, 1n, 1n]) },
      position_ids: { dtype: 'int64', dims: [1, 3], data: BigInt64Array.from([0n, 1n, 2n]) },
      targets: { dtype: 'int64', dims: [1, 3], data: BigInt64Array.from([2n, 3n, 0n]) },
    });
    await s.release();
    const [expected] = await lm.score([{ ids: [1, 2, 3], adapter: -1 }]);
    close([null, ...Array.from(out.token_logprobs.data as Float32Array).slice(0, 2)], expected, 1e-6, 'external data');
  });
});
