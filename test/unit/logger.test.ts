import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { createLogger, prettyStream, prettyWanted } from '../../src/logger';

describe('log format', () => {
  it('is human-readable on a terminal in development, JSON in production or when piped', () => {
    assert.equal(prettyWanted('auto', 'development', true), true);
    assert.equal(prettyWanted('auto', 'development', false), false);
    assert.equal(prettyWanted('auto', 'production', true), false);
    assert.equal(prettyWanted('pretty', 'production', false), true);
    assert.equal(prettyWanted('json', 'development', true), false);
  });

  it('pretty lines carry the message and fields, and secrets stay redacted', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (d: Buffer) => (text += d.toString()));
    const log = createLogger('info', prettyStream(out, false));
    log.info(
      { orgId: 'acme', settings: { clientSecret: 's3cret-value' }, url: '/webhooks/creatio/tok_abcdef' },
      'Creatio integration saved',
    );
    assert.match(text, /INFO.*Creatio integration saved/);
    assert.match(text, /orgId: "acme"/);
    assert.doesNotMatch(text, /s3cret-value|tok_abcdef/);
    assert.doesNotMatch(text, /^\{/, 'not a JSON line');
  });
});
