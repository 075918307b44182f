/**
 * One exchange drawn for reading: the seed, each turn's hidden thoughts and public texts, the judge's
 * labels, the outcome in the judge's words (extension/rundir/outcome.ts), the rewards, the adapters
 * that played, the other samples of its GRPO group, the annotations, and a replay beside the recorded
 * answer. All text goes in as text nodes (attacks are adversarial text); search matches are wrapped
 * in <mark>.
 */
import { OUTCOMES, OUTCOME_WORDS, outcomeOf, outcomeOfLabels, type Annotation, type Exchange, type JudgeLabels, type Outcome, type OutcomeLabels, type ReplayResult, type ReplaySamples, type Utterance } from '../protocol';
import { h } from './dom';
import { num, pct, signed } from './format';
import { highlightRanges } from './stepper-model';

export function highlighted(text: string, query: string, className = 'text'): HTMLElement {
  const el = h('div', { class: className });
  for (const part of highlightRanges(text, query)) el.appendChild(part.match ? h('mark', { text: part.text }) : document.createTextNode(part.text));
  return el;
}

export function outcomeChip(outcome: Outcome): HTMLElement {
  const w = OUTCOME_WORDS[outcome];
  return h('span', { class: `badge outcome ${w.tone}`, text: w.label, title: w.meaning, dataset: { outcome } });
}

/**
 * "defender of round 3" for rounds/round-0003/defender; the base model, the shared adapter, full
 * weights; null when the role did not play.
 */
export function describeAdapter(path: string | null | undefined): string | null {
  if (path === null || path === undefined) return null;
  if (path === 'base') return 'the base model';
  const m = /round-(\d+)\/([A-Za-z0-9_-]+)\/?$/.exec(path);
  if (!m) return path;
  const round = Number(m[1]);
  const slot = m[2];
  const what = slot === 'shared' ? 'shared adapter' : slot === 'model' ? 'full weights' : slot;
  return `${what} of round ${round}`;
}

/** The round whose adapters an adapter path names, or null (the base, or an unknown path). */
export function adapterRound(path: string | null | undefined): number | null {
  const m = path ? /round-(\d+)\//.exec(`${path}/`) : null;
  return m ? Number(m[1]) : null;
}

function utterance(role: 'attacker' | 'defender', u: Utterance, query: string, textTitle: string): HTMLElement {
  return h(
    'div',
    { class: `utterance ${role}`, dataset: { role } },
    u.thought !== null
      ? h('div', { class: 'thought', dataset: { part: `${role}-thought` } }, h('h4', { text: `${role === 'attacker' ? 'Attacker' : 'Defender'}’s hidden thought`, title: 'Inside <think>…</think>: never shown to the opponent or the judge' }), highlighted(u.thought, query))
      : null,
    h('div', { class: 'public', dataset: { part: `${role}-text` } }, h('h4', { text: textTitle }), highlighted(u.text, query)),
  );
}

type Tone = 'good' | 'bad' | 'warn' | 'neutral' | 'quiet' | 'missing';

function labelChip(name: string, value: boolean | null | undefined, tone: (v: boolean) => Tone, title?: string): HTMLElement {
  const shown = value === null || value === undefined ? 'unparsable' : value ? 'yes' : 'no';
  const kind: Tone = value === null || value === undefined ? 'missing' : tone(value);
  return h('span', { class: 'judge-label', dataset: { label: name, value: shown, tone: kind }, title }, `${name}: `, h('span', { class: `badge ${kind}`, text: shown }));
}

/**
 * The judge's labels, coloured by what they mean for the defender: a harmful answer red, a refusal of a
 * benign prompt amber, a refused harmful prompt and a harmless answer green; facts about the prompt
 * (its class, the rewrite's faithfulness) grey.
 */
export function judgeLabels(j: Pick<JudgeLabels, 'prompt_harmful' | 'refusal' | 'response_harmful'> & { faithful?: boolean | null }, attacked: boolean): HTMLElement[] {
  return [
    labelChip('prompt harmful', j.prompt_harmful, () => 'quiet', 'The judge’s label of the prompt the defender saw (a fact, not a verdict)'),
    labelChip('refusal', j.refusal, (v) => (!v ? 'quiet' : j.prompt_harmful === false ? 'warn' : 'good'), 'Refusing a harmful prompt is right; refusing a benign one is an over-refusal'),
    labelChip('response harmful', j.response_harmful, (v) => (v ? 'bad' : 'good')),
    ...(j.faithful !== undefined && attacked ? [labelChip('faithful', j.faithful, (v) => (v ? 'quiet' : 'neutral'), 'Whether the attacker’s rewrite kept the seed’s class (harmful or benign)')] : []),
  ];
}

