/**
 * OpenCX webhook bodies → the workflow's events, from the field lists of OpenCX's reference
 * (https://docs.open.cx/api-reference/webhooks/types) and, where it is silent, each plausible shape.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { z } from 'zod';
import { parseBody } from '../../src/api/errors';
import { ApiError } from '../../src/errors';
import {
  closedResolution,
  eventDataSchemas,
  HANDLED_EVENTS,
  toConversationEvent,
  type HandledEvent,
} from '../../src/opencx/events';
import { webhookBodies, type MessageShape } from '../../src/sandbox/emulators/opencx';

const ORG = 'acme';
const RECEIVED = '2026-05-01T12:00:00.000Z';

/** As the ingress parses: the first problem becomes a 400 naming `data.<field>`. */
function convert(event: HandledEvent, data: unknown) {
  return toConversationEvent(
    event,
    data,
    'msg_1',
    (schema, d) => parseBody(schema as z.ZodType, d, 'data') as never,
    RECEIVED,
  );
}

function fieldOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (err) {
    if (err instanceof ApiError) return err.extra.field;
    throw err;
  }
  assert.fail('expected a validation error');
}

describe('OpenCX events: conversation.started (webhooks/types, documented body)', () => {
  it('reads the documented body: contact details under enriched_data, channel, first_message', () => {
    const body = webhookBodies.started({
      organizationId: ORG,
      sessionId: 's-1',
      contact: { id: 'c-1', name: 'Jane', email: 'jane@example.com', phone_number: '+3312345678' },
      channel: 'email',
      firstMessage: 'Hello',
      timestamp: '2026-05-01T10:00:00Z',
    });
    const { sessionId, event } = convert('conversation.started', body.data);
    assert.equal(sessionId, 's-1');
    assert.deepEqual(event, {
      kind: 'started',
      eventId: 'msg_1',
      timestamp: '2026-05-01T10:00:00.000Z',
      channel: 'email',
      contact: { id: 'c-1', name: 'Jane', email: 'jane@example.com', phone: '+3312345678' },
      firstMessage: { id: 's-1:first', text: 'Hello' },
    });
  });

  it('an empty first_message is no first message; the channel as an object `{ type }` is read', () => {
    const { event } = convert('conversation.started', {
      conversation_id: 's-2',
      channel: { type: 'whatsapp' },
      first_message: '',
      timestamp: '2026-05-01T10:00:00Z',
    });
    assert.equal(event.kind, 'started');
    if (event.kind !== 'started') return;
    assert.equal(event.channel, 'whatsapp');
    assert.equal(event.firstMessage, undefined);
  });
});

