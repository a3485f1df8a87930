/**
 * The bridge against Creatio's own configuration (src/sandbox/emulators/creatio-model.json,
 * extracted from Creatio's configuration source by scripts/creatio-oracle.ts): every name the
 * bridge uses exists there, and a request naming anything else is caught. Every request the test
 * suite's emulators receive goes through the same check (test/run.ts fails the suite on any).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { plainText } from '../../src/activities/agent-replies';
import { BRIDGE_MODEL, CREATIO_IDS } from '../../src/creatio/model';
import { nonConformance } from '../../src/sandbox/emulators/creatio-conformance';
import { CREATIO_MODEL } from '../../src/sandbox/emulators/creatio-schema';

const q = (s: string) => new URLSearchParams(s);

describe("Creatio conformance: the bridge's names against Creatio's configuration", () => {
  it('the fixture says where it comes from, and that there is no MessageType', () => {
    const src = CREATIO_MODEL.source;
    assert.match(String(src.repository), /CreatioDemoProject/);
    assert.match(String(src.commit), /^[0-9a-f]{40}$/);
    assert.equal(CREATIO_MODEL.entityExists.MessageType, false);
    const messageType = CREATIO_MODEL.entities.Activity!.columns.MessageTypeId!;
    assert.equal(messageType.target, 'EmailType');
  });

  it('the reply read of the last release is reported: MessageType is not an entity set', () => {
    const problems = nonConformance(
      'GET',
      'MessageType',
      q("$select=Id,Name&$filter=Name eq 'Outgoing'"),
      '',
    );
    assert.deepEqual(problems, ['Creatio has no entity set "MessageType"']);
  });

  it('unknown columns in $select, $filter, $orderby and bodies, and literals of the wrong type, are reported', () => {
    assert.match(
      nonConformance('GET', 'Activity', q('$select=Id,Recipient'), '').join(),
      /no column "Recipient"/,
    );
    assert.match(
      nonConformance('GET', 'Case', q("$filter=StatusId eq 'x'"), '').join(),
      /incompatible types/,
    );
    assert.match(nonConformance('GET', 'Case', q('$orderby=Created asc'), '').join(), /no column "Created"/);
    assert.match(
      nonConformance('POST', 'Case', q(''), JSON.stringify({ Subject: 's', Description: 'd' })).join(),
      /no column "Description"/,
    );
    assert.match(
      nonConformance('PATCH', 'Case(1)', q(''), JSON.stringify({ StatusId: 7 })).join(),
      /cannot take/,
    );
    assert.deepEqual(
      nonConformance('GET', 'ActivityFile(00000000-0000-0000-0000-000000000001)/Data', q(''), ''),
      [],
    );
  });

  it('every entity set and column the bridge uses is in Creatio’s configuration', () => {
    for (const [entity, use] of Object.entries(BRIDGE_MODEL)) {
      const e = CREATIO_MODEL.entities[entity];
      assert.ok(e, `Creatio has no entity ${entity}`);
      for (const col of [...use.required, ...use.optional]) {
        assert.ok(e.columns[col], `Creatio has no column ${entity}.${col}`);
      }
    }
  });

  it('every out-of-the-box id the bridge relies on is one of Creatio’s own constants', () => {
    const ids = (set: string) => new Set((CREATIO_MODEL.constants[set] ?? []).map((r) => r.Id));
    for (const id of Object.values(CREATIO_IDS.activityType)) assert.ok(ids('ActivityType').has(id), id);
    for (const id of Object.values(CREATIO_IDS.emailType)) assert.ok(ids('EmailType').has(id), id);
    for (const id of Object.values(CREATIO_IDS.emailSendStatus))
      assert.ok(ids('EmailSendStatus').has(id), id);
    assert.ok(ids('ActivityCategory').has(CREATIO_IDS.activityCategoryToDo));
    assert.ok(ids('ActivityStatus').has(CREATIO_IDS.activityStatusCompleted));
  });
});

describe('reply text: linear in its input', () => {
  /** The fastest of a few runs, in ms (the least disturbed by other work on the machine). */
  const time = (input: string) => {
    let best = Infinity;
    for (let i = 0; i < 7; i++) {
      const t = process.hrtime.bigint();
      plainText(input, input.length);
      best = Math.min(best, Number(process.hrtime.bigint() - t) / 1e6);
    }
    return best;
  };

  it('hostile bodies (runs of spaces, &nbsp;, unclosed tags) grow in time as their size does, not as its square', () => {
    const MiB = 1024 * 1024;
    for (const unit of [' ', '&nbsp;', '<', '&', ' \t', '<<>']) {
      const of = (mib: number) => unit.repeat(Math.ceil((mib * MiB) / unit.length));
      time(of(1)); // warm up
      // Four times the input: linear is 4×, quadratic 16× (and minutes at these sizes, not
      // milliseconds), every time. A busy machine can blur one measurement, so up to three rounds
      // are taken: a quadratic scan fails all three.
      const ratios: number[] = [];
      for (let round = 0; round < 3 && !ratios.some((r) => r < 8); round++) {
        // Below a millisecond a ratio measures the clock, not the scan (a body V8 reads in 0.05
        // ms at 1 MiB and 0.4 ms at 4 MiB is linear); a quadratic scan takes seconds here.
        ratios.push(time(of(4)) / Math.max(time(of(1)), 1));
      }
      assert.ok(
        ratios.some((r) => r < 8),
        `${JSON.stringify(unit)}: 4 MiB took ${ratios.map((r) => r.toFixed(2)).join(', ')}× the time of 1 MiB`,
      );
    }
  });

  it('keeps what a customer reads', () => {
    assert.equal(
      plainText('<p>Hello&nbsp;Jane,</p><p>it ships&amp;arrives<br/>today.  </p>a & b <3'),
      'Hello Jane,\nit ships&arrives\ntoday.\na & b <3',
    );
    // A body over the cap is cut before it is read.
    assert.equal(plainText('x'.repeat(10), 4), 'xxxx');
  });
});