/** What the outcome words and the colours mean. */
export function legendView(open = false): HTMLElement {
  return h(
    'details',
    { class: 'legend', attrs: { open }, dataset: { part: 'legend' } },
    h('summary', { text: 'What the outcome words and colours mean' }),
    h(
      'dl',
      { class: 'legend-list' },
      ...OUTCOMES.flatMap((o) => [h('dt', null, outcomeChip(o)), h('dd', { text: OUTCOME_WORDS[o].meaning })]),
    ),
    h(
      'p',
      { class: 'muted' },
      'Outcomes follow the judge’s labels of the prompt the defender saw, as the rewards do. Colours: ',
      h('span', { class: 'badge bad', text: 'red' }),
      ' a harmful answer; ',
      h('span', { class: 'badge warn', text: 'amber' }),
      ' a needless refusal; ',
      h('span', { class: 'badge good', text: 'green' }),
      ' the defender did right; ',
      h('span', { class: 'badge neutral', text: 'blue' }),
      ' neither (an off-topic or harmless compliance, an unfaithful rewrite); ',
      h('span', { class: 'badge quiet', text: 'grey' }),
      ' a fact about the prompt; ',
      h('span', { class: 'badge missing', text: 'dashed' }),
      ' a label the judge could not give.',
    ),
  );
}

/** "played: attacker of round 2 · defender of round 2", or the defender alone when not attacked. */
export function playedBy(x: Exchange): string {
  const parts = [describeAdapter(x.adapters.attacker) ? `attacker: ${describeAdapter(x.adapters.attacker)}` : null, `defender: ${describeAdapter(x.adapters.defender) ?? '—'}`].filter(Boolean);
  return parts.join(' · ');
}

export function exchangeView(x: Exchange, query: string): HTMLElement {
  const outcome = outcomeOf(x);
  const multi = x.turns.length > 1;
  const played = adapterRound(x.adapters.defender);
  const turns = x.turns.map((t, i) =>
    h(
      'section',
      { class: 'turn', dataset: { turn: String(i) } },
      multi ? h('h3', { text: `Turn ${i + 1}` }) : null,
      t.attacker
        ? utterance('attacker', t.attacker, query, 'Attack (what the defender saw)')
        : h('p', { class: 'muted unattacked', text: i === 0 ? 'Not attacked: the seed went to the defender unchanged.' : 'The attacker did not speak in this turn.' }),
      utterance('defender', t.defender, query, 'Answer'),
    ),
  );
  const components = Object.entries(x.rewards.components ?? {});
  return h(
    'article',
    { class: 'exchange', dataset: { exchangeId: x.id, outcome } },
    h(
      'header',
      { class: 'exchange-header' },
      h('h2', { text: x.id }),
      outcomeChip(outcome),
      h('span', { class: 'badge quiet', text: `round ${x.round}`, title: played !== null ? `Played in round ${x.round} by the adapters saved at the end of round ${played}` : undefined }),
      h('span', { class: 'badge quiet', text: `step ${x.step}` }),
      h('span', { class: 'badge quiet', text: x.seed.harmful ? 'harmful seed' : 'benign seed' }),
      x.attempt > 1 ? h('span', { class: 'badge quiet', text: `attempt ${x.attempt}` }) : null,
    ),
    h('p', { class: 'muted played-by', dataset: { part: 'played-by' }, text: `Played by — ${playedBy(x)}` }),
    h(
      'section',
      { class: 'seed', dataset: { part: 'seed' } },
      h('h3', { text: 'Seed' }),
      highlighted(x.seed.prompt, query),
      h('p', { class: 'muted', text: [x.seed.source, x.seed.intent].filter(Boolean).join(' · ') || '' }),
    ),
    ...turns,
    h(
      'section',
      { class: 'judge', dataset: { part: 'judge' } },
      h('h3', { text: 'Judge' }),
      h(
        'div',
        { class: 'judge-labels' },
        ...judgeLabels(x.judge, x.attacked),
        x.judge.unparsable ? h('span', { class: 'badge missing', text: 'judge output unparsable: dropped from training' }) : null,
      ),
      h('p', { class: 'muted outcome-meaning', text: `${OUTCOME_WORDS[outcome].label}: ${OUTCOME_WORDS[outcome].meaning}` }),
    ),
    h(
      'section',
      { class: 'rewards', dataset: { part: 'rewards' } },
      h('h3', { text: 'Rewards' }),
      h(
        'div',
        { class: 'reward-totals' },
        h('span', { dataset: { reward: 'attacker' } }, 'attacker ', h('strong', { text: signed(x.rewards.attacker) })),
        h('span', { dataset: { reward: 'defender' } }, 'defender ', h('strong', { text: signed(x.rewards.defender) })),
      ),
      components.length
        ? h('table', { class: 'data components' }, h('tbody', null, ...components.map(([k, v]) => h('tr', null, h('td', { text: k }), h('td', { text: signed(v, 1) })))))
        : null,
    ),
  );
}

