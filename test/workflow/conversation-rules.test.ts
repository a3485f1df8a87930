/**
 * The conversation workflow's rules, one test each, with its activities faked in memory (no
 * emulator, no database) on the test run's Temporal server.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { TestWorkflowEnvironment } from '@temporalio/testing';
import { Worker } from '@temporalio/worker';
import { resumeStepUpdate, stateQuery, type ConversationEvent } from '../../src/workflows/contract';
import { withMode } from '../../src/api/opencx-ingress';
import { createLogger } from '../../src/logger';
import { installRuntime, workflowBundle } from '../../src/worker';
import { CURRENT_FLOW } from '../../src/workflows/conversation/context';
import { CHECK_SPREAD, checkSpread } from '../../src/workflows/conversation/state';
import { WORKFLOW_STACK_TRACE_LIMIT } from '../../src/workflows/stack-trace-limit';
import { waitFor } from '../bridge-harness';
import { FakePeers, message, runWithFakes, send } from './fake-peers';

const sid = () => `wf-${randomUUID().slice(0, 10)}`;
const handoff = (): ConversationEvent => ({
  kind: 'handoff',
  eventId: `h-${randomUUID()}`,
  timestamp: new Date().toISOString(),
  reason: 'user_requested_human',
  summary: 'Customer cannot log in.',
  language: 'en',
  sentiment: 'neutral',
});

describe('conversation workflow rules (activities faked)', () => {
  let env: TestWorkflowEnvironment;
  before(async () => {
    installRuntime(createLogger(process.env.TEST_LOG_LEVEL ?? 'warn'));
    env = await TestWorkflowEnvironment.createFromExistingServer({ address: process.env.TEMPORAL_ADDRESS! });
  });
  after(() => env.teardown());

  const state = (workflowId: string) => env.client.workflow.getHandle(workflowId).query(stateQuery);

  it('order: messages are written in the order they arrived, each once', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const texts = Array.from({ length: 30 }, (_, i) => `m${i}`);
      await send(
        env,
        tq,
        s,
        texts.map((t) => message(t, t)),
      );
      await waitFor('30 written', () => peers.texts(`case-${s}`).length === 30);
      assert.deepEqual(peers.texts(`case-${s}`), texts);
    });
  });

  it('a new conversation: its case, the session link and the first message in one first try', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [message('a', 'hello')]);
      await waitFor('the first message written', () => peers.texts(`case-${s}`).length === 1);
      assert.deepEqual(
        peers.written.filter((w) => w.caseId === `case-${s}`).map((w) => w.key),
        ['session_link', 'message:a'],
      );
      // An event of an earlier release brings no mode: the organization's is read from the store.
      assert.deepEqual(Object.fromEntries(peers.calls), { getConversationSettings: 1, openCase: 1 });
      // A worker that meets this history again (restart, cache eviction, a query) replays it.
      await send(env, tq, s, [message('b', 'again')]);
      await waitFor('the second message written', () => peers.texts(`case-${s}`).length === 2);
      const history = await env.client.workflow.getHandle(id).fetchHistory();
      await Worker.runReplayHistory(
        { workflowBundle: await workflowBundle(process.env.WORKFLOW_BUNDLE) },
        history,
        id,
      );
    });
  });

  it("the mode an event brings is the organization's: no store read before the case", async () => {
    const peers = new FakePeers();
    peers.handoffOnly = true; // what the store would say, were it asked
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [withMode(message('a', 'hello'), false)]);
      await waitFor('the first message written', () => peers.texts(`case-${s}`).length === 1);
      assert.deepEqual(Object.fromEntries(peers.calls), { openCase: 1 });
      assert.equal((await state(id)).mode, 'every_conversation');
      // A conversation that starts with its first message (conversation.started) takes it too.
      const f = sid();
      await send(env, tq, f, [
        withMode(
          {
            kind: 'started',
            eventId: `st-${f}`,
            timestamp: new Date().toISOString(),
            contact: { name: 'Ann' },
            channel: 'web',
            firstMessage: { id: 'first', text: 'from the start' },
          },
          false,
        ),
      ]);
      await waitFor('the started first message written', () => peers.texts(`case-${f}`).length === 1);
      assert.deepEqual(Object.fromEntries(peers.calls), { openCase: 2 });

      // Handoff-only, as the events say: messages wait for the handoff, and the store is never asked.
      const h = sid();
      const hid = await send(env, tq, h, [
        withMode(message('1', 'one'), true),
        withMode(message('2', 'two'), true),
      ]);
      await waitFor(
        'two received (positive control)',
        async () => (await state(hid)).messages.received === 2,
      );
      assert.equal((await state(hid)).caseId, null);
      assert.equal((await state(hid)).mode, 'handoff_only');
      await send(env, tq, h, [withMode(handoff(), true)]);
      await waitFor('the handoff note', () =>
        peers.written.some((w) => w.caseId === `case-${h}` && w.entry.kind === 'handoff_note'),
      );
      assert.deepEqual(peers.texts(`case-${h}`), ['one', 'two']);
      assert.equal(peers.calls.get('getConversationSettings'), undefined);
      // Both histories replay.
      for (const wid of [id, hid]) {
        const history = await env.client.workflow.getHandle(wid).fetchHistory();
        await Worker.runReplayHistory(
          { workflowBundle: await workflowBundle(process.env.WORKFLOW_BUNDLE) },
          history,
          wid,
        );
      }
    });
  });

  it('a first try that opened the case and then failed: the durable steps write the rest, each once, in order', async () => {
    const peers = new FakePeers();
    peers.openCaseFailsAfter = 1; // the case and the session link are in; "one" failed
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const texts = ['one', 'two', 'three', 'four', 'five', 'six'];
      await send(
        env,
        tq,
        s,
        texts.map((t) => message(t, t)),
      );
      await waitFor('all six written', () => peers.texts(`case-${s}`).length === 6);
      assert.deepEqual(peers.texts(`case-${s}`), texts);
      assert.equal(
        peers.written.filter((w) => w.key === 'session_link' && w.caseId === `case-${s}`).length,
        1,
      );
      assert.equal(peers.cases.size, 1);
      assert.equal(peers.calls.get('openCase'), 1);
      assert.equal(peers.calls.get('ensureCase'), 1, 'the durable step finds the case the first try made');
    });
  });

  it('dedupe: a message delivered again (new event, same message id) is written once', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [
        message('a', 'first'),
        message('a', 'first'),
        message('b', 'second'),
      ]);
      await waitFor('the later message written (positive control)', () =>
        peers.texts(`case-${s}`).includes('second'),
      );
      assert.deepEqual(peers.texts(`case-${s}`), ['first', 'second']);
      assert.equal((await state(id)).messages.received, 2);
    });
  });

  it('handoff-only: nothing is written before handoff, then the case with the whole transcript', async () => {
    const peers = new FakePeers();
    peers.handoffOnly = true;
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [message('1', 'one'), message('2', 'two'), message('3', 'three')]);
      await waitFor(
        'three received (positive control)',
        async () => (await state(id)).messages.received === 3,
      );
      assert.equal((await state(id)).caseId, null);
      assert.equal(peers.cases.size, 0);
      await send(env, tq, s, [handoff()]);
      await waitFor('the handoff note', () => peers.written.some((w) => w.entry.kind === 'handoff_note'));
      assert.deepEqual(peers.texts(`case-${s}`), ['one', 'two', 'three']);
      assert.match(peers.cases.get(`case-${s}`)!.description, /Customer cannot log in/);
    });
  });

  it('parking: a write refused for good parks, shows in the state, and goes on after resume', async () => {
    const peers = new FakePeers();
    peers.refuse = (text) => text === 'poison';
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [message('1', 'ok'), message('2', 'poison'), message('3', 'after')]);
      const parked = await waitFor('parked', async () => (await state(id)).lastError);
      assert.equal(parked.type, 'CreatioForbiddenError');
      assert.equal(parked.parked, true);
      assert.deepEqual(peers.texts(`case-${s}`), ['ok']);
      peers.refuse = null;
      await env.client.workflow.getHandle(id).executeUpdate(resumeStepUpdate);
      await waitFor('all three', () => peers.texts(`case-${s}`).length === 3);
      assert.deepEqual(peers.texts(`case-${s}`), ['ok', 'poison', 'after']);
      assert.equal((await state(id)).lastError, null);
    });
  });

  it('continue-as-new: the next run carries the case, the counts and the ids already seen', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const o = { maxHistoryEvents: 20 };
      const first = Array.from({ length: 25 }, (_, i) => message(`m${i}`, `t${i}`));
      const id = await send(env, tq, s, first, o);
      await waitFor('25 written', () => peers.texts(`case-${s}`).length === 25);
      await waitFor('a later run', async () => (await state(id)).runs > 1);
      // m3 again (a redelivery after continue-as-new), then a new message as the sentinel.
      await send(env, tq, s, [message('m3', 't3'), message('m25', 't25')], o);
      await waitFor('the sentinel', () => peers.texts(`case-${s}`).includes('t25'));
      assert.deepEqual(
        peers.texts(`case-${s}`),
        Array.from({ length: 26 }, (_, i) => `t${i}`),
      );
      const st = await state(id);
      assert.equal(st.caseId, `case-${s}`);
      assert.equal(st.messages.received, 26);
      assert.equal(st.messages.logged, 26);
      assert.equal(
        (peers.calls.get('ensureCase') ?? 0) + (peers.calls.get('openCase') ?? 0),
        1,
        'the case is made once, by the first run',
      );
      assert.equal(peers.calls.get('openCase'), 1, 'with its first messages, in one first try');
    });
  });
  it('a new run records one patch, and waits its own share longer for its checks', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      // The reply check comes first: the history check and the idle timeout are an hour away.
      const o = { replyCheckEvery: '10 minutes', historyCheckAfter: '1 hour', idleTimeout: '2h' } as const;
      const ids = await Promise.all(
        [sid(), sid()].map((s) => send(env, tq, s, [withMode(message('a', 'hello'), false)], o)),
      );
      await waitFor('both first messages written', () => peers.written.length >= 4);
      const quiet = (id: string) => async () => {
        const d = await env.client.workflow.getHandle(id).describe();
        return !d.raw.pendingWorkflowTask && d.raw.pendingActivities?.length === 0;
      };
      for (const id of ids) await waitFor(`${id} idle`, quiet(id));
      const waits: number[] = [];
      for (const id of ids) {
        const history = await env.client.workflow.getHandle(id).fetchHistory();
        const events = history.events ?? [];
        const patches = events
          .map((e) => e.markerRecordedEventAttributes)
          .filter((m) => m?.markerName === 'core_patch')
          .map((m) => JSON.parse(Buffer.from(m!.details!['patch-data']!.payloads![0]!.data!).toString()).id);
        assert.deepEqual(patches, [CURRENT_FLOW], 'one marker stands for every flow of the run');
        const timers = events.map((e) => e.timerStartedEventAttributes).filter((t) => t);
        const t = timers.at(-1)!.startToFireTimeout!;
        const ms = Number(t.seconds) * 1000 + Math.round((t.nanos ?? 0) / 1e6);
        assert.equal(ms, Math.round(10 * 60_000 * checkSpread(id)), 'the reply check waits its spread');
        waits.push(ms);
        await Worker.runReplayHistory(
          { workflowBundle: await workflowBundle(process.env.WORKFLOW_BUNDLE) },
          history,
          id,
        );
      }
      for (const ms of waits) assert.ok(ms >= 10 * 60_000 && ms <= 10 * 60_000 * (1 + CHECK_SPREAD));
      assert.notEqual(waits[0], waits[1], 'two conversations started together check apart');
    });
  });

  it('the stack-trace query shows where a waiting conversation waits, each stack cut at the limit', async () => {
    const peers = new FakePeers();
    await runWithFakes(env, peers, async (tq) => {
      const s = sid();
      const id = await send(env, tq, s, [withMode(message('a', 'hello'), false)]);
      await waitFor('first message written', () => peers.texts(`case-${s}`).length === 1);
      interface Location {
        file_path?: string;
        function_name?: string;
      }
      const trace = await env.client.workflow
        .getHandle(id)
        .query<{ stacks: { locations: Location[] }[] }>('__enhanced_stack_trace');
      const frames = trace.stacks.flatMap((st) => st.locations);
      // What an operator reads in the Temporal UI: the workflow's own source, source-mapped.
      assert.ok(
        frames.some(
          (f) =>
            f.function_name === 'conversationWorkflow' &&
            /src\/workflows\/conversation\/index\.ts$/.test(f.file_path ?? ''),
        ),
        `conversationWorkflow among ${JSON.stringify(frames)}`,
      );
      assert.ok(
        frames.some((f) => /src\/workflows\/conversation\/wake\.ts$/.test(f.file_path ?? '')),
        'the wait itself',
      );
      // Each promise's stack is captured with the limit's frames, the SDK's hook among them (cut).
      for (const st of trace.stacks)
        assert.ok(st.locations.length <= WORKFLOW_STACK_TRACE_LIMIT - 1, JSON.stringify(st.locations));
    });
  });
});
