/**
 * A trainer stand-in for the follow test: a separate process that appends events and exchanges as
 * fast as it can, and some of them in two write() calls with a pause between — so the reader meets
 * lines that are half-written at the moment it reads, as it would on a slow disk or a network share.
 *
 *   npx tsx test/rundir/live-writer.ts RUN_DIR COUNT
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { RunWriter } from '../../extension/rundir';
import { exchange } from './helpers';

const [dir, countArg] = process.argv.slice(2);
const count = Number(countArg);
const writer = RunWriter.open(dir);
const events = path.join(dir, 'events.jsonl');

function sleep(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

for (let i = 1; i <= count; i++) {
  if (i % 50 === 0) {
    // A record written in two pieces, with the reader free to look in between.
    const line = JSON.stringify({ type: 'step', t: new Date().toISOString(), attempt: 1, round: 1, step: i, phase: 'both', metrics: { i } }) + '\n';
    const fd = fs.openSync(events, 'a');
    fs.writeSync(fd, line.slice(0, 40));
    sleep(15);
    fs.writeSync(fd, line.slice(40));
    fs.closeSync(fd);
  } else {
    writer.event({ type: 'step', round: 1, step: i, phase: 'both', metrics: { i } });
  }
  if (i % 10 === 0) writer.exchange(exchange(1, i, 0));
}
writer.setStatus('completed');
