/**
 * The product's troubleshooting page, walked for one conversation: each scenario checked against
 * what the bridge recorded (the conversation's state, the Creatio webhook calls of the
 * organization) and what Creatio answers now (LiveCreatio). Pure: the inputs are gathered by
 * diagnose() in index.ts.
 */
import type { ConversationState } from '../workflows/contract';
import type { OrgSettings } from '../settings/schema';
import type { RejectedEventGroup, WebhookCalls } from '../store';
import type { LiveCreatio } from './live';
import { describeGap } from '../creatio/schema-check';

export const SCENARIOS = [
  'invalid_credentials',
  'cases_not_created',
  'agent_replies_not_reaching_customers',
  'case_closure_not_syncing',
  'ai_fields_blank',
  'webhook_errors',
  'creatio_downtime',
  'none',
] as const;
export type Scenario = (typeof SCENARIOS)[number];

export interface Finding {
  code: string;
  scenario: Scenario;
  message: string;
  fix: string;
}

/** The conversation's state as GET …/sessions/:id answers it. */
export type Session = ConversationState & {
  workflow: { id: string; runId: string; status: string; taskQueue: string };
  retrying: { activity: string | null; attempt: number | null; lastFailure: string | null }[];
};

export interface DiagnoseInputs {
  orgId: string;
  settings: OrgSettings;
  session: Session;
  webhookCalls: WebhookCalls[];
  live: LiveCreatio;
  now: number;
}

/** Webhook errors older than this are history, not a finding. */
export const RECENT_MS = 7 * 24 * 3600 * 1000;

const CREDENTIAL_ERRORS = new Set([
  'CreatioBadCredentialsError',
  'CreatioGrantTypeError',
  'CreatioUnauthorizedError',
]);
const WEBHOOK_URL_FIX = 'Settings → Integrations → Creatio (or GET /v1/orgs/:orgId/integrations/creatio)';

const CREDENTIALS_FIX =
  'Check the Instance URL (no trailing slash), regenerate the client secret in Creatio’s OAuth application (Client Credentials grant), run Test & Save, then resume the conversation.';

function credentials(i: DiagnoseInputs): Finding[] {
  const err = i.session.lastError;
  if (i.live.access !== 'ok' && i.live.access.kind === 'credentials') {
    return [
      {
        code: 'credentials_rejected',
        scenario: 'invalid_credentials',
        message: `Creatio refuses the stored credentials now: ${i.live.access.error}`,
        fix: CREDENTIALS_FIX,
      },
    ];
  }
  if (err && CREDENTIAL_ERRORS.has(err.type)) {
    return [
      {
        code: 'credentials_rejected',
        scenario: 'invalid_credentials',
        message: `Creatio refused the credentials at "${err.step}": ${err.message}`,
        fix: CREDENTIALS_FIX,
      },
    ];
  }
  return [];
}

function downtime(i: DiagnoseInputs): Finding[] {
  const out: Finding[] = [];
  const err = i.session.lastError;
  if (i.live.access !== 'ok' && i.live.access.kind !== 'credentials') {
    out.push({
      code: 'creatio_unreachable',
      scenario: 'creatio_downtime',
      message: `Creatio does not answer right now: ${i.live.access.error}`,
      fix: 'Nothing is lost: steps wait and retry, and parked ones go on after a resume. Check Creatio’s status and the Instance URL.',
    });
  }
  if (
    err?.parked &&
    !CREDENTIAL_ERRORS.has(err.type) &&
    !SCHEMA_ERRORS.has(err.type) &&
    err.type !== 'CreatioForbiddenError' &&
    err.type !== 'OpenCXReplyUnverifiableError'
  ) {
    out.push({
      code: 'step_parked',
      scenario: 'creatio_downtime',
      message: `The step "${err.step}" is parked after ${err.type}: ${err.message}`,
      fix: 'Fix the cause, then resume the step (or wait for the periodic retry); skip it if it can never succeed.',
    });
  }
  const r = i.session.retrying[0];
  if (r) {
    out.push({
      code: 'creatio_retrying',
      scenario: 'creatio_downtime',
      message: `${r.activity ?? 'A step'} is being retried (attempt ${r.attempt ?? '?'}): ${r.lastFailure ?? ''}`,
      fix: 'Nothing is lost: the step goes on once Creatio answers again. Check Creatio’s status if this lasts.',
    });
  }
  return out;
}