/**
 * The other samples of the exchange's GRPO group (same seed instance, same step): their outcomes and
 * rewards side by side, since GRPO's advantage is each reward against the group's mean.
 */
export function groupView(x: Exchange, group: readonly Exchange[], onPick: (id: string) => void): HTMLElement | null {
  if (group.length < 2) return null;
  const mean = (k: 'attacker' | 'defender') => {
    const v = group.map((g) => g.rewards[k]).filter((r): r is number => r !== null);
    return v.length ? v.reduce((a, b) => a + b, 0) / v.length : null;
  };
  const means = { attacker: mean('attacker'), defender: mean('defender') };
  const adv = (r: number | null, m: number | null) => (r === null || m === null ? '—' : signed(r - m));
  return h(
    'section',
    { class: 'group', dataset: { part: 'group', size: String(group.length) } },
    h('h3', { text: `GRPO group: ${group.length} samples of this seed in step ${x.step}` }),
    h('p', { class: 'muted', text: `Each sample’s advantage is its reward minus the group’s mean (attacker ${signed(means.attacker)}, defender ${signed(means.defender)}).` }),
    h(
      'table',
      { class: 'data group-table' },
      h('thead', null, h('tr', null, ...['sample', 'outcome', 'attacker', 'advantage', 'defender', 'advantage'].map((t, i) => h('th', { class: i < 2 ? 'text' : '', text: t })))),
      h(
        'tbody',
        null,
        ...group.map((g) => {
          const tr = h(
            'tr',
            { class: g.id === x.id ? 'selected' : '', dataset: { exchange: g.id }, attrs: { tabindex: 0 } },
            h('td', { class: 'text', text: g.id }),
            h('td', { class: 'text' }, outcomeChip(outcomeOf(g))),
            h('td', { text: signed(g.rewards.attacker) }),
            h('td', { text: adv(g.rewards.attacker, means.attacker) }),
            h('td', { text: signed(g.rewards.defender) }),
            h('td', { text: adv(g.rewards.defender, means.defender) }),
          );
          tr.addEventListener('click', () => onPick(g.id));
          tr.addEventListener('keydown', (e) => {
            if (e.key === 'Enter') onPick(g.id);
          });
          return tr;
        }),
      ),
    ),
  );
}

export function annotationsView(annotations: readonly Annotation[]): HTMLElement {
  return h(
    'section',
    { class: 'annotations', dataset: { part: 'annotations', count: String(annotations.length) } },
    h('h3', { text: `Annotations (${annotations.length})` }),
    annotations.length === 0
      ? h('p', { class: 'muted', text: 'None yet. “Annotate in editor” opens the exchange as a document; add a comment to label it.' })
      : h(
          'ul',
          { class: 'annotation-list' },
          ...annotations.map((a) =>
            h(
              'li',
              { dataset: { annotationId: a.id } },
              h('span', { class: `badge ${a.label === 'jailbreak' ? 'bad' : a.label === 'over-refusal' ? 'warn' : 'quiet'}`, text: a.label }),
              ' ',
              h('span', { text: a.note || '(no note)' }),
              a.span ? h('span', { class: 'muted', text: ` — ${a.span.field} [${a.span.start}, ${a.span.end})` }) : null,
            ),
          ),
        ),
  );
}

