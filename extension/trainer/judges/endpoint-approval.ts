/**
 * Which judge endpoints a config may send exchanges (and a key) to. A config the user wrote and ran
 * is theirs; a run directory's config.json is someone else's (a colleague's run, a repository's), and
 * its `judge.url` and `judge.api_key_env` would otherwise post every exchange, with the value of any
 * environment variable as a bearer token, to any host. Such an endpoint is used only when the user
 * approved that URL with that key variable on this machine: in the editor through a confirmation that
 * shows the host (remembered in the user's own settings), on the command line with --allow-judge.
 */
import type { RunConfig } from '../run-config';
import { JudgeError } from './judge';

/** An endpoint the user allowed: the base URL, and the variable whose value may go with it (or none). */
export interface ApprovedJudge {
  url: string;
  apiKeyEnv: string | null;
}

/** Where a config came from: the user's own file, or a run directory (whose config.json is named). */
export type ConfigOrigin = { kind: 'user' } | { kind: 'run-directory'; file: string; approved: readonly ApprovedJudge[] };

export interface JudgeEndpoint {
  url: string;
  host: string;
  apiKeyEnv: string | null;
}

export class JudgeNotApprovedError extends JudgeError {
  constructor(
    readonly endpoint: JudgeEndpoint,
    readonly file: string,
  ) {
    super(
      `${file}: judge.url ${endpoint.url} (host ${endpoint.host})${endpoint.apiKeyEnv ? ` with the key in $${endpoint.apiKeyEnv}` : ''} comes from the run directory, not from you; ` +
        `it was not used. To send this run's exchanges${endpoint.apiKeyEnv ? ' and that key' : ''} there, approve it: --allow-judge ${formatApproval({ url: endpoint.url, apiKeyEnv: endpoint.apiKeyEnv })} on the command line, or "Allow" when the editor asks`,
    );
  }
}

/** The endpoint a config's judge talks to, or null for judges that run here. */
export function judgeEndpoint(config: Pick<RunConfig, 'judge'>): JudgeEndpoint | null {
  const j = config.judge;
  if (j.kind !== 'http') return null;
  return { url: normalizeUrl(j.url), host: new URL(j.url).host, apiKeyEnv: j.api_key_env ?? null };
}

/** Base URLs compare without a trailing slash, with the scheme and host lower-cased (URL does that). */
export function normalizeUrl(url: string): string {
  const u = new URL(url);
  u.hash = '';
  return u.toString().replace(/\/+$/, '');
}

export function isApproved(endpoint: JudgeEndpoint, approved: readonly ApprovedJudge[]): boolean {
  return approved.some((a) => {
    try {
      return normalizeUrl(a.url) === endpoint.url && (a.apiKeyEnv ?? null) === endpoint.apiKeyEnv;
    } catch {
      return false;
    }
  });
}

/** Throws JudgeNotApprovedError when a run directory's config names an endpoint the user has not approved. */
export function checkJudgeOrigin(config: Pick<RunConfig, 'judge'>, origin: ConfigOrigin): void {
  const endpoint = judgeEndpoint(config);
  if (!endpoint || origin.kind === 'user') return;
  if (!isApproved(endpoint, origin.approved)) throw new JudgeNotApprovedError(endpoint, origin.file);
}

/** `VAR=URL` (the key variable approved with the URL) or a plain `URL` (no key). */
export function parseApproval(text: string): ApprovedJudge {
  const m = /^([A-Za-z_][A-Za-z0-9_]*)=(.+)$/.exec(text.trim());
  const url = m ? m[2] : text.trim();
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new Error(`--allow-judge ${JSON.stringify(text)}: expected URL or VARIABLE=URL`);
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error(`--allow-judge ${JSON.stringify(text)}: only http and https endpoints`);
  if (u.username || u.password) throw new Error(`--allow-judge ${JSON.stringify(text)}: a URL with credentials is refused`);
  return { url: normalizeUrl(url), apiKeyEnv: m ? m[1] : null };
}

export function formatApproval(a: ApprovedJudge): string {
  return a.apiKeyEnv ? `${a.apiKeyEnv}=${a.url}` : a.url;
}

/**
 * The judge endpoint a run directory's config.json names, or null (no config, another judge, or a
 * config this version cannot read — the job then fails on its own with that error).
 */
export function runJudgeEndpoint(config: unknown): JudgeEndpoint | null {
  const judge = (config as { judge?: { kind?: unknown; url?: unknown; api_key_env?: unknown } } | null)?.judge;
  if (!judge || judge.kind !== 'http' || typeof judge.url !== 'string') return null;
  try {
    const u = new URL(judge.url);
    if (u.username || u.password) return null; // refused by the config's own check
    return { url: normalizeUrl(judge.url), host: u.host, apiKeyEnv: typeof judge.api_key_env === 'string' ? judge.api_key_env : null };
  } catch {
    return null;
  }
}