/** A reply whose send may have gone through, which OpenCX cannot confirm or deny. */
function unverifiableReply(i: DiagnoseInputs): Finding[] {
  const err = i.session.lastError;
  if (err?.type !== 'OpenCXReplyUnverifiableError') return [];
  return [
    {
      code: 'reply_unverifiable',
      scenario: 'agent_replies_not_reaching_customers',
      message: `The step "${err.step}" stopped: ${err.message}`,
      fix: 'Look at the conversation in OpenCX: if the customer has the reply, skip the step (POST …/skip); if not, resume it (POST …/resume). Keeping custom_data on the session, or its history readable, lets the bridge tell by itself.',
    },
  ];
}

const SCHEMA_ERRORS = new Set(['CreatioSchemaError', 'CreatioRouteNotFoundError']);

const SCHEMA_FIX =
  'The bridge asked Creatio for an entity set or column this Creatio does not have (customized, older, or a module missing). Run Test & Save: it names every missing name with the closest real one. Restore it in Creatio (or correct the mapping), then resume the step.';

/** The scenario a step belongs to, by the step's name (src/workflows/conversation/). */
function scenarioOfStep(step: string): Scenario {
  if (/agent repl/.test(step)) return 'agent_replies_not_reaching_customers';
  if (/status|resolve|reopen|OpenCX session/.test(step)) return 'case_closure_not_syncing';
  if (/AI field/.test(step)) return 'ai_fields_blank';
  return 'cases_not_created';
}

/**
 * Requests this Creatio answers "no such entity set / column": retrying cannot fix them, so the step
 * parked at once. Also what the live $metadata says is missing now.
 */
function schema(i: DiagnoseInputs): Finding[] {
  const out: Finding[] = [];
  const err = i.session.lastError;
  if (err && SCHEMA_ERRORS.has(err.type)) {
    out.push({
      code: 'creatio_schema_missing',
      scenario: scenarioOfStep(err.step),
      message: `The step "${err.step}" stopped${err.parked ? ' and is parked' : ''}: ${err.message}`,
      fix: SCHEMA_FIX,
    });
  }
  for (const g of i.live.schema ?? []) {
    out.push({
      code: 'creatio_schema_missing',
      scenario: g.entity === 'Case' ? 'cases_not_created' : 'agent_replies_not_reaching_customers',
      message: describeGap(g),
      fix: SCHEMA_FIX,
    });
  }
  return out;
}

