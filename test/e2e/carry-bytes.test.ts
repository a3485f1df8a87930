/**
 * What continue-as-new carries is measured in UTF-8 bytes (docs/decisions/0023-carry-in-bytes.md):
 * long CJK messages through an outage, a failing clean-up of stored events, and events waiting
 * behind a parked step at the idle timeout.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import { Context } from '@temporalio/activity';
import { ApplicationFailure } from '@temporalio/common';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import type { StoreActivities } from '../../src/activities';
import { createLogger } from '../../src/logger';
import { installRuntime, workflowBundle } from '../../src/worker';
import type { WorkflowHandle } from '@temporalio/client';
import { Worker } from '@temporalio/worker';
import {
  resumeStepUpdate,
  stateQuery,
  type ConversationEvent,
  type ConversationState,
} from '../../src/workflows/contract';
import { jsonBytes, utf8Length } from '../../src/workflows/conversation/spill';
import { Bridge, ev, waitFor } from '../bridge-harness';
import { FakePeers, message, runWithFakes, send } from '../workflow/fake-peers';

type History = Awaited<ReturnType<WorkflowHandle['fetchHistory']>>;

const sid = () => `cb-${randomUUID().slice(0, 10)}`;
/** A text of `n` CJK characters (3 bytes each in UTF-8), tagged so that its order can be read back. */
const cjk = (tag: string, n: number) => `${tag} ${'漢字かな'.repeat(Math.ceil(n / 4)).slice(0, n)}`;
const creatioActivity = (): ConversationEvent => ({
  kind: 'creatio_activity',
  eventId: `ca-${randomUUID()}`,
  timestamp: new Date().toISOString(),
});

/** The store's activities with a clean-up that fails, and a count of reads per chunk. */
class StorePeers extends FakePeers {
  dropFails = false;
  drops = 0;
  /** The runs that tried a clean-up. */
  readonly dropRuns = new Set<string>();
  /** Chunks a clean-up was asked to delete, and chunks read after that (never: they are handled). */
  readonly dropAsked = new Set<string>();
  readonly readAfterDrop: string[] = [];

  override store() {
    const base = super.store();
    return {
      ...base,
      // The list of conversations that need attention (steps.ts): accepted, nothing kept.
      noteAttention: async () => undefined,
      loadSpill: async (input: { workflowId: string; chunk: number }) => {
        const key = `${input.workflowId}:${input.chunk}`;
        if (this.dropAsked.has(key)) this.readAfterDrop.push(key);
        return (base.loadSpill as StoreActivities['loadSpill'])(input);
      },
      dropSpill: async (input: { workflowId: string; chunks: number[] }) => {
        this.drops++;
        this.dropRuns.add(Context.current().info.workflowExecution?.runId ?? '');
        for (const c of input.chunks) this.dropAsked.add(`${input.workflowId}:${c}`);
        if (this.dropFails) throw ApplicationFailure.nonRetryable('the store is down', 'StoreDown');
        for (const c of input.chunks) this.spill.delete(`${input.workflowId}:${c}`);
      },
    };
  }
}

/**
 * Holds each conversation's first write of stored events (continue-as-new storing its surplus)
 * until `release()`. `storing(workflowId)` resolves once that write has begun.
 */
function holdFirstSpills(peers: StorePeers) {
  const began = new Map<string, { promise: Promise<void>; resolve: () => void }>();
  const entry = (workflowId: string) => {
    let e = began.get(workflowId);
    if (!e) {
      let resolve!: () => void;
      e = { promise: new Promise<void>((r) => (resolve = r)), resolve };
      began.set(workflowId, e);
    }
    return e;
  };
  const held = new Set<string>();
  let release!: () => void;
  const released = new Promise<void>((r) => (release = r));
  const store = peers.store.bind(peers);
  peers.store = () => {
    const base = store();
    return {
      ...base,
      spillEvents: async (input: Parameters<StoreActivities['spillEvents']>[0]) => {
        if (!held.has(input.workflowId)) {
          held.add(input.workflowId);
          entry(input.workflowId).resolve();
          await released;
        }
        return (base.spillEvents as StoreActivities['spillEvents'])(input);
      },
    };
  };
  return { storing: (workflowId: string) => entry(workflowId).promise, release };
}

