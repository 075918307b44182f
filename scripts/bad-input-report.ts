/**
 * Runs the bad-input suite (test/bad-input/*.test.ts) with its outcomes recorded, and writes the
 * counts it measured into README.md between the bad-input markers: inputs tried, clear errors,
 * inputs handled as expected (read with the damage reported, or left alone), crashes, hangs, and
 * anything changed that was already written. Usage: npx tsx scripts/bad-input-report.ts [--check]
 * (--check only compares README with a fresh run and exits 1 when they differ).
 */
import { execFileSync } from 'node:child_process';
import * as os from 'node:os';
import * as fs from 'node:fs';
import * as path from 'node:path';

const ROOT = path.resolve(__dirname, '..');
const RESULTS = path.join(ROOT, 'test-artifacts', 'bad-input');
const README = path.join(ROOT, 'README.md');
const BEGIN = '<!-- bad-input:begin (written by scripts/bad-input-report.ts) -->';
const END = '<!-- bad-input:end -->';

interface Outcome {
  family: string;
  name: string;
  kind: string;
  ms: number;
}

fs.rmSync(RESULTS, { recursive: true, force: true });
const files = fs.readdirSync(path.join(ROOT, 'test', 'bad-input')).filter((f) => f.endsWith('.test.ts')).sort().map((f) => path.join('test', 'bad-input', f));
try {
  execFileSync(process.execPath, [path.join(ROOT, 'node_modules', 'mocha', 'bin', 'mocha.js'), ...files], { cwd: ROOT, stdio: 'inherit', env: { ...process.env, BAD_INPUT_RESULTS: '1' } });
} catch {
  process.stderr.write('bad-input-report: some cases failed; their outcomes are counted below\n');
}

const families = fs.readdirSync(RESULTS).filter((f) => f.endsWith('.json')).sort().map((f) => JSON.parse(fs.readFileSync(path.join(RESULTS, f), 'utf8')) as { family: string; outcomes: Outcome[] });
const all = families.flatMap((f) => f.outcomes);
const count = (kinds: string[]) => all.filter((o) => kinds.includes(o.kind)).length;
const rows = families.map((f) => {
  const c = (kinds: string[]) => f.outcomes.filter((o) => kinds.includes(o.kind)).length;
  return `| ${f.family} | ${f.outcomes.length} | ${c(['clear-error'])} | ${c(['handled'])} | ${c(['crash', 'unclear-error', 'not-refused', 'too-much-memory'])} | ${c(['hang'])} | ${c(['changed'])} |`;
});
const slowest = Math.max(...all.map((o) => o.ms));
const date = new Date().toISOString().slice(0, 10);
const block = [
  BEGIN,
  `Measured ${date} by \`npx tsx scripts/bad-input-report.ts\` (this machine: ${os.cpus().length} cores, Node ${process.version}): ` +
    `**${all.length} hostile or malformed inputs tried, ${count(['clear-error'])} refused with one clear error naming the file and field, ` +
    `${count(['handled'])} handled as expected (read with the damage reported, or safely left alone), ` +
    `${count(['crash', 'unclear-error', 'not-refused', 'too-much-memory'])} crashes or unclear errors, ${count(['hang'])} hangs, ${count(['changed'])} changes to what was already written.** ` +
    `The slowest case took ${Math.round(slowest)} ms.`,
  '',
  '| input family | tried | clear error | handled | crash / unclear | hang | changed |',
  '|---|---:|---:|---:|---:|---:|---:|',
  ...rows,
  END,
].join('\n');

const readme = fs.readFileSync(README, 'utf8');
const a = readme.indexOf(BEGIN);
const b = readme.indexOf(END);
if (a < 0 || b < 0) throw new Error(`README.md has no ${BEGIN} … ${END} block`);
const next = readme.slice(0, a) + block + readme.slice(b + END.length);
if (process.argv.includes('--check')) {
  const strip = (s: string) => s.replace(/Measured \d{4}-\d{2}-\d{2}[^:]*:/, '').replace(/The slowest case took \d+ ms\./, '');
  if (strip(next) !== strip(readme)) {
    process.stderr.write('README.md: the bad-input counts differ from a fresh run of the suite\n');
    process.exit(1);
  }
} else fs.writeFileSync(README, next);
process.stdout.write(block + '\n');
