import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { toConversationEvent } from '../../src/opencx/events';
import { Bridge, ev, waitFor } from '../bridge-harness';

const sid = () => `s-${randomUUID().slice(0, 12)}`;

describe('contacts by policy, sizes, escaping (real Temporal, real activities, Creatio emulator)', () => {
  const bridge = new Bridge();
  before(() => bridge.start());
  after(() => bridge.close());

  const caseRow = async (orgId: string, s: string) =>
    bridge.emu.tables.get('Case')!.get(await bridge.caseOf(orgId, s))!;

  async function vip(): Promise<{ id: string; email: string; phone: string }> {
    const email = `vip-${randomUUID().slice(0, 8)}@example.com`;
    const phone = `+1555${Math.floor(Math.random() * 1e7)
      .toString()
      .padStart(7, '0')}`;
    const row = bridge.emu.insert('Contact', { Name: 'Very Important', Email: email, Phone: phone });
    return { id: String(row.Id), email, phone };
  }

  async function converse(orgId: string, contact: Record<string, unknown>, channel = 'web') {
    const s = sid();
    assert.equal(
      (await bridge.send(orgId, 'conversation.started', ev.started(s, contact, channel))).status,
      202,
    );
    assert.equal(
      (await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', 'hello'))).status,
      202,
    );
    return s;
  }

  it('a typed VIP email gets a new Contact by default, the VIP Contact with email_or_phone', async () => {
    const v = await vip();
    const safe = await bridge.connectOrg();
    const settings = await bridge.api.request('GET', `/v1/orgs/${safe}/integrations/creatio`);
    assert.equal(settings.body.contactMatching, 'verified');
    assert.deepEqual(settings.body.verifiedChannels, []);
    const s1 = await converse(safe, { name: 'Mallory', email: v.email });
    const c1 = await caseRow(safe, s1);
    assert.notEqual(c1.ContactId, v.id);
    assert.equal(bridge.emu.tables.get('Contact')!.get(String(c1.ContactId))?.Name, 'Mallory');
    // A second conversation typing the same address does not share that Contact either.
    const s2 = await converse(safe, { name: 'Mallory', email: v.email });
    const c2 = await caseRow(safe, s2);
    assert.notEqual(c2.ContactId, v.id);
    assert.notEqual(c2.ContactId, c1.ContactId);

    const permissive = await bridge.connectOrg({ contactMatching: 'email_or_phone' });
    const s3 = await converse(permissive, { name: 'Mallory', email: v.email });
    assert.equal((await caseRow(permissive, s3)).ContactId, v.id);
  });

  it('"verified": matched on a listed channel by the identifier that channel proves, only', async () => {
    const v = await vip();
    const orgId = await bridge.connectOrg({ verifiedChannels: ['SMS'] });
    const bySms = await converse(orgId, { name: 'V', phone_number: v.phone }, 'sms');
    assert.equal((await caseRow(orgId, bySms)).ContactId, v.id);
    const emailOnSms = await converse(orgId, { name: 'X', email: v.email }, 'sms');
    assert.notEqual((await caseRow(orgId, emailOnSms)).ContactId, v.id);
    const byWeb = await converse(orgId, { name: 'Y', phone_number: v.phone }, 'web');
    assert.notEqual((await caseRow(orgId, byWeb)).ContactId, v.id);
    const never = await bridge.connectOrg({ contactMatching: 'never', verifiedChannels: ['sms'] });
    const s = await converse(never, { name: 'V', phone_number: v.phone }, 'sms');
    assert.notEqual((await caseRow(never, s)).ContactId, v.id);
  });

  it('a 150,000-character message is taken (202) and logged cut, with a note and the session link', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    const long = 'a'.repeat(99_990) + 'b'.repeat(50_010);
    const res = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'm1', long));
    assert.equal(res.status, 202);
    const caseId = await bridge.caseOf(orgId, s);
    const act = await waitFor('the cut message', async () =>
      bridge.activitiesOf(caseId).find((a) => String(a.Title).startsWith('[OpenCX] Customer:')),
    );
    const body = String(act.Body);
    assert.equal(/a+b+/.exec(body)![0].length, 100_000, 'the text kept up to 100,000 characters');
    assert.match(body, /message cut at 100000 characters; full text in OpenCX/);
    assert.match(
      body,
      new RegExp(`<a href="https://platform.open.cx/inbox/${s}">View session in OpenCX</a>`),
    );
  });

  it('60 attachments: the first 50 logged and "and 10 more"; an over-long file name shortened', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    const files = Array.from({ length: 60 }, (_, n) => ({
      name: n === 0 ? `${'n'.repeat(300)}.pdf` : `file-${n}.txt`,
      url: `https://files.example.com/${n}`,
    }));
    const res = await bridge.send(orgId, 'conversation.contact_response', {
      conversation_id: s,
      message: { id: 'm1', text: 'see files', attachments: files },
    });
    assert.equal(res.status, 202);
    const caseId = await bridge.caseOf(orgId, s);
    const act = await waitFor('the message', async () =>
      bridge.activitiesOf(caseId).find((a) => String(a.Title).startsWith('[OpenCX] Customer:')),
    );
    const body = String(act.Body);
    assert.equal((body.match(/<li>/g) ?? []).length, 50);
    assert.match(body, /file-49\.txt/);
    assert.doesNotMatch(body, /file-50\.txt/);
    assert.match(body, /and 10 more attachments; see the session in OpenCX/);
    assert.match(body, new RegExp(`${'n'.repeat(245)}…\\.pdf</a>`));
    assert.doesNotMatch(body, new RegExp('n'.repeat(246)));
  });

  it('OpenCX text lands escaped in Case.Symptoms (case made at handoff, and a case that exists)', async () => {
    const markup = '<img src=x onerror=alert(1)> & "quotes"';
    const handoff = (s: string) => ({ ...ev.handoff(s), summary: markup, reason: '<b>why</b>' });

    const onlyOnHandoff = await bridge.connectOrg({ createCaseOnlyOnHandoff: true });
    const s1 = sid();
    await bridge.send(onlyOnHandoff, 'conversation.started', ev.started(s1));
    await bridge.send(onlyOnHandoff, 'conversation.contact_response', ev.message(s1, 'm1', 'help'));
    await bridge.send(onlyOnHandoff, 'conversation.handoff_to_human', handoff(s1));

    const every = await bridge.connectOrg();
    const s2 = sid();
    await bridge.send(every, 'conversation.started', ev.started(s2));
    await bridge.send(every, 'conversation.contact_response', ev.message(s2, 'm1', 'help'));
    const caseId = await bridge.caseOf(every, s2);
    await bridge.send(every, 'conversation.handoff_to_human', handoff(s2));

    for (const [orgId, s] of [
      [onlyOnHandoff, s1],
      [every, s2],
    ] as const) {
      const id = await bridge.caseOf(orgId, s);
      const symptoms = await waitFor(`the summary on ${s}`, async () => {
        const v = String(bridge.emu.tables.get('Case')!.get(id)!.Symptoms);
        return v.includes('onerror') ? v : undefined;
      });
      assert.doesNotMatch(symptoms, /<img|<b>/);
      assert.match(symptoms, /&lt;img src=x onerror=alert\(1\)&gt; &amp; &quot;quotes&quot;/);
      assert.match(symptoms, /Handoff reason: &lt;b&gt;why&lt;\/b&gt;/);
    }
    assert.ok(caseId);
  });
});

describe('event conversion: sizes', () => {
  it('a long first message is cut with the note in its text; a note URL from OpenCX is never a note', () => {
    const started = toConversationEvent(
      'conversation.started',
      { conversation_id: 's1', first_message: 'x'.repeat(120_000) },
      'e1',
    );
    const first = started.event.kind === 'started' ? started.event.firstMessage?.text : undefined;
    assert.ok(first?.startsWith('x'.repeat(100_000) + '\n\n[message cut at 100000 characters'));
    const msg = toConversationEvent(
      'conversation.contact_response',
      {
        conversation_id: 's1',
        message: { id: 'm', text: 'hi', attachments: [{ url: 'opencx-bridge-note:text-cut' }] },
      },
      'e2',
    );
    assert.deepEqual(msg.event.kind === 'message' && msg.event.attachments.map((a) => a.url), [
      'x-opencx-bridge-note:text-cut',
    ]);
  });
});
