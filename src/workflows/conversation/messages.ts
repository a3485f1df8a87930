/**
 * OpenCX → Creatio: messages become activities on the case, in order and exactly once. The case is
 * created at the first customer message (or at handoff in handoff-only mode, see handoff.ts).
 */
import { upsertMemo, upsertSearchAttributes } from '@temporalio/workflow';
import { SEARCH_ATTRIBUTE_KEYS } from '../../temporal/search-attributes';
import type { ConversationEvent, LogEntry, MessageEntry } from '../contract';
import type { Conversation } from './context';

/** Most messages written by one activity when a burst is waiting. */
const BATCH = 25;

const IN_PROGRESS_DESCRIPTION =
  'Conversation in progress in OpenCX. The AI summary is written here when the conversation is handed off.';

export function logEntry(c: Conversation, entry: LogEntry): Promise<string> {
  return c.steps.run(`log ${entry.kind === 'message' ? `message ${entry.messageId}` : entry.kind}`, () =>
    c.peers.creatio.logEntry({ orgId: c.orgId, sessionId: c.sessionId, caseId: c.run.state.caseId!, entry }),
  );
}

/** Creates the case (at most once, ever), then its first activity: the link to the session. */
export async function createCase(c: Conversation, description: string, registeredOn: string): Promise<void> {
  const { state } = c.run;
  const created = await c.steps.run('create case', () =>
    c.peers.creatio.ensureCase({
      orgId: c.orgId,
      sessionId: c.sessionId,
      contact: state.contact,
      channel: state.channel ?? 'web',
      description,
      registeredOn,
    }),
  );
  state.caseId = created.caseId;
  state.caseNumber = created.caseNumber;
  upsertSearchAttributes([{ key: SEARCH_ATTRIBUTE_KEYS.CreatioCaseId, value: created.caseId }]);
  upsertMemo({ caseId: created.caseId, caseNumber: created.caseNumber });
  await logEntry(c, {
    kind: 'session_link',
    contact: state.contact,
    channel: state.channel ?? 'web',
    timestamp: registeredOn,
  });
}

/**
 * Logs every buffered entry, oldest first, up to BATCH per activity (one activity per message
 * when they come one by one, fewer under a burst). Entries leave the buffer once written.
 */
export async function drain(c: Conversation): Promise<void> {
  const { state, unlogged } = c.run;
  while (state.caseId && unlogged.length > 0) {
    const batch = unlogged.slice(0, BATCH);
    const first = batch[0]!;
    const label = first.kind === 'message' ? `message ${first.messageId}` : first.kind;
    const at = { orgId: c.orgId, sessionId: c.sessionId, caseId: state.caseId };
    await c.steps.run(
      `log ${batch.length > 1 ? `${batch.length} messages from ${label}` : label}`,
      (): Promise<unknown> =>
        batch.length === 1
          ? c.peers.creatio.logEntry({ ...at, entry: first })
          : c.peers.creatio.logEntries({ ...at, entries: batch }),
    );
    unlogged.splice(0, batch.length);
    state.messages.logged += batch.filter((e) => e.kind === 'message').length;
  }
}

/** Reads the organization's mode (it matters only before the case exists); true for handoff-only. */
export async function readMode(c: Conversation): Promise<boolean> {
  const s = await c.steps.run('read settings', () => c.peers.settings.getConversationSettings(c.orgId));
  c.run.state.mode = s.createCaseOnlyOnHandoff ? 'handoff_only' : 'every_conversation';
  return s.createCaseOnlyOnHandoff;
}

export async function onMessage(c: Conversation, m: MessageEntry): Promise<void> {
  const { run } = c;
  if (!run.firstSight(m.messageId)) return;
  run.state.messages.received++;
  run.unlogged.push(m);
  run.addToTranscript(m);
  if (!run.state.caseId) {
    if (await readMode(c)) return;
    const firstCustomer = run.unlogged.find((e) => e.kind === 'message' && e.author === 'customer');
    if (!firstCustomer) return;
    await createCase(c, IN_PROGRESS_DESCRIPTION, firstCustomer.timestamp);
  }
  await drain(c);
}

export async function onStarted(
  c: Conversation,
  ev: Extract<ConversationEvent, { kind: 'started' }>,
): Promise<void> {
  const { state } = c.run;
  state.contact = { ...state.contact, ...ev.contact };
  state.channel = ev.channel;
  if (ev.firstMessage) {
    await onMessage(c, {
      kind: 'message',
      messageId: ev.firstMessage.id,
      author: 'customer',
      text: ev.firstMessage.text,
      attachments: [],
      timestamp: ev.timestamp,
    });
  }
}

export function toEntry(ev: Extract<ConversationEvent, { kind: 'message' }>): MessageEntry {
  return {
    kind: 'message',
    messageId: ev.messageId,
    author: ev.author,
    text: ev.text,
    attachments: ev.attachments,
    timestamp: ev.timestamp,
    ...(ev.agentName && { agentName: ev.agentName }),
  };
}