describe('OpenCX events: conversation.closed, both documented renderings', () => {
  it('newer rendering (human_resolution_status, ai_resolution_status, no resolution_status)', () => {
    for (const [human, ai, want] of [
      ['resolved', null, 'resolved'],
      ['not_resolved', 'resolved', 'not_resolved'],
      [null, 'assumed_resolved', 'resolved'],
      [null, 'not_resolved', 'not_resolved'],
      [null, 'unresolved', 'not_resolved'],
      [null, 'handed_off', 'not_resolved'],
      [null, null, 'not_resolved'],
    ] as const) {
      const body = webhookBodies.closed({
        organizationId: ORG,
        sessionId: 's-3',
        rendering: 'newer',
        resolution: human,
        aiResolution: ai,
        timestamp: '2026-05-01T11:00:00Z',
      });
      assert.ok(!('resolution_status' in (body.data as object)));
      const { sessionId, event } = convert('conversation.closed', body.data);
      assert.equal(sessionId, 's-3');
      assert.equal(event.kind, 'closed');
      if (event.kind !== 'closed') return;
      assert.equal(event.resolution, want, `human ${human}, ai ${ai}`);
      assert.equal(event.timestamp, '2026-05-01T11:00:00.000Z');
      assert.equal(event.sentiment, 'neutral');
    }
  });

  it('older rendering: data is an array; the first object is the event', () => {
    for (const resolution of ['resolved', 'not_resolved'] as const) {
      const body = webhookBodies.closed({
        organizationId: ORG,
        sessionId: 's-4',
        rendering: 'older',
        resolution,
      });
      assert.ok(Array.isArray(body.data));
      const { sessionId, event } = convert('conversation.closed', body.data);
      assert.equal(sessionId, 's-4');
      assert.equal(event.kind === 'closed' && event.resolution, resolution);
      assert.equal(event.kind === 'closed' && event.summary, 'Password reset link resent.');
    }
    // The older body sent as an object, and the newer one inside an array, are read the same.
    const older = webhookBodies.closed({ organizationId: ORG, sessionId: 's-5', rendering: 'older' });
    assert.equal(convert('conversation.closed', (older.data as unknown[])[0]).sessionId, 's-5');
    const newer = webhookBodies.closed({ organizationId: ORG, sessionId: 's-6', rendering: 'newer' });
    assert.equal(convert('conversation.closed', [newer.data]).sessionId, 's-6');
  });

  it('conversation_id is optional there: session_id names the session instead; neither → 400 naming data.conversation_id', () => {
    const withSessionId = webhookBodies.closed({
      organizationId: ORG,
      sessionId: 's-7',
      rendering: 'newer',
      withoutConversationId: true,
      sessionIdField: 'session_id',
    });
    assert.equal(convert('conversation.closed', withSessionId.data).sessionId, 's-7');
    for (const rendering of ['newer', 'older'] as const) {
      const none = webhookBodies.closed({
        organizationId: ORG,
        sessionId: 's-8',
        rendering,
        withoutConversationId: true,
        contactId: 'c-8',
      });
      assert.equal(
        fieldOf(() => convert('conversation.closed', none.data)),
        'data.conversation_id',
        `${rendering}: contact_id does not name a session`,
      );
    }
  });

  it('a documented enum with another value is refused, naming the field; unknown fields are ignored', () => {
    const newer = webhookBodies.closed({ organizationId: ORG, sessionId: 's-9', rendering: 'newer' });
    assert.equal(
      fieldOf(() =>
        convert('conversation.closed', { ...(newer.data as object), human_resolution_status: 'maybe' }),
      ),
      'data.human_resolution_status',
    );
    const older = (
      webhookBodies.closed({ organizationId: ORG, sessionId: 's-9', rendering: 'older' }).data as object[]
    )[0]!;
    assert.equal(
      fieldOf(() => convert('conversation.closed', [{ ...older, resolution_status: 'maybe' }])),
      'data.resolution_status',
    );
    const { event } = convert('conversation.closed', {
      ...(newer.data as object),
      some_future_field: { deep: [1, 2, 3] },
      closed_by: { type: 'workflow', id: 'wf-1' },
      third_party_name: 'zendesk_v2',
    });
    assert.equal(event.kind, 'closed');
  });

  it('closedResolution: a human verdict, then resolution_status, then the AI verdict, else not_resolved', () => {
    assert.equal(
      closedResolution({ human_resolution_status: 'resolved', resolution_status: 'not_resolved' }),
      'resolved',
    );
    assert.equal(
      closedResolution({ resolution_status: 'resolved', ai_resolution_status: 'not_resolved' }),
      'resolved',
    );
    assert.equal(closedResolution({ ai_resolution_status: 'RESOLVED' }), 'resolved');
    assert.equal(closedResolution({ ai_resolution_status: 'ai_unresolved' }), 'not_resolved');
    assert.equal(closedResolution({ ai_resolution_status: 'non-resolved' }), 'not_resolved');
    assert.equal(closedResolution({}), 'not_resolved');
  });
});

describe('OpenCX events: conversation.handoff_to_human (documented in part)', () => {
  it('the documented fields plus the assumed summary / language / sentiment', () => {
    const body = webhookBodies.handoff({ organizationId: ORG, sessionId: 's-10', sentiment: 'angry' });
    const { sessionId, event } = convert('conversation.handoff_to_human', body.data);
    assert.equal(sessionId, 's-10');
    assert.equal(event.kind, 'handoff');
    if (event.kind !== 'handoff') return;
    assert.equal(event.reason, 'ai_decided_to_handoff_the_conversation');
    assert.equal(event.sentiment, 'angry');
    assert.equal(event.language, 'en');
  });

  it('summary and sentiment from a `handoff` object; conversation_id null without session_id → 400', () => {
    const { event } = convert('conversation.handoff_to_human', {
      session_id: 's-11',
      conversation_id: null,
      handoff: { summary: 'Refund asked', sentiment: 'happy' },
    });
    assert.equal(event.kind === 'handoff' && event.summary, 'Refund asked');
    assert.equal(event.kind === 'handoff' && event.sentiment, 'happy');
    assert.equal(event.timestamp, RECEIVED, 'no time in the body: the time received');
    assert.equal(
      fieldOf(() => convert('conversation.handoff_to_human', { conversation_id: null, reason: 'x' })),
      'data.conversation_id',
    );
  });
});

