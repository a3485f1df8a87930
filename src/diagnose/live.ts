import type { CreatioClient } from '../creatio/client';
import { CreatioError } from '../creatio/errors';
import { replyFilter, type OrgContext } from '../activities/agent-replies';
import type { OrgSettings } from '../settings/schema';

/** What Creatio says right now, with the organization's stored settings. */
export interface LiveCreatio {
  /** The credentials get a token and an OData read; else the kind of failure. */
  access: 'ok' | { kind: 'credentials' | 'unreachable' | 'other'; error: string };
  /** The conversation's case: readable, gone, or refused to this OAuth application. */
  case?: 'ok' | 'not_found' | { forbidden: string } | { error: string };
  /** The case's current status (when the case could be read). */
  caseStatus?: { name: string; isFinal: boolean; isResolved: boolean };
  /** Activities on the case that are agent replies by the organization's filter (up to 50). */
  agentReplies?: number;
}

const CREDENTIAL_KINDS = new Set(['bad_credentials', 'grant_type', 'unauthorized']);
const UNREACHABLE_KINDS = new Set(['unreachable', 'transient', 'rate_limited', 'address_refused']);

function accessFailure(err: unknown): Exclude<LiveCreatio['access'], 'ok'> {
  const error = err instanceof Error ? err.message : String(err);
  if (err instanceof CreatioError && CREDENTIAL_KINDS.has(err.kind)) return { kind: 'credentials', error };
  if (err instanceof CreatioError && UNREACHABLE_KINDS.has(err.kind)) return { kind: 'unreachable', error };
  return { kind: 'other', error };
}

/**
 * Asks Creatio what only it knows: whether the stored credentials still work, and, for one case,
 * whether this application may read it and what its status is. Reads only; nothing is written.
 * `client` is made from the organization's settings (it keeps its token and $metadata).
 */
export async function checkCreatio(
  client: CreatioClient,
  settings: OrgSettings,
  caseId: string | null,
): Promise<LiveCreatio> {
  try {
    await client.token();
    // A token may be cached: one OData read proves it is still honoured.
    await client.list('CaseStatus', { select: ['Id'], top: 1 });
  } catch (err) {
    return { access: accessFailure(err) };
  }
  if (!caseId) return { access: 'ok' };
  try {
    const c = await client.getCase<{ Id: string; StatusId: string }>(caseId, ['Id', 'StatusId']);
    if (!c) return { access: 'ok', case: 'not_found' };
    const status = await client.getCaseStatus(c.StatusId);
    return {
      access: 'ok',
      case: 'ok',
      agentReplies: await countAgentReplies(settings, client, caseId),
      ...(status && {
        caseStatus: { name: status.Name, isFinal: status.IsFinal, isResolved: status.IsResolved },
      }),
    };
  } catch (err) {
    if (err instanceof CreatioError && err.kind === 'not_found') return { access: 'ok', case: 'not_found' };
    if (err instanceof CreatioError && err.kind === 'forbidden') {
      return { access: 'ok', case: { forbidden: err.message } };
    }
    return { access: 'ok', case: { error: err instanceof Error ? err.message : String(err) } };
  }
}

/** Agent replies on the case, read with the same filter as the workflow's reply reads. */
async function countAgentReplies(
  settings: OrgSettings,
  client: CreatioClient,
  caseId: string,
): Promise<number> {
  const o: OrgContext = {
    settings,
    client,
    lookup: async (set, name) => (await client.findByName(set, name))[0]?.Id,
  };
  const meta = await client.metadata();
  const filter = await replyFilter(o, caseId, null, meta.get('Activity')?.properties);
  if (!filter) return 0;
  return (await client.list('Activity', { select: ['Id'], filter, top: 50 })).length;
}
