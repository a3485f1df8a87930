/**
 * The OpenCX emulator speaks OpenCX's API as its reference documents it (each check names the
 * page), and builds webhook bodies from the reference's field lists
 * (https://docs.open.cx/api-reference/webhooks/types).
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { OpenCXEmulator, startOpenCXEmulator, webhookBodies } from '../../src/sandbox/emulators/opencx';

const ORG = 'acme';

describe('OpenCX emulator: the API, page by page', () => {
  let emu: OpenCXEmulator;
  const call = async (method: string, path: string, body?: unknown, key = 'ocx_test_key') => {
    const res = await fetch(`${emu.url}${path}`, {
      method,
      headers: {
        authorization: `Bearer ${key}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await res.text();
    return { status: res.status, body: text ? JSON.parse(text) : undefined };
  };
  before(async () => {
    emu = await startOpenCXEmulator();
    emu.sessionsMustExist = true;
  });
  after(() => emu.close());

  it('authentication: a missing or unknown key is 401 with the ErrorDto body', async () => {
    const r = await call('GET', '/chat/sessions', undefined, 'nope');
    assert.equal(r.status, 401);
    assert.deepEqual(r.body, { statusCode: 401, message: 'Unauthorized', error: 'Unauthorized' });
  });

  it('a session exists from its conversation start: 404 before, the ChatSession of chat-sessions/get after', async () => {
    const s = 'emu-1';
    assert.equal((await call('GET', `/chat/sessions/${s}`)).status, 404);
    assert.equal((await call('GET', `/chat/sessions/${s}/history`)).status, 404);
    assert.equal(
      (
        await call('POST', `/chat/sessions/${s}/send`, {
          sender: 'agent',
          message: { type: 'text', text: 'x' },
        })
      ).status,
      404,
    );
    emu.startConversation(s, {
      organizationId: ORG,
      contact: { name: 'Jane', email: 'jane@example.com' },
      firstMessage: 'hello',
    });
    const got = await call('GET', `/chat/sessions/${s}`);
    assert.equal(got.status, 200);
    for (const k of ['id', 'status', 'channel', 'contact', 'custom_data', 'created_at', 'updated_at'])
      assert.ok(k in got.body, k);
    assert.equal(got.body.status, 'open');
    assert.deepEqual(got.body.channel, { type: 'web' });
    assert.equal(got.body.contact.email, 'jane@example.com');
  });

  it('send (chat-sessions/send) is 201; the message joins the history as a human_agent message', async () => {
    const s = 'emu-2';
    emu.startConversation(s, { organizationId: ORG, firstMessage: 'hi' });
    const r = await call('POST', `/chat/sessions/${s}/send`, {
      sender: 'agent',
      message: { type: 'text', text: 'Hello from Sam' },
      agent: { name: 'Sam' },
      should_take_over_session_from_ai: true,
      custom_data: { k: 'v' },
    });
    assert.equal(r.status, 201);
    assert.equal(r.body.success, true);
    const h = await call('GET', `/chat/sessions/${s}/history`);
    assert.equal(h.status, 200);
    assert.equal(h.body.next, null);
    assert.deepEqual(
      h.body.items.map((i: any) => [
        Object.keys(i).sort().join(','),
        i.event.type,
        i.event.sender,
        i.event.content,
      ]),
      [
        ['created_at,event,id', 'message', { type: 'contact' }, { type: 'text', text: 'hi' }],
        [
          'created_at,event,id',
          'message',
          { type: 'human_agent', name: 'Sam' },
          { type: 'text', text: 'Hello from Sam' },
        ],
      ],
    );
    const bad = await call('POST', `/chat/sessions/${s}/send`, {
      sender: 'agent',
      message: { type: 'text', text: 'x' },
      custom_data: { nested: { no: 1 } },
    });
    assert.equal(bad.status, 400);
  });

  it('history (chat-sessions/list_history) is paginated by cursor: `next` until null; a bad cursor is 400', async () => {
    const s = 'emu-3';
    emu.startConversation(s, { organizationId: ORG });
    for (let i = 0; i < 45; i++) emu.say(s, i % 2 ? 'ai' : 'contact', `m${i}`, { organizationId: ORG });
    const texts: string[] = [];
    let cursor: string | null = null;
    let pages = 0;
    do {
      const r = await call('GET', `/chat/sessions/${s}/history${cursor ? `?cursor=${cursor}` : ''}`);
      assert.equal(r.status, 200);
      texts.push(...r.body.items.map((i: any) => i.event.content.text));
      cursor = r.body.next;
      pages++;
    } while (cursor);
    assert.equal(pages, 3, '20 items a page');
    assert.deepEqual(
      texts,
      Array.from({ length: 45 }, (_, i) => `m${i}`),
    );
    assert.equal((await call('GET', `/chat/sessions/${s}/history?cursor=%%%`)).status, 400);
  });

  it('update (chat-sessions/update) is 200; a status outside open / closed_resolved / closed_unresolved is 400', async () => {
    const s = 'emu-4';
    emu.startConversation(s, { organizationId: ORG });
    assert.equal((await call('PATCH', `/chat/sessions/${s}`, { status: 'closed_resolved' })).status, 200);
    assert.equal((await call('GET', `/chat/sessions/${s}`)).body.status, 'closed_resolved');
    assert.equal((await call('PATCH', `/chat/sessions/${s}`, { status: 'done' })).status, 400);
  });

  it('create and list (opencx-oapi-ts createChatSession, chat-sessions/list): 201 { id }, then listed', async () => {
    const created = await call('POST', '/chat/sessions', { channel: { type: 'api' } });
    assert.equal(created.status, 201);
    assert.equal(typeof created.body.id, 'string');
    assert.equal((await call('GET', `/chat/sessions/${created.body.id}/history`)).status, 200);
    const list = await call('GET', '/chat/sessions');
    assert.equal(list.status, 200);
    assert.equal(list.body.next, null);
    assert.ok(list.body.items.some((i: any) => i.id === created.body.id && i.channel.type === 'api'));
  });
});

describe('OpenCX emulator: webhook bodies from the field lists of webhooks/types', () => {
  const keys = (o: unknown) => Object.keys(o as object).sort();

  it('conversation.started has every documented field', () => {
    const b = webhookBodies.started({
      organizationId: ORG,
      sessionId: 's',
      contact: { id: 'c', email: 'e@x.test' },
    });
    assert.equal(b.event, 'conversation.started');
    assert.equal(b.organization_id, ORG);
    assert.deepEqual(keys(b.data), [
      'assignee',
      'channel',
      'contact',
      'conversation_id',
      'first_message',
      'timestamp',
    ]);
    assert.deepEqual((b.data as any).contact.enriched_data.email, 'e@x.test');
  });

  it('conversation.closed, newer rendering: human / ai resolution status, no resolution_status', () => {
    const b = webhookBodies.closed({
      organizationId: ORG,
      sessionId: 's',
      rendering: 'newer',
      contactId: 'c',
    });
    const d = b.data as Record<string, unknown>;
    for (const k of [
      'conversation_id',
      'timestamp',
      'contact_id',
      'contact',
      'human_resolution_status',
      'ai_resolution_status',
      'ai_billing_tier',
      'closed_by',
      'is_from_third_party',
      'third_party_name',
      'summary',
      'contact_reason',
    ])
      assert.ok(k in d, k);
    assert.ok(!('resolution_status' in d));
  });

  it('conversation.closed, older rendering: data is an array of the documented object', () => {
    const b = webhookBodies.closed({
      organizationId: ORG,
      sessionId: 's',
      rendering: 'older',
      resolution: 'not_resolved',
    });
    assert.ok(Array.isArray(b.data));
    const d = (b.data as Record<string, unknown>[])[0]!;
    assert.deepEqual(keys(d), [
      'closed_by',
      'contact_reason',
      'conversation_id',
      'is_from_third_party',
      'language',
      'message_count',
      'resolution_status',
      'resolution_type',
      'summary',
      'third_party_name',
      'timestamp',
      'user_sentiment',
    ]);
    assert.equal(d.resolution_status, 'not_resolved');
    const without = webhookBodies.closed({
      organizationId: ORG,
      sessionId: 's',
      rendering: 'older',
      withoutConversationId: true,
    });
    assert.ok(!('conversation_id' in (without.data as object[])[0]!));
  });

  it('the emulator plays OpenCX: the bodies it returns match what it records', () => {
    const emu = new OpenCXEmulator();
    emu.startConversation('p-1', { organizationId: ORG, firstMessage: 'hi' });
    const said = emu.say('p-1', 'ai', 'How can I help?', { organizationId: ORG, shape: 'flat' });
    assert.equal(said.event, 'conversation.ai_response');
    const item = emu.sessions.get('p-1')!.history.at(-1)!;
    assert.equal((said.data as any).message_id, item.id);
    assert.deepEqual(item.event.sender, { type: 'ai' });
    const closed = emu.closeConversation('p-1', {
      organizationId: ORG,
      rendering: 'newer',
      resolution: null,
      aiResolution: 'resolved',
    });
    assert.equal((closed.data as any).human_resolution_status, null);
    assert.equal((closed.data as any).message_count, 2);
    assert.equal(emu.sessions.get('p-1')!.status, 'closed_unresolved');
  });
});
