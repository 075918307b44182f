/**
 * Asking the user before a run directory's judge endpoint is used (trainer/judges/endpoint-approval.ts):
 * Resume, Cross-Play, Evaluate and Replay build the judge from the run's own config.json, which
 * someone else may have written. An http judge there is used only when the user approved its URL with
 * its key variable: once, or always (remembered in the user's own settings — an application-scoped
 * setting, so no workspace can add to it).
 */
import * as vscode from 'vscode';
import { RunReader } from '../rundir';
import { isApproved, runJudgeEndpoint, type ApprovedJudge, type JudgeEndpoint } from '../trainer/judges/endpoint-approval';
import { approvalQuestion, parseSavedApprovals } from './judge-approval-text';
import { SETTINGS_SECTION } from './settings';

export const APPROVED_JUDGES_SETTING = 'approvedJudgeEndpoints';

/** The approvals in the user's own settings (a workspace value, were one there, is ignored). */
export function savedApprovals(): ApprovedJudge[] {
  const raw = vscode.workspace.getConfiguration(SETTINGS_SECTION).inspect<unknown>(APPROVED_JUDGES_SETTING)?.globalValue;
  return parseSavedApprovals(raw);
}

/**
 * The approvals a job on these runs needs, asking for each endpoint not yet approved; undefined when
 * the user declined (the job is then not started).
 */
export async function approveRunJudges(runDirs: readonly string[]): Promise<ApprovedJudge[] | undefined> {
  const saved = savedApprovals();
  const approved: ApprovedJudge[] = [];
  for (const dir of runDirs) {
    let endpoint: JudgeEndpoint | null = null;
    let name = dir;
    try {
      const reader = RunReader.open(dir);
      name = reader.info.id;
      endpoint = runJudgeEndpoint(reader.config());
    } catch {
      continue; // the job reports an unreadable run itself
    }
    if (!endpoint) continue;
    const wanted = { url: endpoint.url, apiKeyEnv: endpoint.apiKeyEnv };
    if (isApproved(endpoint, [...saved, ...approved])) {
      approved.push(wanted);
      continue;
    }
    const q = approvalQuestion(name, endpoint);
    const picked = await vscode.window.showWarningMessage(q.message, { modal: true, detail: q.detail }, 'Allow Once', 'Always Allow');
    if (!picked) return undefined;
    approved.push(wanted);
    if (picked === 'Always Allow') {
      const config = vscode.workspace.getConfiguration(SETTINGS_SECTION);
      const current = config.inspect<unknown>(APPROVED_JUDGES_SETTING)?.globalValue;
      const list = Array.isArray(current) ? current : [];
      await config.update(APPROVED_JUDGES_SETTING, [...list, { url: wanted.url, apiKeyEnv: wanted.apiKeyEnv }], vscode.ConfigurationTarget.Global);
    }
  }
  return approved;
}
