import { condition } from '@temporalio/workflow';
import { msToNumber } from '@temporalio/common/lib/time';
import { REPLY_DEFAULTS, type ConversationEvent, type HistoryCheckState } from '../contract';
import type { Conversation } from './context';
import { LaneStart } from './lane-start';
import { spreadWait } from './state';
import type { HistoryMessage } from '../../activities/opencx';
import { messageFingerprint, type HeardEntry } from './heard';
import { isActivityFailure } from './steps';

/** Why the history is read now. */
export type HistoryCheckSource = 'timer' | 'event' | 'close';

/** Each quiet check waits this many times longer than the last, up to `historyCheckMaxEvery`. */
const BACKOFF = 4;
/** A busy conversation is still checked at least this many `historyCheckAfter`s after its first unchecked event. */
const MAX_DEFER = 5;
/** Reads of one check at most (each returns up to about 1 MB of messages). */
const MAX_READS = 20;
/** History items this much older than the newest one seen are judged again at the next read. */
const SLACK_MS = 60 * 60 * 1000;

export function historyTimings(c: Pick<Conversation, 'options'>): { after: number; max: number } {
  return {
    after: msToNumber(c.options.historyCheckAfter ?? REPLY_DEFAULTS.historyCheckAfter),
    max: msToNumber(c.options.historyCheckMaxEvery ?? REPLY_DEFAULTS.historyCheckMaxEvery),
  };
}

export function newHistoryCheck(resumed: boolean): HistoryCheckState {
  // A resumed run knows nothing of the messages of the earlier run: only what comes after is judged.
  return { nextAt: null, delayMs: 0, since: resumed ? new Date().toISOString() : null };
}

/**
 * The conversation's OpenCX history as the source of truth for its transcript
 * (docs/decisions/0020-history-reconciliation.md): a lane beside the main loop reads
 * `GET /chat/sessions/{id}/history` (all pages) after the conversation goes quiet, less often while
 * nothing is missing, at once when OpenCX told of a message the bridge could not read, and once at
 * the close. A message the bridge never took (its webhook was lost, or refused) is handed to the
 * main loop as an event of its own, so it is logged like any other, in order, once. What the
 * webhooks already brought is recognised by id or by content (heard.ts), never logged twice.
 *
 * A read that fails is not retried for long and never parks: the finding is in the state
 * (`history.finding`) and the next check comes at the next interval.
 */
export class HistoryLane {
  private readonly starts = new LaneStart(() => void this.loop());
  private wanted: HistoryCheckSource | null = null;
  private running = false;

  constructor(
    private readonly c: Conversation,
    private readonly enqueue: (ev: ConversationEvent) => void,
    private readonly continueAsNewDue: () => boolean,
  ) {}

  request(source: HistoryCheckSource): void {
    if (this.wanted === null || source !== 'timer') this.wanted = source;
    this.starts.asked();
  }

  get idle(): boolean {
    return !this.running && this.wanted === null;
  }

  get busy(): boolean {
    return this.running;
  }

  get pending(): boolean {
    return this.wanted !== null;
  }

  /** Runs the lane for the life of the run; with `whenAsked`, from its first request on (reply-lane.ts). */
  start(whenAsked = false): void {
    this.starts.start(whenAsked, this.wanted !== null);
  }

  /** Something happened in the conversation: check the history once it has been quiet a while. */
  soon(): void {
    const { state, historyCheck } = this.c.run;
    if (state.status !== 'open') return;
    const { after } = historyTimings(this.c);
    const now = Date.now();
    const wait = spreadWait(this.c, after);
    historyCheck.delayMs = after;
    historyCheck.pendingSince ??= now;
    historyCheck.nextAt = Math.min(now + wait, historyCheck.pendingSince + MAX_DEFER * wait);
  }

  private schedule(found: number): void {
    const { state, historyCheck } = this.c.run;
    historyCheck.pendingSince = undefined;
    if (state.status !== 'open') {
      historyCheck.nextAt = null;
      return;
    }
    const { after, max } = historyTimings(this.c);
    historyCheck.delayMs =
      found > 0 || historyCheck.delayMs === 0 ? after : Math.min(historyCheck.delayMs * BACKOFF, max);
    historyCheck.nextAt = Date.now() + spreadWait(this.c, historyCheck.delayMs);
  }

  private async loop(): Promise<void> {
    for (;;) {
      await condition(() => this.wanted !== null && !this.continueAsNewDue());
      const source = this.wanted!;
      this.wanted = null;
      this.running = true;
      try {
        const found = await this.check();
        if (source !== 'close') this.schedule(found);
      } finally {
        this.running = false;
      }
    }
  }

  /** One read of the whole history (in pages of what the activity returns); answers how many were missing. */
  private async check(): Promise<number> {
    const { c } = this;
    const { run } = c;
    const history = (run.state.history ??= { lastCheckAt: null, found: 0, finding: null });
    const forgotten = run.heard.forgottenUpTo;
    let since = run.historyCheck.since;
    if (forgotten && (!since || forgotten > since)) since = forgotten;
    let found = 0;
    for (let page = 0; page < MAX_READS; page++) {
      let read: Awaited<ReturnType<Conversation['peers']['opencxRead']['readHistory']>>;
      try {
        read = await c.peers.opencxRead.readHistory({ orgId: c.orgId, sessionId: c.sessionId, since });
      } catch (err) {
        if (!isActivityFailure(err)) throw err;
        const cause = err.cause ?? err;
        history.finding = `The conversation's OpenCX history could not be read (${cause.message}); messages whose webhook was lost are not found until it can`;
        history.lastCheckAt = new Date().toISOString();
        return found;
      }
      found += this.judge(read.messages);
      if (read.newest) {
        const keep = new Date(Date.parse(read.newest) - SLACK_MS).toISOString();
        if (!run.historyCheck.since || keep > run.historyCheck.since) run.historyCheck.since = keep;
      }
      if (!read.more) break;
      since = read.more;
    }
    history.finding = null;
    history.lastCheckAt = new Date().toISOString();
    history.found += found;
    if (found > 0) run.note(`${found} message(s) found in the OpenCX history that no webhook had brought`);
    return found;
  }

  /**
   * Hands the main loop every history message it does not know. Only looks: the message is taken
   * (and claims what it matches) when the main loop handles it, in order with the webhooks that may
   * still be queued, so a message is logged once whichever comes first.
   */
  private judge(messages: HistoryMessage[]): number {
    const { run } = this.c;
    const queued = new Set<string>();
    for (const e of [...run.queue, ...run.spill.incoming]) if (e.kind === 'message') queued.add(e.messageId);
    // OpenCX gives webhooks the history's ids: from then on ids alone decide (heard.ts).
    if (!run.historyCheck.idsAgree && messages.some((m) => run.heard.byId(m.id)?.doors.includes('w'))) {
      run.historyCheck.idsAgree = true;
    }
    const claimed = new Set<HeardEntry>();
    let found = 0;
    for (const m of messages) {
      if (run.seenMessages.has(m.id) || queued.has(m.id)) continue;
      const same = run.heard.match('h', { id: m.id, fp: messageFingerprint(m.author, m.text) }, claimed);
      if (same) {
        claimed.add(same);
        continue;
      }
      found++;
      this.enqueue({
        kind: 'message',
        eventId: `history:${m.id}`,
        timestamp: m.createdAt,
        messageId: m.id,
        author: m.author,
        text: m.text,
        attachments: m.attachments,
        ...(m.senderName && m.author === 'agent' && { agentName: m.senderName }),
        fromHistory: true,
      });
    }
    return found;
  }
}
