/**
 * `npm run demo`: plays one whole conversation through the sandbox of a running bridge (`npm start`
 * in another terminal): started, messages, handoff, an agent reply written in Creatio, the case
 * closed in Creatio. Prints each step with the case number and the links to the admin console and
 * the Temporal UI.
 */
import { randomUUID } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { CreatioClient, identityServiceUrlFor } from '../creatio/client';
import { signedHeaders } from '../opencx/signature';
import { conversationWorkflowId } from '../workflows/contract';
import { IDS } from './emulators/creatio-schema';
import { SANDBOX_CLIENT } from './emulators/creatio';
import { SANDBOX_OPENCX_API_KEY, SANDBOX_ORG_ID, SANDBOX_WEBHOOK_SECRET } from '.';

const env = process.env;
const bridgeUrl = env.BRIDGE_URL ?? `http://127.0.0.1:${env.PORT ?? 8080}`;
const sandboxPort = Number(env.SANDBOX_PORT ?? 8300);
const creatioUrl = `http://127.0.0.1:${sandboxPort}`;
const opencxUrl = `http://127.0.0.1:${sandboxPort + 1}`;
const temporalUi = (env.TEMPORAL_UI_ORIGIN ?? `http://localhost:${env.TEMPORAL_UI_PORT ?? 8233}`).replace(
  /\/+$/,
  '',
);

interface DemoState {
  caseId: string | null;
  caseNumber: string | null;
  handedOffAt: string | null;
  messages: { logged: number };
}

const opencxAuth = { authorization: `Bearer ${SANDBOX_OPENCX_API_KEY}` };

const step = (n: number, text: string) => console.log(`\n${n}. ${text}`);
const say = (text: string) => console.log(`   ${text}`);

async function adminToken(): Promise<string> {
  if (env.ADMIN_API_TOKEN) return env.ADMIN_API_TOKEN;
  return (await readFile(path.join(env.DATA_DIR ?? '.data', 'admin-token'), 'utf8')).trim();
}

