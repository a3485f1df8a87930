/** The same message told through several doors is one message; the same words written twice are two. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Heard, MAX_HEARD, messageFingerprint } from '../../src/workflows/conversation/heard';

const at = '2026-12-01T10:00:00.000Z';
const fp = (text: string, author = 'customer') => messageFingerprint(author, text);

describe('heard: messages recognised by id and by content', () => {
  it('fingerprints ignore whitespace changes, not words or authors; an empty text has none', () => {
    assert.equal(fp('Hello  there\n'), fp('Hello there'));
    assert.notEqual(fp('Hello there'), fp('Hello there!'));
    assert.notEqual(fp('Hello there'), fp('Hello there', 'agent'));
    assert.equal(fp('   '), undefined);
  });

  it('a webhook, then the same message in the history under another id: one message', () => {
    const h = new Heard();
    assert.equal(h.take('w', { id: 'wh-1', fp: fp('yes'), at }), false);
    assert.equal(h.take('h', { id: 'hist-9', fp: fp('yes'), at }), true);
    // and its id is now known: a redelivery of either is the same message
    assert.equal(h.take('h', { id: 'hist-9', fp: fp('yes'), at }), true);
  });

  it('the same words written twice are two messages, through either door', () => {
    const h = new Heard();
    assert.equal(h.take('w', { id: 'a', fp: fp('yes'), at }), false);
    assert.equal(h.take('w', { id: 'b', fp: fp('yes'), at }), false);
    assert.equal(h.take('h', { id: 'x', fp: fp('yes'), at }), true);
    assert.equal(h.take('h', { id: 'y', fp: fp('yes'), at }), true);
    assert.equal(h.take('h', { id: 'z', fp: fp('yes'), at }), false, 'a third, only in the history');
  });

  it('the first message again as a contact_response; the history first, the webhook late', () => {
    const h = new Heard();
    assert.equal(h.take('f', { id: 's:first', fp: fp('hi'), at }), false);
    assert.equal(h.take('w', { id: 'm1', fp: fp('hi'), at }), true);
    assert.equal(h.take('h', { id: 'h1', fp: fp('late one'), at }), false);
    assert.equal(h.take('w', { id: 'm2', fp: fp('late one'), at }), true);
  });

  it("the bridge's own reply is always new; its history item is recognised; so is its echo", () => {
    const h = new Heard();
    assert.equal(h.take('w', { id: 'inbox-1', fp: fp('Thanks!', 'agent'), at }), false);
    assert.equal(h.take('r', { fp: fp('Thanks!', 'agent'), at }), false, 'a reply with the same words');
    assert.equal(h.take('h', { id: 'h1', fp: fp('Thanks!', 'agent'), at }), true);
    assert.equal(h.take('h', { id: 'h2', fp: fp('Thanks!', 'agent'), at }), true);
    assert.equal(h.take('h', { id: 'h3', fp: fp('Thanks!', 'agent'), at }), false);
    const echo = new Heard();
    echo.take('r', { fp: fp('On its way', 'agent'), at });
    assert.equal(echo.take('w', { id: 'agent-response-1', fp: fp('On its way', 'agent'), at }), true);
  });

  it('keeps the most recent entries only, and says up to when it forgot', () => {
    const h = new Heard();
    for (let i = 0; i <= MAX_HEARD; i++) {
      h.take('w', { id: `m${i}`, fp: fp(`m${i}`), at: new Date(Date.parse(at) + i * 1000).toISOString() });
    }
    assert.equal(h.entries.length, MAX_HEARD);
    assert.equal(h.forgottenUpTo, at);
    assert.equal(h.byId('m0'), undefined);
  });

  it('once OpenCX is seen to give webhooks the history ids, a lost "yes" is not taken for a later one', () => {
    let agree = false;
    const h = new Heard(undefined, undefined, () => agree);
    h.take('w', { id: 'h2', fp: fp('yes'), at });
    assert.ok(h.match('h', { id: 'h1', fp: fp('yes') }), 'ids not known to agree: content decides');
    agree = true;
    assert.equal(h.match('h', { id: 'h1', fp: fp('yes') }), undefined, 'h1 is another message');
    assert.ok(h.match('h', { id: 'h2', fp: fp('yes') }), 'h2 is the one taken');
  });

  it('a look claims each entry once: two identical history items match one webhook entry only', () => {
    const h = new Heard();
    h.take('w', { id: 'w1', fp: fp('ok'), at });
    const claimed = new Set<ReturnType<Heard['byId']> & object>();
    const first = h.match('h', { id: 'x1', fp: fp('ok') }, claimed);
    assert.ok(first);
    claimed.add(first);
    assert.equal(h.match('h', { id: 'x2', fp: fp('ok') }, claimed), undefined);
  });
});