function cases(i: DiagnoseInputs): Finding[] {
  const { session: s, live } = i;
  const out: Finding[] = [];
  const forbidden =
    typeof live.case === 'object' && 'forbidden' in live.case
      ? live.case.forbidden
      : s.lastError?.type === 'CreatioForbiddenError'
        ? `${s.lastError.step}: ${s.lastError.message}`
        : undefined;
  if (forbidden) {
    out.push({
      code: 'case_permission_denied',
      scenario: 'cases_not_created',
      message: `The OAuth application may not work with Case records: ${forbidden}`,
      fix: 'In Creatio, give the OAuth application’s user read, create and edit permissions on Case (and Activity), run Test & Save, then resume.',
    });
  }
  if (s.caseId && live.case === 'not_found') {
    out.push({
      code: 'case_missing_in_creatio',
      scenario: 'cases_not_created',
      message: `Creatio does not show the case ${s.caseNumber ?? ''} (${s.caseId}) that the bridge created: it was deleted, or the OAuth application may no longer read Case records`,
      fix: 'If it was deleted, a customer message after the close gets a new case (resume or skip parked steps of an open conversation). Otherwise give the OAuth application’s user read permission on Case again.',
    });
  }
  if (!s.caseId && s.mode === 'handoff_only' && !s.handedOffAt) {
    out.push(
      s.status === 'closed'
        ? {
            code: 'no_case_handoff_only',
            scenario: 'cases_not_created',
            message:
              'Create case only on handoff is enabled and the AI resolved the conversation: no case, by design',
            fix: 'Turn off "Create case only on handoff" to get a case for every conversation, or trigger a handoff to test.',
          }
        : {
            code: 'no_case_until_handoff',
            scenario: 'cases_not_created',
            message:
              'Create case only on handoff is enabled and the AI has not handed off yet: the case comes at handoff',
            fix: 'Wait for the handoff, or trigger one from the Inbox to test.',
          },
    );
  }
  return out;
}

const recent = (i: DiagnoseInputs, outcome: WebhookCalls['outcome']) =>
  i.webhookCalls.find((c) => c.outcome === outcome && i.now - Date.parse(c.lastAt) < RECENT_MS);
const ever = (i: DiagnoseInputs, outcome: WebhookCalls['outcome']) =>
  i.webhookCalls.some((c) => c.outcome === outcome);

/** Email-only replies on a case whose contact has no address: nothing the agents write is sent. */
function replyRecipient(i: DiagnoseInputs): Finding[] {
  const types = i.settings.agentReplyFilter.activityTypes;
  if (i.live.contactEmail !== null || types.some((t) => t !== 'Email')) return [];
  return [
    {
      code: 'agent_replies_need_contact_email',
      scenario: 'agent_replies_not_reaching_customers',
      message:
        "The case's contact has no email address (a chat, SMS or WhatsApp customer), and only Emails addressed To the contact are sent as replies: nothing agents write on this case reaches the customer",
      fix: 'Add the activity type (and category) your agents use to answer chat customers to the agent-reply filter, e.g. Task with the category "Reply to customer" (Settings → Integrations → Creatio), and to the agent-reply process filter in Creatio; or give the contact an email address.',
    },
  ];
}

function agentReplies(i: DiagnoseInputs): Finding[] {
  const { session: s } = i;
  const reply = s.processes?.agentReply;
  if (reply?.finding) {
    return [
      {
        code: 'agent_reply_process_not_calling',
        scenario: 'agent_replies_not_reaching_customers',
        message: `${reply.finding} (${reply.missed} repl${reply.missed === 1 ? 'y' : 'ies'} found only by the timer, last at ${reply.lastMissedAt}; process calls for this case: ${reply.calls})`,
        fix: 'In Creatio’s Process Library check that the agent-reply process is Active, that its webhook URL is the one shown in Settings → Integrations → Creatio, and that its Activity filter matches how agents reply.',
      },
    ];
  }
  const replies = i.live.agentReplies ?? 0;
  if (replies === 0 || (reply?.calls ?? 0) > 0) return [];
  const slow =
    'replies reach the customer only when the bridge’s own timer finds them (every few minutes, less often while quiet)';
  if (!ever(i, 'agent_reply')) {
    return [
      {
        code: 'agent_reply_process_never_called',
        scenario: 'agent_replies_not_reaching_customers',
        message: `The case has ${replies} agent repl${replies === 1 ? 'y' : 'ies'}, and the agent-reply business process has never called the bridge for organization ${i.orgId}: ${slow}`,
        fix: `Create or activate the agent-reply process in Creatio’s Process Library, calling the webhook URL from ${WEBHOOK_URL_FIX} with {"event_type": "new_activity", "caseId": "[#Case.Id#]"}.`,
      },
    ];
  }
  return [
    {
      code: 'agent_reply_process_not_called_for_case',
      scenario: 'agent_replies_not_reaching_customers',
      message: `The case has ${replies} agent repl${replies === 1 ? 'y' : 'ies'} but the agent-reply process has not called the bridge for this case (it has for other cases of the organization): ${slow}`,
      fix: 'Check the process’s Activity filter in Creatio against how these replies were added (activity type, direction, category), and its execution log for this case.',
    },
  ];
}