describe('utf8Length', () => {
  it('counts UTF-8 bytes as Buffer does (ASCII, accents, CJK, surrogate pairs, lone surrogates)', () => {
    for (const s of ['', 'hello', 'café', '漢字', '😀 ok', 'a\u0000b', 'x\ud800y', '\udc00', 'z\ud83d']) {
      assert.equal(utf8Length(s), Buffer.byteLength(s, 'utf8'), JSON.stringify(s));
    }
    assert.equal(jsonBytes({ t: '漢' }), Buffer.byteLength(JSON.stringify({ t: '漢' })));
  });
});

describe('continue-as-new carries at most its byte budget (activities faked)', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    installRuntime(createLogger(process.env.TEST_LOG_LEVEL ?? 'warn'));
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: process.env.TEMPORAL_ADDRESS! });
  });
  after(() => env.teardown());

  const state = (workflowId: string) => env.client.workflow.getHandle(workflowId).query(stateQuery);

  /** The conversation's runs, first to current (each run names the one it continued). */
  async function runsOf(workflowId: string): Promise<History[]> {
    const runs: History[] = [];
    let runId: string | undefined = (await env.client.workflow.getHandle(workflowId).describe()).runId;
    while (runId) {
      const h: History = await env.client.workflow.getHandle(workflowId, runId).fetchHistory();
      runs.unshift(h);
      runId = h.events?.[0]?.workflowExecutionStartedEventAttributes?.continuedExecutionRunId || undefined;
    }
    return runs;
  }

  /** Sizes of every continue-as-new input of the conversation's runs so far, in bytes. */
  async function carriedSizes(workflowId: string): Promise<number[]> {
    return (await runsOf(workflowId)).flatMap((h) =>
      (h.events ?? []).flatMap((e) => {
        const a = e.workflowExecutionContinuedAsNewEventAttributes;
        return a ? [(a.input?.payloads ?? []).reduce((n, p) => n + (p.data?.length ?? 0), 0)] : [];
      }),
    );
  }

  /**
   * The conversation's first run continued as new (a refused continue-as-new ends the execution
   * instead), every input under the budget, and the new run parked again on the refused write.
   */
  async function continuedUnderBudget(workflowId: string, first: string): Promise<void> {
    const handle = env.client.workflow.getHandle(workflowId);
    const d = await waitFor('a new run', async () => {
      const x = await handle.describe();
      return x.runId !== first || x.status.name !== 'RUNNING' ? x : undefined;
    });
    const firstRun = await env.client.workflow.getHandle(workflowId, first).describe();
    assert.equal(firstRun.status.name, 'CONTINUED_AS_NEW', `the first run ended ${firstRun.status.name}`);
    assert.equal(d.status.name, 'RUNNING');
    const sizes = await carriedSizes(workflowId);
    assert.ok(sizes.length > 0);
    for (const n of sizes) assert.ok(n <= 1_000_000 + 1_000, `continue-as-new input of ${n} bytes`);
    await waitFor(
      'parked again in the new run',
      async () => (await state(workflowId)).lastError?.parked === true,
    );
  }

  /**
   * Every run of the conversation replays against the current code (timers between reads included).
   * A run whose first workflow task has not completed yet has no commands to check, and the SDK's
   * replay of such a history never returns: it is skipped (the newest run can be one, just continued).
   */
  async function replays(workflowId: string): Promise<void> {
    const bundle = await workflowBundle(process.env.WORKFLOW_BUNDLE);
    const runs = (await runsOf(workflowId)).filter((h) =>
      (h.events ?? []).some((e) => e.workflowTaskCompletedEventAttributes),
    );
    assert.ok(runs.length >= 2, `${runs.length} run(s) with a completed workflow task to replay`);
    for (const h of runs) {
      await Worker.runReplayHistory({ workflowBundle: bundle }, h, workflowId);
    }
  }

  it('handoff-only, Creatio refusing: 8 messages of 100,000 CJK characters (under the old 512,000-character budget, ~3 MB carried) continue-as-new under 1 MB, then all are written once, in order', async () => {
    const peers = new StorePeers();
    peers.handoffOnly = true;
    peers.refuse = () => true;
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const o = { maxHistoryEvents: 100 };
      const texts = Array.from({ length: 8 }, (_, i) => cjk(`big ${i}`, 100_000));
      const id = await send(
        env,
        tq,
        s,
        texts.map((t, i) => message(`b${i}`, t)),
        o,
      );
      await waitFor('the first message taken', async () => (await state(id)).messages.received >= 1);
      const first = (await env.client.workflow.getHandle(id).describe()).runId;
      // Calls from Creatio's process (only one waits at a time) grow the history until it continues.
      const handle = env.client.workflow.getHandle(id);
      for (let i = 0; i < 300 && (await handle.describe()).runId === first; i++)
        await send(env, tq, s, [creatioActivity()], o);
      await continuedUnderBudget(id, first);
      peers.refuse = null;
      await env.client.workflow.getHandle(id).executeUpdate(resumeStepUpdate);
      await waitFor('all 8 written', () => peers.texts(`case-${s}`).length === 8, 60_000);
      assert.deepEqual(peers.texts(`case-${s}`), texts);
      assert.deepEqual(peers.readAfterDrop, []);
      await replays(id);
    });
  });

  it('events that come in while continue-as-new stores the surplus are measured too, and wait behind it: every input under the budget, every message once, in order', async () => {
    const peers = new StorePeers();
    peers.handoffOnly = true;
    peers.refuse = () => true;
    // The first write of stored events outlasts the workflow task's heartbeat (0.8 × its 2 s
    // timeout): the worker completes the task meanwhile, and the messages sent during the write
    // reach the run before continue-as-new, after the surplus was measured.
    const hold = holdFirstSpills(peers);
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const o = { maxHistoryEvents: 100 };
      const texts = Array.from({ length: 10 }, (_, i) => cjk(`late ${i}`, 100_000));
      const sendAll = (from: number, to: number) =>
        send(
          env,
          tq,
          s,
          texts.slice(from, to).map((t, i) => message(`l${from + i}`, t)),
          o,
          '2s',
        );
      const id = await sendAll(0, 4);
      await waitFor('the first message taken', async () => (await state(id)).messages.received >= 1);
      const handle = env.client.workflow.getHandle(id);
      const first = (await handle.describe()).runId;
      // Calls from Creatio's process grow the history until it continues as new.
      let spilled = false;
      void hold.storing(id).then(() => (spilled = true));
      for (let i = 0; i < 300 && !spilled; i++) await send(env, tq, s, [creatioActivity()], o);
      await hold.storing(id);
      await sendAll(4, 10); // six messages of ~300 kB: 1.8 MB, while the first chunk is written
      await sleep(2_500); // past the task's heartbeat, with the write still held
      hold.release();
      await continuedUnderBudget(id, first);
      peers.refuse = null;
      await handle.executeUpdate(resumeStepUpdate);
      await waitFor('all 10 written', () => peers.texts(`case-${s}`).length === 10, 60_000);
      assert.deepEqual(peers.texts(`case-${s}`), texts);
      await replays(id);
    });
  });

  it('four conversations continue as new at once, each first write held past the heartbeat: every input under the budget, every message once, in order', async () => {
    const peers = new StorePeers();
    peers.handoffOnly = true;
    peers.refuse = () => true;
    const hold = holdFirstSpills(peers);
    await runWithFakes(env, peers, async (tq) => {
      const o = { maxHistoryEvents: 100 };
      const conversations = Array.from({ length: 4 }, (_, c) => ({
        s: sid(),
        texts: Array.from({ length: 8 }, (_, i) => cjk(`many ${c}.${i}`, 100_000)),
      }));
      const sendSome = (x: (typeof conversations)[number], from: number, to: number) =>
        send(
          env,
          tq,
          x.s,
          x.texts.slice(from, to).map((t, i) => message(`m${from + i}`, t)),
          o,
          '2s',
        );
      const ids = await Promise.all(conversations.map((x) => sendSome(x, 0, 3)));
      const firsts = await Promise.all(
        ids.map(async (id) => {
          await waitFor('the first message taken', async () => (await state(id)).messages.received >= 1);
          return (await env.client.workflow.getHandle(id).describe()).runId;
        }),
      );
      // Calls from Creatio's process grow every history until each run stores its surplus.
      await Promise.all(
        conversations.map(async (x, c) => {
          let spilled = false;
          void hold.storing(ids[c]!).then(() => (spilled = true));
          for (let i = 0; i < 300 && !spilled; i++) await send(env, tq, x.s, [creatioActivity()], o);
          await hold.storing(ids[c]!);
        }),
      );
      // Five messages of ~300 kB to each (6 MB in all) while every first chunk is written.
      await Promise.all(conversations.map((x) => sendSome(x, 3, 8)));
      await sleep(2_500); // past the tasks' heartbeat, with the writes still held
      hold.release();
      for (const [c, id] of ids.entries()) await continuedUnderBudget(id, firsts[c]!);
      peers.refuse = null;
      await Promise.all(ids.map((id) => env.client.workflow.getHandle(id).executeUpdate(resumeStepUpdate)));
      for (const x of conversations) {
        await waitFor(`all 8 of ${x.s} written`, () => peers.texts(`case-${x.s}`).length >= 8, 60_000);
        assert.deepEqual(peers.texts(`case-${x.s}`), x.texts);
      }
      for (const id of ids) await replays(id);
    });
  });

  it('a clean-up of stored events that fails is not fatal: the runs go on, no chunk left behind is read again, and the end says what was left', async () => {
    const peers = new StorePeers();
    peers.refuse = (t) => t.startsWith('big 0');
    peers.dropFails = true;
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const o = { maxHistoryEvents: 40 };
      // ASCII: over the old character budget too, so that runs without `carry-bytes` store them as well.
      const texts = Array.from({ length: 8 }, (_, i) => `big ${i} ${'x'.repeat(100_000)}`);
      const id = await send(
        env,
        tq,
        s,
        texts.map((t, i) => message(`c${i}`, t)),
        o,
      );
      for (let i = 0; i < 300 && (await state(id)).runs === 1; i++)
        await send(env, tq, s, [creatioActivity()], o);
      await waitFor('a new run', async () => (await state(id)).runs > 1, 30_000);
      await waitFor('parked again in the new run', async () => (await state(id)).lastError?.parked === true);
      peers.refuse = null;
      await env.client.workflow.getHandle(id).executeUpdate(resumeStepUpdate);
      await waitFor('all 8 written', () => peers.texts(`case-${s}`).length === 8, 60_000);
      // Positive control: chunks were read back, and a later continue-as-new tried to delete them.
      for (let i = 0; i < 300 && peers.drops === 0; i++) await send(env, tq, s, [creatioActivity()], o);
      await waitFor('a clean-up tried', () => peers.drops > 0, 30_000);
      const runsThen = (await state(id)).runs;
      for (let i = 0; i < 300 && (await state(id)).runs === runsThen; i++)
        await send(env, tq, s, [creatioActivity()], o);
      // Every run that met the failed clean-up goes on (a fatal clean-up ends its run FAILED).
      const ended = async () => {
        const all = await Promise.all(
          [...peers.dropRuns].map(
            async (r) => (await env.client.workflow.getHandle(id, r).describe()).status.name,
          ),
        );
        return all.filter((st) => st !== 'CONTINUED_AS_NEW' && st !== 'RUNNING');
      };
      await waitFor(
        'one more run after the failed clean-up (or its run ended)',
        async () => (await ended()).length > 0 || (await state(id)).runs > runsThen,
      );
      assert.deepEqual(await ended(), [], 'runs that tried the clean-up');
      assert.deepEqual(peers.texts(`case-${s}`), texts);
      assert.ok(peers.dropAsked.size > 0, 'events over the budget went to the store, and were read back');
      assert.deepEqual(peers.readAfterDrop, [], 'a chunk left in the store is never read again');
      const drops = peers.drops;
      // The end: closed, the clean-up tried again (and failing), the result says so.
      await send(
        env,
        tq,
        s,
        [
          {
            kind: 'closed',
            eventId: `cl-${randomUUID()}`,
            timestamp: new Date().toISOString(),
            resolution: 'not_resolved',
            summary: '',
            language: 'en',
            sentiment: 'neutral',
          },
        ],
        o,
      );
      const result = (await env.client.workflow.getHandle(id).result()) as ConversationState;
      assert.equal(result.status, 'closed');
      assert.ok(peers.drops > drops, 'tried again at the end');
      await replays(id);
      assert.ok(
        result.notes.some((n) => /could not be deleted from the store/.test(n.message)),
        JSON.stringify(result.notes),
      );
    });
  });

  it('without failures the chunks read are deleted at the next continue-as-new', async () => {
    const peers = new StorePeers();
    peers.refuse = (t) => t.startsWith('big 0');
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const o = { maxHistoryEvents: 40 };
      const texts = Array.from({ length: 6 }, (_, i) => cjk(`big ${i}`, 100_000));
      const id = await send(
        env,
        tq,
        s,
        texts.map((t, i) => message(`d${i}`, t)),
        o,
      );
      for (let i = 0; i < 300 && (await state(id)).runs === 1; i++)
        await send(env, tq, s, [creatioActivity()], o);
      await waitFor('a new run', async () => (await state(id)).runs > 1, 30_000);
      await waitFor('parked again', async () => (await state(id)).lastError?.parked === true);
      peers.refuse = null;
      await env.client.workflow.getHandle(id).executeUpdate(resumeStepUpdate);
      await waitFor('all 6 written', () => peers.texts(`case-${s}`).length === 6, 60_000);
      const emptied = () => [...peers.spill.keys()].every((k) => !k.startsWith(`${id}:`));
      for (let i = 0; i < 300 && !emptied(); i++) await send(env, tq, s, [creatioActivity()], o);
      await waitFor('the store emptied', emptied, 30_000);
      assert.ok(peers.drops > 0);
      await replays(id);
    });
  });
});

