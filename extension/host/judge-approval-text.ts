/** The pure parts of judge-approval.ts: reading the saved approvals, and what the confirmation says. */
import { normalizeUrl, type ApprovedJudge, type JudgeEndpoint } from '../trainer/judges/endpoint-approval';
import { oneLine } from '../util/plain-text';

export function parseSavedApprovals(raw: unknown): ApprovedJudge[] {
  if (!Array.isArray(raw)) return [];
  const out: ApprovedJudge[] = [];
  for (const item of raw) {
    const url = (item as { url?: unknown })?.url;
    const key = (item as { apiKeyEnv?: unknown })?.apiKeyEnv;
    if (typeof url !== 'string') continue;
    try {
      out.push({ url: normalizeUrl(url), apiKeyEnv: typeof key === 'string' && key ? key : null });
    } catch {
      /* not a URL: ignored */
    }
  }
  return out;
}

/** What the confirmation says: the host first, then the URL and the key variable. */
export function approvalQuestion(runName: string, e: JudgeEndpoint): { message: string; detail: string } {
  return {
    message: `Send this run's exchanges to ${e.host}?`,
    detail:
      `The run "${oneLine(runName, 100)}" names its own judge: its config.json sends every exchange it judges to ${e.url}` +
      (e.apiKeyEnv ? `, with the value of your environment variable ${e.apiKeyEnv} as the API key.` : ', without a key.') +
      ' This setting comes from the run directory, not from you. Allow it only if you know and trust this endpoint.',
  };
}