function closure(i: DiagnoseInputs): Finding[] {
  const { session: s, settings, live } = i;
  const out: Finding[] = [];
  const evidence = s.processes?.closure;
  if (evidence?.finding) {
    out.push({
      code: 'closure_process_not_calling',
      scenario: 'case_closure_not_syncing',
      message: `${evidence.finding} (process calls for this case: ${evidence.calls})`,
      fix: 'Check that the case-closure process is Active, calls the current webhook URL, and that its status filter matches your closure status exactly.',
    });
  }
  const status = live.caseStatus;
  const names = settings.closureStatusNames;
  if (status && (status.isFinal || status.isResolved) && !names.includes(status.name)) {
    const near = names.find((n) => n.toLowerCase() === status.name.toLowerCase());
    out.push({
      code: 'closure_status_name_mismatch',
      scenario: 'case_closure_not_syncing',
      message: `The case is in the final status "${status.name}", which is not one of the closure status names (${names.map((n) => `"${n}"`).join(', ')})${near ? `: "${near}" differs only in letter case` : ''}`,
      fix: `Add "${status.name}" to the closure status names exactly as Creatio spells it (names are case-sensitive), save, and match the closure process’s status filter to it.`,
    });
  } else {
    const note = [...s.notes].reverse().find((n) => n.message.includes('(names are case-sensitive)'));
    if (note && s.status === 'open') {
      out.push({
        code: 'closure_status_name_mismatch',
        scenario: 'case_closure_not_syncing',
        message: note.message,
        fix: 'Make the closure status names match the Creatio status name exactly (case-sensitive) and save.',
      });
    }
  }
  if (status && names.includes(status.name) && s.status === 'open' && !ever(i, 'closure')) {
    out.push({
      code: 'closure_process_never_called',
      scenario: 'case_closure_not_syncing',
      message: `The case is "${status.name}" in Creatio but the case-closure process has never called the bridge for organization ${i.orgId}: the session closes only when the bridge’s own timer finds it`,
      fix: `Create or activate the case-closure process in Creatio’s Process Library, calling the webhook URL from ${WEBHOOK_URL_FIX} with {"event_type": "case_closed", "caseId": "[#Case.Id#]"}.`,
    });
  }
  return out;
}

const AI_FIXES: Record<string, string> = {
  mapping_disabled: 'Enable the mapping in Settings → Integrations → Creatio.',
  column_missing: 'Use the exact Creatio column name (case-sensitive) of the Case object.',
  llm_not_configured: 'Set LLM_BASE_URL (and LLM_API_KEY, LLM_MODEL) for the bridge’s workers.',
  llm_error:
    'Check the LLM endpoint (LLM_BASE_URL, its key and status); the fields are evaluated again at the next handoff.',
};

function aiFields(i: DiagnoseInputs): Finding[] {
  const state = i.session.aiFields;
  const out: Finding[] = (state?.fields ?? [])
    .filter((f) => f.outcome !== 'written')
    .map((f) => ({
      code: `ai_field_${f.outcome}`,
      scenario: 'ai_fields_blank' as const,
      message: `AI field "${f.title}" (${f.column}): ${f.outcome}${f.reason ? ` — ${f.reason}` : ''}`,
      fix: AI_FIXES[f.outcome] ?? 'Tighten the AI description with explicit values and clear criteria.',
    }));
  if (state?.status === 'failed' && state.fields.length === 0) {
    out.push({
      code: 'ai_fields_llm_error',
      scenario: 'ai_fields_blank',
      message: state.reason ?? 'AI field evaluation failed',
      fix: AI_FIXES.llm_error ?? '',
    });
  }
  return out;
}