async function waitFor<T>(what: string, fn: () => Promise<T | undefined>, ms = 30_000): Promise<T> {
  const until = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== null && v !== false) return v;
    if (Date.now() > until) throw new Error(`gave up waiting for ${what} after ${ms / 1000} s`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

async function main(): Promise<void> {
  const ready = await fetch(`${bridgeUrl}/readyz`).catch(() => undefined);
  if (!ready?.ok) {
    console.error(
      `No bridge answering at ${bridgeUrl}: start it first with "npm start" (then run this again).`,
    );
    process.exit(1);
  }
  const token = await adminToken();
  const sessionId = `demo-${randomUUID().slice(0, 8)}`;
  const orgId = SANDBOX_ORG_ID;
  let n = Date.now();
  const timestamp = () => new Date((n += 1000)).toISOString();
  const send = async (event: string, data: Record<string, unknown>) => {
    const body = JSON.stringify({
      event,
      organization_id: orgId,
      data: { conversation_id: sessionId, ...data },
    });
    const res = await fetch(`${bridgeUrl}/webhooks/opencx`, {
      method: 'POST',
      headers: signedHeaders(SANDBOX_WEBHOOK_SECRET, body),
      body,
    });
    if (res.status >= 300) throw new Error(`${event} answered ${res.status}: ${await res.text()}`);
    say(`${event} → ${res.status}`);
  };
  const state = async () => {
    const res = await fetch(`${bridgeUrl}/v1/orgs/${orgId}/sessions/${sessionId}`, {
      headers: { authorization: `Bearer ${token}` },
    });
    return res.ok ? ((await res.json()) as DemoState) : undefined;
  };

  step(1, `A customer starts conversation ${sessionId} in OpenCX`);
  await send('conversation.started', {
    contact: { name: 'Jane Doe', email: 'jane@example.com' },
    channel: 'web',
    timestamp: timestamp(),
  });
  await send('conversation.contact_response', {
    message: { id: 'm1', text: 'Hi, I cannot log in since the password reset.' },
    timestamp: timestamp(),
  });
  const created = await waitFor('the case', async () => {
    const s = await state();
    return s?.caseId ? (s as DemoState & { caseId: string }) : undefined;
  });
  say(`Case ${created.caseNumber} created in Creatio (${created.caseId})`);

  step(2, 'The AI answers, the customer replies: each message becomes an activity on the case, in order');
  await send('conversation.ai_response', {
    message: { id: 'm2', text: 'I can help. Did you get the reset email?' },
    timestamp: timestamp(),
  });
  await send('conversation.contact_response', {
    message: { id: 'm3', text: 'Yes, but the link has expired.' },
    timestamp: timestamp(),
  });
  await waitFor('3 messages logged', async () => (await state())?.messages?.logged === 3);
  say('3 messages logged');

  step(3, 'The AI hands the conversation to a human');
  await send('conversation.handoff_to_human', {
    reason: 'user_requested_human',
    summary: 'Password reset link expired; customer cannot log in.',
    language: 'en',
    sentiment: 'frustrated',
    timestamp: timestamp(),
  });
  await waitFor('the handoff', async () => (await state())?.handedOffAt);
  say('Summary, language and sentiment written on the case; the handoff noted');

  step(4, 'An agent answers in Creatio (an outgoing Email on the case)');
  const creatio = new CreatioClient(
    {
      instanceUrl: creatioUrl,
      identityServiceUrl: identityServiceUrlFor(creatioUrl, undefined),
      ...SANDBOX_CLIENT,
    },
    { timeoutMs: 10_000 },
  );
  const reply = 'Hello Jane, I have sent you a new reset link. It is valid for 24 hours.';
  await creatio.create('Activity', {
    CaseId: created.caseId,
    Title: 'Re: password reset',
    Body: `<p>${reply}</p>`,
    TypeId: IDS.activityType.Email,
    MessageTypeId: IDS.emailType.Outgoing,
    EmailSendStatusId: IDS.emailSendStatus.Sent,
    Sender: 'Support <support@example.com>',
    Recepient: 'Jane Doe <jane@example.com>;',
    OwnerId: IDS.contact.Supervisor,
  });
  await waitFor('the reply in OpenCX', async () => {
    // The history as OpenCX serves it: items nested under `event`, paged by `next` (list_history).
    type Page = {
      items: { event: { sender: { type: string }; content: { text: string } } }[];
      next: string | null;
    };
    for (let cursor: string | null = null, pages = 0; pages < 50; pages++) {
      const q: string = cursor ? `?cursor=${encodeURIComponent(cursor)}` : '';
      const res = await fetch(`${opencxUrl}/chat/sessions/${sessionId}/history${q}`, { headers: opencxAuth });
      const page = (await res.json()) as Page;
      const found = page.items.some(
        (m) => m.event.sender.type === 'human_agent' && m.event.content.text === reply,
      );
      if (found) return true;
      if (!page.next) return false;
      cursor = page.next;
    }
    return false;
  });
  say('The Creatio process called the bridge; the reply reached the customer through OpenCX');

  step(5, 'The agent resolves the case in Creatio');
  await creatio.update('Case', created.caseId, { StatusId: IDS.caseStatus.Resolved });
  const closed = await waitFor('the OpenCX session resolved', async () => {
    const res = await fetch(`${opencxUrl}/chat/sessions/${sessionId}`, { headers: opencxAuth });
    const s = res.ok ? ((await res.json()) as { status: string }) : undefined;
    return s?.status === 'closed_resolved' ? s : undefined;
  });
  say(`OpenCX session ${closed.status}`);

  const workflowId = conversationWorkflowId(orgId, sessionId);
  console.log(`
Done: case ${created.caseNumber}.
  Admin console:  ${bridgeUrl}/admin/  (organization "${orgId}", the token is in .data/admin-token)
                  → Conversation inspector → ${sessionId}
  Temporal UI:    ${temporalUi}/namespaces/${env.TEMPORAL_NAMESPACE ?? 'default'}/workflows/${encodeURIComponent(workflowId)}
  State (API):    curl -H "Authorization: Bearer $(cat .data/admin-token)" ${bridgeUrl}/v1/orgs/${orgId}/sessions/${sessionId}`);
}

main().catch((err: unknown) => {
  console.error(`demo failed: ${err instanceof Error ? err.message : String(err)}`);
  process.exit(1);
});
