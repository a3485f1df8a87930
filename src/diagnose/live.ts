import type { CreatioClient } from '../creatio/client';
import { CreatioError } from '../creatio/errors';
import { schemaGaps, type SchemaGap } from '../creatio/schema-check';
import { caseContactEmail, replyQuery, type OrgContext } from '../activities/agent-replies';
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
  /** The case contact's email address (null: none), where Creatio's Activity has recipients. */
  contactEmail?: string | null;
  /** Entity sets and columns the bridge needs that this Creatio lacks (src/creatio/model.ts). */
  schema?: SchemaGap[];
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
  const schema = await client
    .metadata()
    .then((meta) => schemaGaps(meta).filter((g) => g.required))
    .catch(() => undefined);
  const base = { access: 'ok' as const, ...(schema && schema.length > 0 && { schema }) };
  if (!caseId) return base;
  try {
    const c = await client.getCase<{ Id: string; StatusId: string }>(caseId, ['Id', 'StatusId']);
    if (!c) return { ...base, case: 'not_found' };
    const status = await client.getCaseStatus(c.StatusId);
    return {
      ...base,
      case: 'ok',
      agentReplies: await countAgentReplies(settings, client, caseId).catch(() => undefined),
      contactEmail: await caseContactEmail(client, caseId).catch(() => undefined),
      ...(status && {
        caseStatus: { name: status.Name, isFinal: status.IsFinal, isResolved: status.IsResolved },
      }),
    };
  } catch (err) {
    if (err instanceof CreatioError && err.kind === 'not_found') return { ...base, case: 'not_found' };
    if (err instanceof CreatioError && err.kind === 'forbidden') {
      return { ...base, case: { forbidden: err.message } };
    }
    return { ...base, case: { error: err instanceof Error ? err.message : String(err) } };
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
  const activity = meta.get('Activity')?.properties;
  const email = activity?.has('Recepient') ? await caseContactEmail(client, caseId) : null;
  const query = await replyQuery(o, caseId, null, activity, email);
  if (!query) return 0;
  const rows = await client.list('Activity', { select: query.select, filter: query.filter, top: 50 });
  return rows.filter((r) => query.reject(r) === null).length;
}
