import { defineQuery, defineSignal } from '@temporalio/workflow';

/** Who wrote a message in the OpenCX conversation. */
export type Author = 'customer' | 'ai' | 'agent';

export interface Attachment {
  name: string;
  url: string;
  mimeType?: string;
}

export interface Contact {
  id?: string;
  name?: string;
  email?: string;
  phone?: string;
}

/** One OpenCX webhook delivery, as the workflow sees it. `eventId` is the `webhook-id`. */
export type ConversationEvent =
  | {
      kind: 'started';
      eventId: string;
      timestamp: string;
      contact: Contact;
      channel: string;
      firstMessage?: { id: string; text: string };
    }
  | {
      kind: 'message';
      eventId: string;
      timestamp: string;
      messageId: string;
      author: Author;
      text: string;
      attachments: Attachment[];
      agentName?: string;
    }
  | {
      kind: 'handoff';
      eventId: string;
      timestamp: string;
      reason: string;
      summary: string;
      language: string;
      sentiment: string;
    }
  | {
      kind: 'closed';
      eventId: string;
      timestamp: string;
      resolution: 'resolved' | 'not_resolved';
      summary: string;
      language: string;
      sentiment: string;
    }
  /** Creatio's agent-reply process: the case has a new activity (maybe an agent's reply). */
  | { kind: 'creatio_activity'; eventId: string; timestamp: string }
  /** Creatio's closure process: the case status changed. */
  | { kind: 'creatio_status'; eventId: string; timestamp: string; eventType: string };

/** Every event reaches the workflow through this one signal, so their order is the order received. */
export const conversationEventSignal = defineSignal<[ConversationEvent]>('conversationEvent');

/** Retry a step that failed with an error retrying could not fix (after the cause was fixed). */
export const resumeSignal = defineSignal('resume');

export interface StepError {
  step: string;
  type: string;
  message: string;
  at: string;
  /** True while the workflow waits for a fix (resume signal or the next periodic try). */
  parked: boolean;
}

export interface AiFieldsState {
  status: 'done' | 'failed';
  reason?: string;
  fields: {
    column: string;
    title: string;
    outcome: string;
    value?: string | number | boolean;
    reason?: string;
  }[];
}

/**
 * What the bridge knows of one of the customer's Creatio business processes for this case: the
 * calls it made, and what the bridge found on its own timer that the process never told it about.
 */
export interface ProcessEvidence {
  calls: number;
  lastCallAt: string | null;
  /** Replies delivered (or a closure acted on) only because the timer found them. */
  missed: number;
  lastMissedAt: string | null;
  /** Set once something was missed: the likely cause, for operators and the diagnose endpoint. */
  finding: string | null;
}

export interface ConversationState {
  orgId: string;
  sessionId: string;
  workflowId: string;
  mode: 'every_conversation' | 'handoff_only';
  status: 'open' | 'closed';
  caseId: string | null;
  caseNumber: string | null;
  contact: Contact;
  channel: string | null;
  messages: { received: number; logged: number; pending: number };
  handedOffAt: string | null;
  /** Status name last read from Creatio after a closure call. */
  caseStatus: string | null;
  resolution: 'resolved' | 'not_resolved' | null;
  agentRepliesDelivered: number;
  /** The Creatio processes that call the bridge back, as seen from this conversation. */
  processes: { agentReply: ProcessEvidence; closure: ProcessEvidence };
  /** When the timer next looks for replies and closure on its own (after handoff, while open). */
  nextReplyCheckAt: string | null;
  /** What happened to each AI field at handoff, so "AI fields blank" is always explained. */
  aiFields: AiFieldsState | null;
  lastError: StepError | null;
  /** Things skipped on purpose, with the reason (e.g. no Resolved Status ID configured). */
  notes: { at: string; message: string }[];
  runs: number;
}

export const stateQuery = defineQuery<ConversationState>('state');

export function conversationWorkflowId(orgId: string, sessionId: string): string {
  return `conversation:${orgId}:${sessionId}`;
}
