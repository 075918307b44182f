/** What a run is doing, in words, and what Stop says it will redo. */
import { strict as assert } from 'node:assert';
import { describeProgress, stopQuestion, type RunProgressInput } from '../../extension/host/run-progress';

const base: RunProgressInput = { hasRunDir: true, started: true, resumed: false, roundsPlanned: 4, stepsPerRound: 8, measures: true, crossplay: true, roundsComplete: [], lastStep: null };

describe('host: run progress', () => {
  it('says what happens before step 1: starting, loading, measuring the initial adapters', () => {
    assert.equal(describeProgress({ ...base, hasRunDir: false }).text, 'starting absp…');
    assert.equal(describeProgress({ ...base, started: false }).text, 'loading the model and the judge…');
    const initial = describeProgress(base);
    assert.equal(initial.phase, 'measuring');
    assert.match(initial.text, /^measuring the initial adapters \(round 0: Nash gap, best-response attack success, capability\) before step 1…$/);
    assert.equal(describeProgress({ ...base, measures: false }).text, 'creating the adapters before step 1…');
  });

  it('counts rounds and steps while training, and says when a round is being measured', () => {
    const p = describeProgress({ ...base, roundsComplete: [0, 1], lastStep: { round: 2, step: 11, asr: 0.25 } });
    assert.deepEqual([p.phase, p.round, p.step, p.totalSteps, p.text], ['training', 2, 11, 32, 'round 2/4 · step 11/32 · asr 0.25']);
    assert.equal(p.fraction, 11 / 32);
    const m = describeProgress({ ...base, roundsComplete: [0, 1], lastStep: { round: 2, step: 16, asr: 0.25 } });
    assert.equal(m.phase, 'measuring');
    assert.match(m.text, /^round 2\/4 · measuring after step 16\/32 \(Nash gap/);
    assert.equal(describeProgress({ ...base, roundsComplete: [0, 1, 2], lastStep: { round: 2, step: 16, asr: 0.25 } }).text, 'round 3/4 · first step…');
    assert.match(describeProgress({ ...base, roundsComplete: [0, 1, 2, 3, 4], lastStep: { round: 4, step: 32, asr: null } }).text, /^cross-play/);
  });

  it('after a resume, names the round it replays and whose adapters it loads', () => {
    const r = describeProgress({ ...base, resumed: true, roundsComplete: [0, 1], lastStep: { round: 1, step: 8, asr: 0.5 } });
    assert.equal(r.phase, 'resuming');
    assert.equal(r.text, 'resuming: loading round 1’s adapters, then round 2/4 from its first step…');
  });

  it('asks before stopping, saying which steps will be redone', () => {
    const during = describeProgress({ ...base, roundsComplete: [0, 1, 2], lastStep: { round: 3, step: 21, asr: null } });
    const q = stopQuestion('absp · 1 Dec 23:32', during, 8, false);
    assert.equal(q.message, 'Stop absp · 1 Dec 23:32?');
    assert.equal(q.confirm, 'Stop After This Step');
    assert.match(q.detail, /finishes its current step/);
    assert.match(q.detail, /Round 3 is not complete: its 5 steps so far \(of 8\) are not kept\. Resume replays round 3 from its first step, from the adapters round 2 saved\./);
    const between = stopQuestion('x', describeProgress({ ...base, roundsComplete: [0, 1], lastStep: { round: 1, step: 8, asr: null } }), 8, false);
    assert.match(between.detail, /Round 2 is not complete: it has not finished a step yet\. Resume replays round 2 from its first step/);
    const initial = stopQuestion('x', describeProgress(base), 8, false);
    assert.match(initial.detail, /Nothing is trained yet/);
    const again = stopQuestion('x', during, 8, true);
    assert.equal(again.confirm, 'End Now');
    assert.match(again.detail, /already stopping.*kills the trainer.*interrupted.*complete rounds are kept/);
  });
});