describe('25 messages of 90,000 CJK characters through a Creatio outage, across continue-as-new (end to end)', () => {
  const bridge = new Bridge({ conversation: { maxHistoryEvents: 60 } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('every message is logged once, in order, after the outage; the run continued-as-new', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    bridge.emu.setFaults({ outage: 'http503' });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    const texts = Array.from({ length: 25 }, (_, i) => cjk(`cjk ${i + 1}`, 90_000));
    for (const [i, t] of texts.entries()) {
      const r = await bridge.send(orgId, 'conversation.contact_response', ev.message(s, `k${i + 1}`, t));
      assert.ok(r.status < 300, JSON.stringify(r.body));
    }
    // Watched through describe and the emulator, not the state query: a query replays this 7 MB
    // history when the workflow is not cached, which on a loaded machine can outlast its deadline.
    const handle = bridge.client.workflow.getHandle(`conversation:${orgId}:${s}`);
    await waitFor(
      'a new run during the outage',
      async () => {
        const d = await handle.describe();
        const first = d.raw.workflowExecutionInfo?.firstRunId;
        assert.ok(first, 'the server names the first run');
        return d.runId !== first;
      },
      180_000,
    ).catch(async (err: Error) => {
      // Where the run stands (seen once under load in a full run): its last events and what waits.
      const events = (await handle.fetchHistory()).events ?? [];
      const tail = events.slice(-25).map((e) => {
        const failed = e.workflowTaskFailedEventAttributes;
        return `${String(e.eventId)} ${e.eventType}${failed ? ` ${failed.cause}: ${failed.failure?.message}` : ''}`;
      });
      const d = await handle.describe();
      const pending = (d.raw.pendingActivities ?? []).map((p) => `${p.activityType?.name} #${p.attempt}`);
      throw new Error(
        `${err.message}; ${events.length} events, pending [${pending.join(', ')}], last:\n${tail.join('\n')}`,
      );
    });
    assert.equal(bridge.emu.rows('Case').length, 0, 'nothing reached Creatio during the outage');
    bridge.emu.setFaults({ outage: false });
    const caseId = await bridge.caseOf(orgId, s, 60_000);
    const cjkLogged = () => bridge.activitiesOf(caseId).filter((a) => /cjk \d+/.test(String(a.Title))).length;
    await waitFor('all 25 logged', () => cjkLogged() >= 25, 180_000);
    const logged = bridge
      .activitiesOf(caseId)
      .map((a) => /cjk (\d+)/.exec(String(a.Title))?.[1])
      .filter((n): n is string => n !== undefined)
      .map(Number);
    assert.deepEqual(
      logged,
      Array.from({ length: 25 }, (_, i) => i + 1),
    );
  });
});

describe('the idle timeout while a step is parked keeps the events waiting (end to end)', () => {
  const bridge = new Bridge({ conversation: { idleTimeout: '4s', parkedRetryEvery: '1h' } });
  before(() => bridge.start());
  after(() => bridge.close());

  it('the run finishes, its state says how many events wait and why; the next event resumes it and they are logged first, in order', async () => {
    const orgId = await bridge.connectOrg();
    const s = sid();
    bridge.emu.setFaults({
      rejectWrite: (set, v) =>
        set === 'Activity' && String(v.Title).includes('POISON') ? 'Column "Title" refused' : null,
    });
    await bridge.send(orgId, 'conversation.started', ev.started(s));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'w0', 'first ok'));
    const caseId = await bridge.caseOf(orgId, s);
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'w1', 'POISON then'));
    await waitFor('parked', async () => (await bridge.session(orgId, s)).body?.lastError?.parked === true);
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'w2', 'waiting two'));
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'w3', 'waiting three'));
    const result = await bridge.result(orgId, s, 30_000);
    assert.equal(result.status, 'closed');
    assert.equal(result.waiting?.events, 3, JSON.stringify(result.waiting));
    assert.match(result.waiting!.reason, /idle timeout came while the step 'log message w1' was parked/);
    assert.ok(result.notes.some((n: { message: string }) => /3 events kept in the store/.test(n.message)));
    const kept = await bridge.store.db.query<{ n: string }>(
      'SELECT count(*) AS n FROM conversation_spill WHERE workflow_id = $1',
      [result.workflowId],
    );
    assert.ok(Number(kept[0]!.n) >= 2, 'the events and their list are in the store');

    const finished = (await bridge.handle(orgId, s).describe()).runId;
    bridge.emu.setFaults({ rejectWrite: null });
    await bridge.send(orgId, 'conversation.contact_response', ev.message(s, 'w4', 'after the resume'));
    const st = await waitFor(
      'the kept events and the new one logged',
      async () => {
        const b = (await bridge.session(orgId, s)).body;
        return b?.messages?.logged === 4 ? b : undefined;
      },
      60_000,
    );
    assert.ok(st.notes.some((n: { message: string }) => /3 events kept when the step/.test(n.message)));
    const titles = bridge.activitiesOf(caseId).map((a) => String(a.Title));
    const order = ['first ok', 'POISON then', 'waiting two', 'waiting three', 'after the resume'].map(
      (t) => titles.filter((x) => x.includes(t)).length,
    );
    assert.deepEqual(order, [1, 1, 1, 1, 1], JSON.stringify(titles));
    const at = (t: string) => titles.findIndex((x) => x.includes(t));
    assert.ok(at('POISON then') < at('waiting two') && at('waiting two') < at('waiting three'));
    assert.ok(at('waiting three') < at('after the resume'));
    // Both executions replay against the current code.
    const bundle = await workflowBundle(process.env.WORKFLOW_BUNDLE);
    const resumed = (await bridge.handle(orgId, s).describe()).runId;
    for (const runId of [finished, resumed]) {
      const history = await bridge.client.workflow.getHandle(result.workflowId, runId).fetchHistory();
      await Worker.runReplayHistory(
        { workflowBundle: bundle, dataConverter: { payloadCodecs: [bridge.codec] } },
        history,
        result.workflowId,
      );
    }
  });
});
