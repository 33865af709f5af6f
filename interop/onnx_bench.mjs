// Times an `idn export onnx` directory under onnxruntime-node for `idn bench engine`: each stage
// and exit head alone, the cheapest early-exit path (stage 0 and its exits) and every stage and
// exit, at each batch size, on the CPU execution provider with one intra-op and one inter-op
// thread and every graph optimisation. A trivial graph (Identity on the model input) is timed
// the same way, so a reader can subtract what every session.run() costs from JS.
//
//   node onnx_bench.mjs --dir DIR [--batches 1,32] [--iterations 300] [--warmup 30]
//
// Prints one JSON line per row: {"item": "stage0", "batch": 1, "us": [µs per call, ...]}, item
// names as `idn bench engine` spells them; a first line {"onnxruntime": VERSION}. Each timed
// call includes building the input tensors from Float32Arrays and awaiting session.run().
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import ort from 'onnxruntime-node';

function arg(name, fallback) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : fallback;
}

const dir = arg('--dir');
if (!dir) {
  console.error('usage: onnx_bench.mjs --dir DIR [--batches 1,32] [--iterations N] [--warmup N]');
  process.exit(2);
}
const batches = arg('--batches', '1,32').split(',').map(Number);
const iterations = Number(arg('--iterations', '300'));
const warmup = Number(arg('--warmup', '30'));
if (!batches.every((b) => b >= 1) || !(iterations >= 1) || !(warmup >= 0)) {
  console.error('onnx_bench.mjs: batches >= 1, iterations >= 1, warmup >= 0');
  process.exit(2);
}
const manifest = JSON.parse(readFileSync(join(dir, 'manifest.json'), 'utf8'));
if (manifest.format !== 'idn-onnx' || manifest.version !== 1) {
  console.error(`${dir}/manifest.json: not an idn-onnx version 1 manifest`);
  process.exit(1);
}

const options = {
  executionProviders: ['cpu'],
  intraOpNumThreads: 1,
  interOpNumThreads: 1,
  executionMode: 'sequential',
  graphOptimizationLevel: 'all',
};

// The smallest ModelProto that runs: y = Identity(x), x float [N, ...shape]. Hand-encoded
// protobuf (ir_version 7, opset 13), so the overhead row needs no second export.
function identityModel(shape) {
  const varint = (n) => {
    const out = [];
    for (; n >= 0x80; n >>>= 7) out.push((n & 0x7f) | 0x80);
    out.push(n);
    return out;
  };
  const field = (num, bytes) => [...varint((num << 3) | 2), ...varint(bytes.length), ...bytes];
  const int = (num, v) => [...varint(num << 3), ...varint(v)];
  const str = (s) => [...Buffer.from(s, 'utf8')];
  const dims = [field(1, field(2, str('N'))), ...shape.map((d) => field(1, int(1, d)))].flat();
  const tensorType = field(1, [...int(1, 1), ...field(2, dims)]); // elem_type FLOAT, shape
  const value = (name) => [...field(1, str(name)), ...field(2, tensorType)];
  const node = [...field(1, str('x')), ...field(2, str('y')), ...field(4, str('Identity'))];
  const graph = [
    ...field(1, node),
    ...field(2, str('identity')),
    ...field(11, value('x')),
    ...field(12, value('y')),
  ];
  return Uint8Array.from([...int(1, 7), ...field(7, graph), ...field(8, int(2, 13))]);
}

const require = createRequire(import.meta.url);
console.log(JSON.stringify({ onnxruntime: require('onnxruntime-node/package.json').version }));

const graphs = [];
for (const [kind, list] of [['stage', manifest.stages], ['exit', manifest.exits]]) {
  for (const g of list) {
    const session = await ort.InferenceSession.create(readFileSync(join(dir, g.file)), options);
    graphs.push({ ...g, kind, tag: `${kind}_${g.index}`, session });
  }
}
const stages = graphs.filter((g) => g.kind === 'stage');
const exits = graphs.filter((g) => g.kind === 'exit');
const inputShape = manifest.input.shape.slice(1);
const identity = await ort.InferenceSession.create(identityModel(inputShape), options);

const numel = (shape, n) => shape.slice(1).reduce((a, b) => a * b, n);

async function runGraph(g, values, n) {
  const feeds = {};
  for (const v of g.inputs) {
    const data = v.from === 'input' ? values.input : values[`${v.from}/${v.name}`];
    feeds[v.name] = new ort.Tensor('float32', data, [n, ...v.shape.slice(1)]);
  }
  const out = await g.session.run(feeds);
  for (const v of g.outputs) values[`${g.tag}/${v.name}`] = out[v.name].data;
}

for (const n of batches) {
  // Deterministic input in [0, 1), like an image scaled from 8 bits.
  const input = new Float32Array(numel(manifest.input.shape, n));
  let seed = 1;
  for (let i = 0; i < input.length; ++i) {
    seed = (seed * 1103515245 + 12345) >>> 0;
    input[i] = (seed >>> 8) / (1 << 24);
  }
  // Every value once, so each stage and exit can run alone on its inputs.
  const values = { input };
  for (const g of graphs) await runGraph(g, values, n);
  const rows = [];
  for (const g of stages) rows.push({ item: g.name, run: () => runGraph(g, values, n) });
  for (const g of exits) rows.push({ item: `${g.name} head`, run: () => runGraph(g, values, n) });
  const path = (last) => async () => {
    const v = { input };
    for (const st of stages.slice(0, last + 1)) {
      await runGraph(st, v, n);
      for (const ex of exits) if (ex.stage === st.index) await runGraph(ex, v, n);
    }
  };
  if (stages.length > 1) rows.push({ item: 'path to stage 0', run: path(0) });
  rows.push({ item: 'all stages+exits', run: path(stages.length - 1) });
  rows.push({
    item: 'ORT call overhead (Identity)',
    run: () => identity.run({ x: new ort.Tensor('float32', input, [n, ...inputShape]) }),
  });
  for (const r of rows) r.us = [];
  // The C++ side's protocol: every row once per iteration, warm-up iterations untimed.
  for (let i = 0; i < warmup + iterations; ++i) {
    for (const r of rows) {
      const t0 = process.hrtime.bigint();
      await r.run();
      const us = Number(process.hrtime.bigint() - t0) / 1000;
      if (i >= warmup) r.us.push(us);
    }
  }
  for (const r of rows) console.log(JSON.stringify({ item: r.item, batch: n, us: r.us }));
}
