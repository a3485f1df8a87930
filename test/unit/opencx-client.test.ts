/**
 * The OpenCX client against the emulator, both as OpenCX's reference describes them: the history
 * nested under `event` and paginated by `cursor`
 * (https://docs.open.cx/api-reference/chat-sessions/list_history), 201 on send
 * (https://docs.open.cx/api-reference/chat-sessions/send), a 404 on a history read as a distinct,
 * non-retryable error.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { ApplicationFailure } from '@temporalio/common';
import { toFailure } from '../../src/activities/failures';
import { HISTORY_MAX_PAGES, OpenCXClient, OpenCXError } from '../../src/opencx/client';
import { startOpenCXEmulator, type OpenCXEmulator } from '../../src/sandbox/emulators/opencx';

const ORG = 'acme';

describe('OpenCX client: the history as served', () => {
  let emu: OpenCXEmulator;
  let client: OpenCXClient;
  before(async () => {
    emu = await startOpenCXEmulator();
    emu.perMinute = 10_000;
    client = new OpenCXClient(emu.url, 'ocx_test_key');
  });
  after(() => emu.close());

  it('reads every page by cursor: the whole transcript with sender types, texts and times, oldest first', async () => {
    emu.historyPageSize = 7;
    const s = 'hist-1';
    emu.startConversation(s, { organizationId: ORG, firstMessage: 'hello' });
    for (let i = 0; i < 15; i++) {
      emu.say(s, 'contact', `question ${i}`, { organizationId: ORG });
      emu.say(s, 'ai', `answer ${i}`, { organizationId: ORG });
    }
    await client.sendAgentMessage(s, { text: 'an agent here', agentName: 'Sam' });
    const { messages, complete } = await client.transcript(s);
    assert.equal(complete, true);
    assert.equal(messages.length, 32, 'first message, 30 exchanged, 1 agent reply: over 5 pages of 7');
    assert.deepEqual(messages[0], {
      id: messages[0]!.id,
      senderType: 'contact',
      author: 'customer',
      senderName: undefined,
      text: 'hello',
      createdAt: messages[0]!.createdAt,
      attachments: [],
    });
    assert.ok(messages.every((m) => typeof m.id === 'string' && typeof m.createdAt === 'string'));
    assert.deepEqual(
      messages.slice(1, 3).map((m) => [m.senderType, m.author, m.text]),
      [
        ['contact', 'customer', 'question 0'],
        ['ai', 'ai', 'answer 0'],
      ],
    );
    const last = messages.at(-1)!;
    assert.deepEqual(
      [last.senderType, last.author, last.senderName, last.text],
      ['human_agent', 'agent', 'Sam', 'an agent here'],
    );
    const agent = await client.agentMessages(s);
    assert.deepEqual(
      agent.map((m) => m.text),
      ['an agent here'],
    );
    assert.equal(typeof agent[0]!.createdAt, 'number');
  });

  it(`stops at ${HISTORY_MAX_PAGES} pages and says the transcript is incomplete`, async () => {
    emu.historyPageSize = 1;
    const s = 'hist-long';
    emu.startConversation(s, { organizationId: ORG });
    for (let i = 0; i < HISTORY_MAX_PAGES + 5; i++) emu.say(s, 'contact', `m${i}`, { organizationId: ORG });
    const { messages, complete } = await client.transcript(s);
    assert.equal(complete, false);
    assert.equal(messages.length, HISTORY_MAX_PAGES);
    emu.historyPageSize = 20;
  });

  it('a history read that 404s is OpenCXSessionNotFoundError, not retried (a send 404 still is)', async () => {
    emu.sessionsMustExist = true;
    try {
      const err = await client.transcript('never-started').then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(err instanceof OpenCXError);
      assert.equal(err.kind, 'session_not_found');
      assert.equal(err.name, 'OpenCXSessionNotFoundError');
      assert.equal(err.status, 404);
      assert.equal(err.retryable, false);
      const failure = toFailure(err);
      assert.ok(failure instanceof ApplicationFailure);
      assert.equal(failure.type, 'OpenCXSessionNotFoundError');
      assert.equal(failure.nonRetryable, true);
      await assert.rejects(client.agentMessages('never-started'), { name: 'OpenCXSessionNotFoundError' });

      const send = await client.sendAgentMessage('never-started', { text: 'x', agentName: 'Sam' }).then(
        () => assert.fail('expected an error'),
        (e: unknown) => e,
      );
      assert.ok(send instanceof OpenCXError);
      assert.equal(send.kind, 'not_found');
      assert.equal(send.retryable, true);
      assert.equal(await client.sessionCustomData('never-started'), undefined);
    } finally {
      emu.sessionsMustExist = false;
    }
  });

  it('send is answered 201; the session keeps the marker; access is checked without undocumented parameters', async () => {
    const s = 'send-1';
    emu.startConversation(s, { organizationId: ORG });
    const { messageId } = await client.sendAgentMessage(s, {
      text: 'reply',
      agentName: 'Sam',
      marker: { bridge_reply: 'r-1' },
    });
    assert.equal(typeof messageId, 'string');
    assert.deepEqual(await client.sessionCustomData(s), { bridge_reply: 'r-1' });
    await client.checkAccess();
    await client.resolveSession(s);
    assert.deepEqual(emu.statusChanges.at(-1), { sessionId: s, status: 'closed_resolved' });
  });
});

describe('OpenCX client: a history server that misbehaves', () => {
  let server: http.Server;
  let url = '';
  let calls = 0;
  before(async () => {
    server = http.createServer((req, res) => {
      calls++;
      const u = new URL(req.url ?? '/', 'http://x');
      res.writeHead(200, { 'content-type': 'application/json' });
      // The same cursor again and again; items in both sender spellings; a handoff and an
      // internal comment (not transcript); a message without text (skipped).
      res.end(
        JSON.stringify({
          items: [
            {
              created_at: '2026-05-01T10:00:02Z',
              event: {
                type: 'message',
                sender: 'human_agent',
                content: { type: 'text', text: `p${u.search}` },
              },
            },
            {
              created_at: '2026-05-01T10:00:01Z',
              event: { type: 'message', sender: { type: 'contact' }, content: { type: 'text', text: 'hi' } },
            },
            { created_at: '2026-05-01T10:00:03Z', event: { type: 'handoff' } },
            {
              created_at: '2026-05-01T10:00:04Z',
              event: {
                type: 'human_agent_comment',
                human_agent_id: 1,
                content: { type: 'text', text: 'note' },
              },
            },
            { created_at: '2026-05-01T10:00:05Z', event: { type: 'message', sender: { type: 'ai' } } },
          ],
          next: 'same',
        }),
      );
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    url = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  });
  after(() => new Promise<void>((r) => server.close(() => r())));

  it('a cursor served twice ends the read (incomplete); only message events with text are transcript, sorted by time', async () => {
    const client = new OpenCXClient(url, 'k');
    const { messages, complete } = await client.transcript('s');
    assert.equal(complete, false);
    assert.equal(calls, 2, 'the first page, then the page of cursor "same", whose next is "same" again');
    assert.deepEqual(
      messages.map((m) => [m.author, m.text]),
      [
        ['customer', 'hi'],
        ['customer', 'hi'],
        ['agent', 'p'],
        ['agent', 'p?cursor=same'],
      ],
    );
  });
});