describe('OpenCX events: message events (body not documented: every plausible shape)', () => {
  const events = [
    ['conversation.contact_response', 'contact', 'customer'],
    ['conversation.ai_response', 'ai', 'ai'],
    ['conversation.agent_response', 'human_agent', 'agent'],
  ] as const;
  for (const [name, , author] of events) {
    for (const shape of ['nested', 'flat', 'history'] as MessageShape[]) {
      it(`${name}, ${shape} body → one message, its id, text and author`, () => {
        const body = webhookBodies.message(name, {
          organizationId: ORG,
          sessionId: 's-12',
          messageId: 'm-1',
          text: 'Where is my parcel?',
          agentName: author === 'agent' ? 'Sam' : undefined,
          shape,
          timestamp: '2026-05-01T10:00:05Z',
        });
        const { sessionId, event } = convert(name, body.data);
        assert.equal(sessionId, 's-12');
        assert.equal(event.kind, 'message');
        if (event.kind !== 'message') return;
        assert.equal(event.messageId, 'm-1');
        assert.equal(event.text, 'Where is my parcel?');
        assert.equal(event.author, author);
        assert.equal(event.timestamp, '2026-05-01T10:00:05.000Z');
        if (author === 'agent' && shape !== 'flat') assert.equal(event.agentName, 'Sam');
      });
    }
  }

  it('other plausible spellings: message as a string with message_id, content as { type, text }, numeric ids, attachments of the history shape', () => {
    const a = convert('conversation.contact_response', {
      conversation_id: 's',
      message: 'hi',
      message_id: 42,
    });
    assert.equal(a.event.kind === 'message' && a.event.messageId, '42');
    assert.equal(a.event.kind === 'message' && a.event.text, 'hi');
    const b = convert('conversation.contact_response', {
      conversation_id: 's',
      message: { id: 'm2', content: { type: 'text', text: 'from content' } },
      attachments: [
        { id: 'f1', name: 'a.pdf', size: 3, type: 'application/pdf', url: 'https://x.test/a.pdf' },
      ],
    });
    assert.equal(b.event.kind === 'message' && b.event.text, 'from content');
    assert.deepEqual(b.event.kind === 'message' && b.event.attachments, [
      { name: 'a.pdf', url: 'https://x.test/a.pdf', mimeType: 'application/pdf' },
    ]);
    const c = convert('conversation.contact_response', {
      conversation_id: 's',
      message: { id: 'm3', attachments: [{ url: 'https://x.test/files/photo%201.jpg' }] },
    });
    assert.deepEqual(c.event.kind === 'message' && c.event.attachments, [
      { name: 'photo 1.jpg', url: 'https://x.test/files/photo%201.jpg' },
    ]);
    assert.equal(c.event.kind === 'message' && c.event.text, '', 'an attachment-only message');
  });

  it('what the bridge cannot work without is required, named: the session, the message id', () => {
    assert.equal(
      fieldOf(() =>
        convert('conversation.contact_response', { conversation_id: 's', message: { text: 'x' } }),
      ),
      'data.message.id',
    );
    assert.equal(
      fieldOf(() => convert('conversation.contact_response', { message: { id: 'm', text: 'x' } })),
      'data.conversation_id',
    );
    assert.equal(
      fieldOf(() =>
        convert('conversation.contact_response', { conversation_id: 'bad id/..', message: { id: 'm' } }),
      ),
      'data.conversation_id',
    );
    assert.equal(
      fieldOf(() =>
        convert('conversation.contact_response', {
          conversation_id: 's',
          message: { id: 'm' },
          timestamp: 1e20,
        }),
      ),
      'data.timestamp',
    );
  });
});

describe('OpenCX events: the ingress schema of each event, as the OpenAPI document shows it', () => {
  it('renders to JSON Schema and accepts an object or an array of objects', () => {
    for (const e of HANDLED_EVENTS) {
      const schema = z.toJSONSchema(eventDataSchemas[e], { io: 'input', unrepresentable: 'any' }) as {
        anyOf?: unknown[];
      };
      assert.equal(schema.anyOf?.length, 2, e);
    }
  });
});
