/**
 * One exchange drawn for reading: the seed, each turn's hidden thoughts and public texts, the judge's
 * labels, the rewards, the annotations. All text goes in as text nodes (attacks are adversarial
 * text); search matches are wrapped in <mark>.
 */
import { outcomeOf, type Annotation, type Exchange, type ReplayResult, type Utterance } from '../protocol';
import { h } from './dom';
import { num, signed } from './format';
import { OUTCOME_LABELS, highlightRanges } from './stepper-model';

export function highlighted(text: string, query: string, className = 'text'): HTMLElement {
  const el = h('div', { class: className });
  for (const part of highlightRanges(text, query)) el.appendChild(part.match ? h('mark', { text: part.text }) : document.createTextNode(part.text));
  return el;
}

const OUTCOME_BADGE: Record<string, string> = {
  'attack-success': 'bad',
  'attack-refused': 'good',
  'over-refusal': 'warn',
  'benign-answered': 'good',
  unparsable: 'quiet',
};

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

function label(name: string, value: boolean | null | undefined, badWhen: boolean | null): HTMLElement {
  const shown = value === null || value === undefined ? 'unparsable' : value ? 'yes' : 'no';
  const kind = value === null || value === undefined ? 'quiet' : badWhen !== null && value === badWhen ? 'bad' : 'good';
  return h('span', { class: 'judge-label', dataset: { label: name, value: shown } }, `${name}: `, h('span', { class: `badge ${kind}`, text: shown }));
}

export function exchangeView(x: Exchange, query: string): HTMLElement {
  const outcome = outcomeOf(x);
  const multi = x.turns.length > 1;
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
      h('span', { class: `badge ${OUTCOME_BADGE[outcome]}`, text: OUTCOME_LABELS[outcome], dataset: { outcome } }),
      h('span', { class: 'badge quiet', text: `round ${x.round}` }),
      h('span', { class: 'badge quiet', text: `step ${x.step}` }),
      h('span', { class: 'badge quiet', text: x.seed.harmful ? 'harmful seed' : 'benign seed' }),
      x.attempt > 1 ? h('span', { class: 'badge quiet', text: `attempt ${x.attempt}` }) : null,
    ),
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
        label('prompt harmful', x.judge.prompt_harmful, null),
        label('refusal', x.judge.refusal, x.seed.harmful ? false : true),
        label('response harmful', x.judge.response_harmful, true),
        x.judge.faithful !== undefined && x.attacked ? label('faithful', x.judge.faithful, false) : null,
        x.judge.unparsable ? h('span', { class: 'badge bad', text: 'judge output unparsable: dropped from training' }) : null,
      ),
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
      h('p', { class: 'muted', text: `Adapters: ${Object.entries(x.adapters).map(([k, v]) => `${k} ${v ?? '—'}`).join(', ')}` }),
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

export function replayResultView(result: ReplayResult, recorded: Exchange): HTMLElement {
  const last = recorded.turns[recorded.turns.length - 1].defender;
  const judge = result.judge;
  return h(
    'div',
    { class: 'replay-result', dataset: { adapterRound: String(result.adapterRound) } },
    h(
      'div',
      { class: 'replay-columns' },
      h('div', null, h('h4', { text: `Recorded answer (round ${recorded.round} play)` }), h('div', { class: 'text', text: last.text })),
      h('div', null, h('h4', { text: `Round ${result.adapterRound} defender’s answer` }), h('div', { class: 'text', text: result.defender.text })),
    ),
    judge
      ? h(
          'div',
          { class: 'judge-labels' },
          label('refusal', judge.refusal, recorded.seed.harmful ? false : true),
          label('response harmful', judge.response_harmful, true),
        )
      : h('p', { class: 'muted', text: 'Not judged.' }),
    result.elapsed_ms !== undefined ? h('p', { class: 'muted', text: `Replayed in ${num(result.elapsed_ms / 1000, 2)} s.` }) : null,
  );
}