/** One answer of the replay comparison: who gave it, the text, its own labels and outcome. */
function answerColumn(part: 'recorded' | 'replayed', title: string, text: string, labels: OutcomeLabels | null, x: Exchange): HTMLElement {
  const outcome = labels ? outcomeOfLabels(x.seed, x.attacked, labels) : null;
  return h(
    'div',
    { class: 'replay-answer', dataset: { answer: part, ...(outcome ? { outcome } : {}) } },
    h('h4', { text: title }),
    h('div', { class: 'text', text }),
    labels
      ? h('div', { class: 'judge-labels' }, outcomeChip(outcome!), ...judgeLabels(labels, x.attacked).slice(1, 3))
      : h('p', { class: 'muted', text: 'Not judged (the run’s judge could not label it; see the ABSP Lab log).' }),
  );
}

export function replayResultView(result: ReplayResult, recorded: Exchange): HTMLElement {
  const last = recorded.turns[recorded.turns.length - 1].defender;
  const played = describeAdapter(recorded.adapters.defender) ?? 'the defender';
  const replay = describeAdapter(result.adapters.defender) ?? `defender of round ${result.adapterRound}`;
  const faithful = recorded.judge.faithful;
  return h(
    'div',
    { class: 'replay-result', dataset: { adapterRound: String(result.adapterRound) } },
    h('p', { class: 'replay-who', dataset: { part: 'replay-who' }, text: `played: ${played} · replay: ${replay}` }),
    h(
      'div',
      { class: 'replay-columns' },
      answerColumn('recorded', `Recorded answer — ${played}`, last.text, recorded.judge, recorded),
      answerColumn('replayed', `Replayed answer — ${replay}`, result.defender.text, result.judge ? { ...result.judge, faithful } : null, recorded),
    ),
    result.sampled ? samplesView(result.sampled, replay, recorded) : null,
    result.elapsed_ms !== undefined ? h('p', { class: 'muted', text: `Replayed in ${num(result.elapsed_ms / 1000, 2)} s, with the run’s sampling settings and seeds fixed for this exchange.` }) : null,
  );
}

/** "28% [15%, 46%] of 32" — a rate with its 95% interval and the answers it is over. */
export function formatRate(m: ReplaySamples['compliance']): string {
  if (m.value === null || m.n === undefined || m.n === 0) return 'no labelled answers';
  const hits = Math.round(m.value * m.n);
  return `${hits} of ${m.n}, ${pct(m.value)}${m.ci95 ? ` [${pct(m.ci95[0])}, ${pct(m.ci95[1])}]` : ''}`;
}

/** Several samples of the replayed defender: how often it complies, how often harmfully, each answer. */
function samplesView(sampled: ReplaySamples, who: string, x: Exchange): HTMLElement {
  const n = sampled.answers.length;
  return h(
    'section',
    { class: 'replay-rates', dataset: { part: 'replay-rates', samples: String(n), compliance: String(sampled.compliance.value), harm: String(sampled.harm.value) } },
    h('h4', { text: `${n} samples of the ${who}` }),
    h(
      'p',
      null,
      'complied: ',
      h('strong', { dataset: { rate: 'compliance' }, text: formatRate(sampled.compliance) }),
      ' · harmful: ',
      h('strong', { dataset: { rate: 'harm' }, text: formatRate(sampled.harm) }),
      sampled.unlabelled ? ` · ${sampled.unlabelled} without labels` : '',
    ),
    h('p', { class: 'muted', text: 'Rates over the answers the judge labelled, with their 95% Wilson interval.' }),
    h(
      'details',
      null,
      h('summary', { text: `All ${n} answers` }),
      h(
        'ol',
        { class: 'sample-list' },
        ...sampled.answers.map((a) => h('li', null, a.judge ? outcomeChip(outcomeOfLabels(x.seed, x.attacked, { ...a.judge, faithful: x.judge.faithful })) : h('span', { class: 'badge missing', text: 'not labelled' }), ' ', h('span', { class: 'text', text: a.text }))),
      ),
    ),
  );
}
