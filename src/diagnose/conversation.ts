import { creatioClientFor, type CreatioClient } from '../creatio/client';
import { ApiError } from '../errors';
import { opencxMapping } from '../settings/schema';
import type { Store, StoredOrg } from '../store';
import type { Conversations } from '../workflow-client/client';
import { conversationWorkflowId } from '../workflows/contract';
import { findingsOf, refusedEventFindings, type Finding, type Session } from './findings';
import { checkCreatio } from './live';
import { readSession } from './session';

const MAX_CACHED_CLIENTS = 100;

export interface ConversationDiagnosis {
  sessionId: string | null;
  caseId: string | null;
  workflowId: string | null;
  /** Empty: nothing is wrong. */
  findings: Finding[];
}

export interface DiagnoseDeps {
  store: Pick<Store, 'getOrg' | 'rejectedEventSummary' | 'findSessionByCase' | 'creatioWebhookCalls'>;
  /** The Temporal client of the conversations; throws when this instance runs none. */
  conversations: () => Conversations;
  creatioRequestTimeoutMs: number;
  /** Where OpenCX sends its webhooks: the bridge's public address. */
  publicBaseUrl: string;
  /** How to replay refused OpenCX events, in words (the API's own routes). */
  replayFix: (orgId: string) => string;
}

/**
 * Everything the diagnosis of one conversation reads: the organization's settings, its refused
 * OpenCX events, the conversation (its workflow's state and Temporal's describe), the calls of the
 * Creatio business processes and what Creatio answers now; the troubleshooting page
 * (findings.ts) walked over them. Given a caseId, the conversation the bridge created it for.
 */
export class ConversationDiagnoser {
  /**
   * One client per organization while its settings stay the same: it keeps its token and the
   * $metadata the reply filter needs, which is large on a real instance and read once, not per click.
   */
  private readonly clients = new Map<string, { version: string; client: CreatioClient }>();

  constructor(private readonly deps: DiagnoseDeps) {}

  /** The diagnosis, or undefined when the organization has no settings. */
  async diagnose(
    orgId: string,
    q: { sessionId?: string; caseId?: string },
  ): Promise<ConversationDiagnosis | undefined> {
    const { store } = this.deps;
    const org = await store.getOrg(orgId);
    if (!org) return undefined;
    // Refused OpenCX events concern the organization, whichever conversation is asked about.
    const refused = refusedEventFindings(
      orgId,
      await store.rejectedEventSummary(orgId),
      Date.now(),
      this.deps.replayFix(orgId),
    );
    const answer = (sessionId: string | null, caseId: string | null, findings: Finding[]) => ({
      sessionId,
      caseId,
      workflowId: sessionId && conversationWorkflowId(orgId, sessionId),
      findings: [...findings, ...refused],
    });

    let sessionId = q.sessionId;
    if (!sessionId) {
      const mapped = await store.findSessionByCase(orgId, q.caseId!);
      if (!mapped) {
        return answer(null, q.caseId!, [
          {
            code: 'case_not_created_by_bridge',
            scenario: 'case_closure_not_syncing',
            message: `Case ${q.caseId} has no matching OpenCX session: it was not created by the bridge for organization ${orgId}`,
            fix: 'Only cases the bridge created sync back; closing other cases changes nothing in OpenCX.',
          },
        ]);
      }
      sessionId = mapped.sessionId;
    }
    let session: Session;
    try {
      session = await readSession(this.deps.conversations(), orgId, sessionId);
    } catch (err) {
      if (!(err instanceof ApiError) || err.code !== 'session_not_found') throw err;
      return answer(sessionId, null, [
        {
          code: 'session_unknown',
          scenario: 'cases_not_created',
          message: `The bridge has received no event of conversation ${sessionId} for organization ${orgId}`,
          fix: `Check that OpenCX sends its webhooks to ${this.deps.publicBaseUrl}/webhooks/opencx with organization_id "${org.settings.opencx.organizationId ?? orgId}" (${opencxMapping(orgId, org.settings)}) and this organization's signing secret (a bad signature, or an organization_id no organization receives, is answered 401; GET /v1/opencx-events/unmapped lists those ids).`,
        },
      ]);
    }
    const [live, webhookCalls] = await Promise.all([
      checkCreatio(this.clientFor(orgId, org), org.settings, session.caseId),
      store.creatioWebhookCalls(orgId),
    ]);
    return answer(
      sessionId,
      session.caseId,
      findingsOf({ orgId, settings: org.settings, session, webhookCalls, live, now: Date.now() }),
    );
  }

  private clientFor(orgId: string, org: StoredOrg): CreatioClient {
    const version = org.updatedAt.toISOString();
    const hit = this.clients.get(orgId);
    if (hit?.version === version) return hit.client;
    const client = creatioClientFor(org.settings, { timeoutMs: this.deps.creatioRequestTimeoutMs });
    this.clients.delete(orgId);
    this.clients.set(orgId, { version, client });
    // The least recently made go first; an operator looks at a few organizations at a time.
    if (this.clients.size > MAX_CACHED_CLIENTS) this.clients.delete(this.clients.keys().next().value!);
    return client;
  }
}