function webhookErrors(i: DiagnoseInputs): Finding[] {
  const out: Finding[] = [];
  const stale = recent(i, 'stale_token');
  if (stale) {
    out.push({
      code: 'webhook_stale_token',
      scenario: 'webhook_errors',
      message: `${stale.count} call${stale.count === 1 ? '' : 's'} from Creatio used a webhook URL of organization ${i.orgId} from before its last rotation (401 Invalid token), the last at ${stale.lastAt}`,
      fix: `Copy the current webhook URL from ${WEBHOOK_URL_FIX} into both business processes.`,
    });
  }
  const bad = recent(i, 'bad_request');
  if (bad) {
    out.push({
      code: 'webhook_bad_request',
      scenario: 'webhook_errors',
      message: `${bad.count} call${bad.count === 1 ? '' : 's'} from Creatio answered 400, the last at ${bad.lastAt}: ${bad.lastReason ?? ''}`,
      fix: 'The process’s "Call web service" body must be JSON with event_type (string) and caseId (string, the case Id): {"event_type": "new_activity", "caseId": "[#Case.Id#]"}.',
    });
  }
  return out;
}

function workflow(i: DiagnoseInputs): Finding[] {
  const status = i.session.workflow.status;
  if (status === 'RUNNING' || status === 'COMPLETED' || status === 'CONTINUED_AS_NEW') return [];
  return [
    {
      code: 'workflow_not_running',
      scenario: 'none',
      message: `The conversation’s workflow ended as ${status}`,
      fix: 'Open it in the Temporal UI to see why; contact support with the organization, the session ID and the case ID.',
    },
  ];
}

/**
 * Signed OpenCX events of the organization that the bridge refused and keeps for a replay: one
 * finding per event name and field, and one when some were dropped unreplayed (recently). They
 * may be this conversation's (a refused event's conversation is not always known).
 */
export function refusedEventFindings(
  orgId: string,
  summary: { groups: RejectedEventGroup[]; dropped: { count: number; lastAt: string } | null },
  now: number,
  replayFix: string,
): Finding[] {
  const out: Finding[] = summary.groups.map((g) => ({
    code: 'opencx_events_refused',
    scenario: 'webhook_errors',
    message: `${g.count} signed OpenCX ${g.event} event${g.count === 1 ? '' : 's'} of organization ${orgId} ${g.count === 1 ? 'was' : 'were'} refused (${g.code}${g.field ? ` at ${g.field}` : ''}) since ${g.since}, the last at ${g.lastAt}; kept for a replay`,
    fix: replayFix,
  }));
  const d = summary.dropped;
  if (d && now - Date.parse(d.lastAt) < RECENT_MS) {
    out.push({
      code: 'opencx_events_dropped',
      scenario: 'webhook_errors',
      message: `${d.count} refused OpenCX event${d.count === 1 ? ' was' : 's were'} dropped unreplayed because too many were waiting for organization ${orgId}, the last at ${d.lastAt}`,
      fix: `Replay or look into the waiting ones first (GET /v1/orgs/${orgId}/opencx-events): what they name is what the bridge cannot read. Dropped events are gone from the bridge; OpenCX's conversation history still has their messages.`,
    });
  }
  return out;
}

/** Every finding for one conversation; none means nothing is wrong. */
export function findingsOf(i: DiagnoseInputs): Finding[] {
  return [
    ...credentials(i),
    ...downtime(i),
    ...schema(i),
    ...unverifiableReply(i),
    ...cases(i),
    ...agentReplies(i),
    ...replyRecipient(i),
    ...closure(i),
    ...aiFields(i),
    ...webhookErrors(i),
    ...workflow(i),
  ];
}
