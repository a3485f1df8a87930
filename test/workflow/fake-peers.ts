/**
 * The conversation workflow's activities, faked in memory: a Creatio that keeps cases and
 * activities (deduplicated by entry key, as deterministic ids make the real one), a store for
 * spilled events, an OpenCX that accepts everything. Lets a workflow test check one rule in a
 * second, with no emulator and no database.
 */
import type { Duration } from '@temporalio/common';
import { randomUUID } from 'node:crypto';
import { ApplicationFailure } from '@temporalio/common';
import type { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import type {
  AiFieldsActivities,
  AttentionActivities,
  CreatioActivities,
  OpenCXActivities,
  StoreActivities,
} from '../../src/activities';
import { workflowBundle } from '../../src/worker';
import {
  conversationEventSignal,
  conversationWorkflowId,
  type ConversationEvent,
  type ConversationOptions,
  type LogEntry,
} from '../../src/workflows/contract';
import { creatioTaskQueue, opencxTaskQueue } from '../../src/workflows/task-queues';

type Fake<T> = { [K in keyof T]: (...args: never[]) => Promise<unknown> };

const keyOf = (e: LogEntry) => (e.kind === 'message' ? `message:${e.messageId}` : `${e.kind}`);

export class FakePeers {
  readonly cases = new Map<string, { sessionId: string; description: string }>();
  /** Every entry written, in order, with the case it went on. */
  readonly written: { caseId: string; key: string; entry: LogEntry }[] = [];
  readonly spill = new Map<string, string>();
  /** Calls per activity name (first tries and durable tries alike). */
  readonly calls = new Map<string, number>();
  handoffOnly = false;
  /** A first try that opens a case writes this many of its entries, then fails (as a 5xx would). */
  openCaseFailsAfter: number | null = null;
  /** Messages whose text this returns true for are refused, as a Creatio 403 would be. */
  refuse: ((text: string) => boolean) | null = null;

  private count(name: string): void {
    this.calls.set(name, (this.calls.get(name) ?? 0) + 1);
  }

  texts(caseId: string): string[] {
    return this.written
      .filter((w) => w.caseId === caseId && w.entry.kind === 'message')
      .map((w) => {
        const e = w.entry as Extract<LogEntry, { kind: 'message' }>;
        return e.text;
      });
  }

  private write(caseId: string, entry: LogEntry): string {
    if (entry.kind === 'message' && this.refuse?.(entry.text)) {
      throw ApplicationFailure.nonRetryable('refused with 403', 'CreatioForbiddenError');
    }
    const key = keyOf(entry);
    if (!this.written.some((w) => w.caseId === caseId && w.key === key))
      this.written.push({ caseId, key, entry });
    return key;
  }

  creatio(): Fake<CreatioActivities> {
    return {
      ensureCase: async (input: { sessionId: string; description: string }) => {
        this.count('ensureCase');
        const caseId = `case-${input.sessionId}`;
        if (!this.cases.has(caseId))
          this.cases.set(caseId, { sessionId: input.sessionId, description: input.description });
        return { caseId, caseNumber: `CS-${this.cases.size}` };
      },
      openCase: async (input: { sessionId: string; description: string; entries: LogEntry[] }) => {
        this.count('openCase');
        const caseId = `case-${input.sessionId}`;
        if (!this.cases.has(caseId))
          this.cases.set(caseId, { sessionId: input.sessionId, description: input.description });
        for (const [i, e] of input.entries.entries()) {
          if (i === this.openCaseFailsAfter) {
            throw ApplicationFailure.retryable('Creatio answered 503', 'CreatioServerError');
          }
          this.write(caseId, e);
        }
        return { caseId, caseNumber: `CS-${this.cases.size}`, written: input.entries.length };
      },
      logEntry: async (input: { caseId: string; entry: LogEntry }) => {
        this.count('logEntry');
        return this.write(input.caseId, input.entry);
      },
      logEntries: async (input: { caseId: string; entries: LogEntry[] }) => {
        this.count('logEntries');
        for (const e of input.entries) this.write(input.caseId, e);
        return input.entries.length;
      },
      attachContact: async () => {
        this.count('attachContact');
      },
      applyHandoff: async () => {
        this.count('applyHandoff');
      },
      writeAiFields: async () => {
        this.count('writeAiFields');
      },
      readCaseStatus: async () => {
        this.count('readCaseStatus');
        return { name: 'In progress', closes: false, isFinal: false };
      },
      reopenCase: async () => {
        return { done: true };
      },
      resolveCase: async () => {
        return { done: true };
      },
      fetchAgentReplies: async () => {
        this.count('fetchAgentReplies');
        return { replies: [], cursor: null, more: false };
      },
    };
  }

  store(): Fake<StoreActivities> {
    return {
      getConversationSettings: async () => {
        this.count('getConversationSettings');
        return { createCaseOnlyOnHandoff: this.handoffOnly, afterClose: 'log' };
      },
      findCase: async () => {
        return undefined;
      },
      spillEvents: async (input: { workflowId: string; chunk: number; events: ConversationEvent[] }) => {
        this.spill.set(`${input.workflowId}:${input.chunk}`, JSON.stringify(input.events));
      },
      loadSpill: async (input: { workflowId: string; chunk: number }) => {
        return JSON.parse(
          this.spill.get(`${input.workflowId}:${input.chunk}`) ?? '[]',
        ) as ConversationEvent[];
      },
      dropSpill: async () => {
        return undefined;
      },
      holdEvents: async (input: { workflowId: string; held: unknown }) => {
        this.spill.set(`${input.workflowId}:-1`, JSON.stringify(input.held));
      },
      findHeld: async (input: { workflowId: string }) => {
        const held = this.spill.get(`${input.workflowId}:-1`);
        return held === undefined ? null : (JSON.parse(held) as unknown);
      },
    };
  }

  /** The conversations-that-need-attention notes: counted, nothing stored. */
  attention(): Fake<AttentionActivities> {
    return {
      noteAttention: async () => {
        this.count('noteAttention');
      },
    };
  }

  ai(): Fake<AiFieldsActivities> {
    return {
      evaluateAiFields: async () => {
        return { outcomes: [], patch: {} };
      },
    };
  }

  opencx(): Fake<OpenCXActivities> {
    return {
      deliverReply: async () => {
        return { sent: true, omittedAttachments: [] };
      },
      readHistory: async () => {
        return { messages: [], newest: null, complete: true };
      },
      resolveSession: async () => {
        return undefined;
      },
    };
  }
}

/** The conversation workflow on its own task queues, with the fakes as its activities. */
export async function runWithFakes<T>(
  env: TestWorkflowEnvironment,
  peers: FakePeers,
  fn: (tq: string) => Promise<T>,
): Promise<T> {
  const taskQueue = `wf-test-${randomUUID().slice(0, 8)}`;
  const common = { connection: env.nativeConnection, namespace: env.namespace ?? 'default' };
  const workers = await Promise.all([
    Worker.create({
      ...common,
      taskQueue,
      workflowBundle: await workflowBundle(process.env.WORKFLOW_BUNDLE),
      activities: { ...peers.store(), ...peers.attention(), ...peers.creatio() },
    }),
    Worker.create({
      ...common,
      taskQueue: creatioTaskQueue(taskQueue),
      activities: { ...peers.creatio(), ...peers.ai() },
    }),
    Worker.create({ ...common, taskQueue: opencxTaskQueue(taskQueue), activities: peers.opencx() }),
  ]);
  const runs = workers.map((w) => w.run());
  try {
    return await fn(taskQueue);
  } finally {
    for (const w of workers) w.shutdown();
    await Promise.all(runs);
  }
}

export function options(taskQueue: string, o: Partial<ConversationOptions> = {}): ConversationOptions {
  return {
    taskQueue,
    creatioRetryFor: '5s',
    creatioRetryMaxInterval: '1s',
    parkedRetryEvery: '1h',
    maxHistoryEvents: 10_000,
    idleTimeout: '1h',
    aiFieldsDeadline: '5s',
    ...o,
  };
}

let n = 0;
export const message = (messageId: string, text: string): ConversationEvent => ({
  kind: 'message',
  eventId: `e-${++n}`,
  timestamp: new Date(Date.UTC(2026, 0, 1, 0, 0, n)).toISOString(),
  messageId,
  author: 'customer',
  text,
  attachments: [],
});

/** Hands events to the conversation (starting it), as the API does. */
export async function send(
  env: TestWorkflowEnvironment,
  taskQueue: string,
  sessionId: string,
  events: ConversationEvent[],
  o: Partial<ConversationOptions> = {},
  /** The workflow task timeout of a run this starts (Temporal's default: 10 s). */
  workflowTaskTimeout?: Duration,
): Promise<string> {
  const workflowId = conversationWorkflowId('org-wf', sessionId);
  for (const event of events) {
    await env.client.workflow.signalWithStart('conversationWorkflow', {
      workflowId,
      taskQueue,
      ...(workflowTaskTimeout && { workflowTaskTimeout }),
      args: [{ orgId: 'org-wf', sessionId, options: options(taskQueue, o) }],
      signal: conversationEventSignal,
      signalArgs: [event],
    });
  }
  return workflowId;
}
