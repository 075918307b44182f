/**
 * The panel worker: the work of the panels that needs the model or heavy arithmetic, on a
 * worker_threads thread so the extension host stays responsive (its bundle is dist/panel-worker.js;
 * the host's end is client.ts). Two jobs, one protocol (protocol.ts):
 *
 *  - adapter-diff: compare two LoRA adapters module by module (adapter-diff-job.ts);
 *  - replay: play a recorded exchange's attack against the defender of another round (replay-job.ts).
 *
 * Jobs run one at a time, report progress, and stop early when cancelled: the host writes the id of
 * the job to cancel into a shared Int32Array, which long loops check (a message could not arrive while
 * the thread is busy). Every failure is answered as an error message; nothing is thrown past a job.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { adapterDiffJob } from './adapter-diff-job';
import { Cancelled, type JobContext } from './job';
import { PanelJobSchema, type PanelJob, type PanelJobKind, type PanelJobOf, type PanelJobResults, type WorkerData, type WorkerReply, type WorkerRequest } from './protocol';
import { closeReplayEngine, replayJob } from './replay-job';

const JOBS: { [K in PanelJobKind]: (job: PanelJobOf<K>, ctx: JobContext) => PanelJobResults[K] | Promise<PanelJobResults[K]> } = {
  'adapter-diff': adapterDiffJob,
  replay: replayJob,
};

function runJob(job: PanelJob, ctx: JobContext): Promise<PanelJobResults[PanelJobKind]> {
  const handler = JOBS[job.type] as (job: PanelJob, ctx: JobContext) => PanelJobResults[PanelJobKind] | Promise<PanelJobResults[PanelJobKind]>;
  return Promise.resolve().then(() => handler(job, ctx));
}

function serve(): void {
  const port = parentPort!;
  const cancel = new Int32Array((workerData as WorkerData).cancel);
  let queue: Promise<void> = Promise.resolve();
  const reply = (m: WorkerReply) => port.postMessage(m);
  port.on('message', (msg: WorkerRequest) => {
    if (msg.type === 'shutdown') {
      queue = queue.then(async () => {
        await closeReplayEngine();
        port.close();
      });
      return;
    }
    queue = queue.then(() => run(msg));
  });

  async function run(msg: PanelJob & { id: number }): Promise<void> {
    const id = msg.id;
    const ctx: JobContext = {
      progress: (done, total) => reply({ type: 'progress', id, done, total }),
      checkCancelled: () => {
        if (Atomics.load(cancel, 0) === id) throw new Cancelled();
      },
    };
    try {
      ctx.checkCancelled();
      const job = PanelJobSchema.safeParse(msg);
      if (!job.success) throw new Error(`the panel worker received a malformed ${JSON.stringify(msg.type)} job`);
      reply({ type: 'result', id, result: await runJob(job.data, ctx) });
    } catch (e) {
      if (e instanceof Cancelled) reply({ type: 'error', id, message: 'cancelled', cancelled: true });
      else reply({ type: 'error', id, message: (e as Error).message || String(e) });
    }
  }
}

if (parentPort && (workerData as WorkerData | undefined)?.cancel) serve();
