import { deliverEvent, signalIfRunning } from '../workflow-client/client';
import { ApiError } from '../errors';
import type { Logger } from '../logger';
import {
  envelopeSchema,
  eventBody,
  isHandled,
  toConversationEvent,
  type HandledEvent,
} from '../opencx/events';
import type { RejectedEvent, Store } from '../store';
import { conversationWorkflowId, type ConversationEvent } from '../workflows/contract';
import type { AppDeps } from './deps';
import { parseBody } from './errors';

/**
 * What the webhook route and the replay of refused events share: which organization receives an
 * OpenCX organization's events, the path "verified envelope → conversation event → delivered", and
 * keeping an event that does not validate.
 */

/** How an OpenCX event's data becomes the workflow's event: the running release's reading. */
export type OpencxEventReader = typeof toConversationEvent;

/**
 * How often the deliveries this process made are written to the store, in one write. A record not
 * yet written when the process dies costs a redelivery to a finished conversation a resumed run,
 * which finds its event on the case (decision 0028). At most four writes a second keep the
 * store's round trips a small part of the API's CPU under load (decision 0032).
 */
const DELIVERY_WRITE_EVERY_MS = 250;

/** Longest wait for the delivery record (a nicety: the workflow dedupes without it). */
const DELIVERY_RECORD_MS = 1_000;

/**
 * Webhook deliveries that Temporal has, remembered in this process (most recent first out at the
 * bound) and written to the store in batches off the request's path. The store's record is what
 * another process, or this one after a restart, finds; it matters for a conversation that has
 * finished, where a redelivery would otherwise start a resumed run (which finds its event already
 * on the case). A running conversation drops a redelivered event itself.
 */
class Deliveries {
  private readonly recent: RecentSet;
  private pending: { orgId: string; source: string; deliveryId: string }[] = [];
  private readonly writes: BatchedWrites;
  constructor(store: Store, log: Logger, maxRecent = 100_000) {
    this.recent = new RecentSet(maxRecent);
    this.writes = new BatchedWrites(DELIVERY_WRITE_EVERY_MS, async () => {
      const batch = this.pending.splice(0, this.pending.length);
      try {
        await store.recordDeliveries(batch);
      } catch (err) {
        log.warn(
          { err, deliveries: batch.length },
          'could not record webhook deliveries (a redelivery to a finished conversation resumes it; nothing is written twice)',
        );
      }
    });
  }

  private key = (orgId: string, deliveryId: string) => `${orgId}\n${deliveryId}`;

  /** Known to this process as delivered. */
  knows(orgId: string, deliveryId: string): boolean {
    return this.recent.has(this.key(orgId, deliveryId));
  }

  /** Remembers a delivery Temporal has, and writes it to the store soon. */
  note(orgId: string, deliveryId: string): void {
    const key = this.key(orgId, deliveryId);
    if (this.recent.has(key)) return;
    this.recent.add(key);
    this.pending.push({ orgId, source: 'opencx', deliveryId });
    this.writes.soon();
  }

  /** Writes what is pending; resolves once the store has it (or the write failed and was logged). */
  flush(): Promise<void> {
    return this.writes.flush();
  }
}

/** A set that forgets its oldest member past its bound. */
class RecentSet {
  private readonly items = new Set<string>();
  constructor(private readonly max: number) {}

  has(key: string): boolean {
    return this.items.has(key);
  }

  add(key: string): void {
    if (this.items.has(key)) return;
    if (this.items.size >= this.max) this.items.delete(this.items.values().next().value!);
    this.items.add(key);
  }
}

/**
 * Writes to the store off the request's path: at most one write every `everyMs`, one after another.
 * `write` takes what is pending when it runs (and handles its own failure).
 */
class BatchedWrites {
  private timer: NodeJS.Timeout | undefined;
  private writing: Promise<void> = Promise.resolve();
  constructor(
    private readonly everyMs: number,
    private readonly write: () => Promise<void>,
  ) {}

  /** A write within `everyMs`. */
  soon(): void {
    if (this.timer) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.flush();
    }, this.everyMs);
    this.timer.unref();
  }

  flush(): Promise<void> {
    this.writing = this.writing.then(() => this.write());
    return this.writing;
  }
}

/** The promise's value, or undefined if it fails or takes longer than `ms`. */
async function within<T>(ms: number, p: Promise<T>): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p.catch(() => undefined), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The bridge organization that receives an OpenCX organization's events, and its webhook secret. */
export interface Receiver {
  orgId: string | undefined;
  secret: string | undefined;
  /** The secret before the last change, while the rotation overlap lasts. */
  previous?: { secret: string; until: number };
  /** The organization's mode, handed to its conversations with their events (withMode). */
  caseOnlyOnHandoff?: boolean;
  cachedAt: number;
  /** Read again in the background once already (decision 0036): never twice for one entry. */
  readAhead?: boolean;
}

/**
 * The event with the organization's mode, for the events that may create the case: a new
 * conversation then needs no store read in its first workflow task. As old as the receivers'
 * cache at most (30 s; a settings change made by this process empties it).
 */
export function withMode(
  event: ConversationEvent,
  caseOnlyOnHandoff: boolean | undefined,
): ConversationEvent {
  if (caseOnlyOnHandoff === undefined) return event;
  return event.kind === 'started' || event.kind === 'message' || event.kind === 'handoff'
    ? { ...event, caseOnlyOnHandoff }
    : event;
}

/** The secrets a signature may be made with now: the current one, and the previous during the overlap. */
export function secretsOf(r: Receiver, now = Date.now()): string[] {
  return [r.secret, r.previous && r.previous.until > now ? r.previous.secret : undefined].filter(
    (s): s is string => typeof s === 'string',
  );
}

/**
 * Receivers by OpenCX organization_id, kept in memory for a short while (30 s, known or not) so
 * that a flood of signed-looking requests costs no database read or decryption. A settings change
 * made by this process empties the cache; a signature that does not match a cached secret reloads
 * it once (the secret may just have been rotated in another process).
 *
 * An entry used in the last third of its time is read again in the background, so that an
 * organization with steady traffic never waits for the store on a webhook's path (with Temporal on
 * the same PostgreSQL, that read is slowest when the load is highest). No entry is used past its
 * time: an organization heard from less often than that waits for the read, as before.
 */
export class Receivers {
  private readonly cache = new Map<string, Receiver>();
  /** Reads in flight, at most one per organization. */
  private readonly loading = new Map<string, Promise<Receiver>>();
  /** Moves on each emptying: a read that began before one is not cached. */
  private generation = 0;
  constructor(
    private readonly store: Pick<Store, 'getOrgByOpencxOrganization' | 'onSettingsChanged'>,
    private readonly ttlMs = 30_000,
    /** Told when a background read fails (the entry then serves to its time, and is not read ahead again). */
    private readonly onReadAheadFailed: (opencxOrgId: string, err: unknown) => void = () => undefined,
    private readonly maxEntries = 50_000,
  ) {
    store.onSettingsChanged(() => {
      this.generation++;
      this.cache.clear();
      this.loading.clear();
    });
  }

  /** `fresh`: read the store now, even if a read is in flight (it may predate a rotation). */
  async get(opencxOrgId: string, fresh = false): Promise<Receiver> {
    const hit = this.cache.get(opencxOrgId);
    const age = hit ? Date.now() - hit.cachedAt : Infinity;
    if (hit && !fresh && age < this.ttlMs) {
      if (age >= (this.ttlMs * 2) / 3 && !hit.readAhead && !this.loading.has(opencxOrgId)) {
        // The request goes on with the entry. A failed read leaves it to its time, once (a store
        // that is down is not asked again by every webhook), and the read at that time answers
        // for the store.
        hit.readAhead = true;
        this.load(opencxOrgId).catch((err: unknown) => this.onReadAheadFailed(opencxOrgId, err));
      }
      return hit;
    }
    return (!fresh && this.loading.get(opencxOrgId)) || this.load(opencxOrgId);
  }

  private load(opencxOrgId: string): Promise<Receiver> {
    const generation = this.generation;
    const read = (async () => {
      const org = await this.store.getOrgByOpencxOrganization(opencxOrgId);
      const previous = org?.previousWebhookSecret;
      const entry: Receiver = {
        orgId: org?.orgId,
        secret: org?.settings.opencx.webhookSecret,
        caseOnlyOnHandoff: org?.settings.createCaseOnlyOnHandoff,
        ...(previous && { previous: { secret: previous.secret, until: Date.parse(previous.until) } }),
        cachedAt: Date.now(),
      };
      if (generation === this.generation) {
        if (this.cache.size >= this.maxEntries) this.cache.clear();
        this.cache.set(opencxOrgId, entry);
      }
      return entry;
    })();
    this.loading.set(opencxOrgId, read);
    const done = () => {
      if (this.loading.get(opencxOrgId) === read) this.loading.delete(opencxOrgId);
    };
    read.then(done, done);
    return read;
  }
}

/**
 * Events whose organization_id no organization receives, counted per id in memory and written to
 * the store at most once a second (a flood of made-up ids costs no write per request; at most
 * `maxPending` ids are counted per write).
 */
class UnmappedOrganizations {
  private pending = new Map<string, number>();
  private readonly writes: BatchedWrites;
  constructor(
    store: Store,
    log: Logger,
    everyMs = 1_000,
    private readonly maxPending = 1_000,
  ) {
    this.writes = new BatchedWrites(everyMs, async () => {
      const batch = [...this.pending].map(([opencxOrgId, count]) => ({ opencxOrgId, count }));
      this.pending = new Map();
      if (batch.length === 0) return;
      try {
        await store.countUnmappedOpencxOrganizations(batch);
      } catch (err) {
        log.warn({ err }, 'could not count events of unmapped OpenCX organizations');
      }
    });
  }

  note(opencxOrgId: string): void {
    const n = this.pending.get(opencxOrgId);
    if (n === undefined && this.pending.size >= this.maxPending) return;
    this.pending.set(opencxOrgId, (n ?? 0) + 1);
    this.writes.soon();
  }

  /** Writes what was counted; resolves once the store has it (or the write failed and was logged). */
  flush(): Promise<void> {
    return this.writes.flush();
  }
}

/** An event's data read into the workflow's event, or why it cannot be. */
export type Converted =
  | { ok: true; sessionId: string; event: ConversationEvent }
  | { ok: false; error: ApiError; field: string | undefined; fields: (string | null)[] };

/** A replay's outcome for one kept event (never its content). */
export type ReplayOutcome = { webhookId: string; event: string } & (
  | { status: 'replayed'; workflowId: string; delivery: 'accepted' | 'resumed' | 'duplicate' }
  | { status: 'ignored'; reason: string }
  | { status: 'refused'; error: { code: string; message: string; field?: string } }
);

export const REPLAY_FIX = (orgId: string) =>
  `Once the bridge reads these events (a release that does), replay them: POST /v1/orgs/${orgId}/opencx-events/replay (one: POST /v1/orgs/${orgId}/opencx-events/<webhook-id>/replay); GET /v1/orgs/${orgId}/opencx-events lists them.`;

const MESSAGE_EVENTS = new Set([
  'conversation.contact_response',
  'conversation.ai_response',
  'conversation.agent_response',
]);

export class OpencxIngress {
  readonly receivers: Receivers;
  readonly unmapped: UnmappedOrganizations;
  private readonly deliveries: Deliveries;
  /** Conversations this process delivered to lately (most recent last, bounded). */
  private readonly running = new RecentSet(100_000);
  private readonly read: OpencxEventReader;
  private lastPrune = Date.now();

  constructor(private readonly deps: AppDeps) {
    this.receivers = new Receivers(deps.store, deps.receiversTtlMs, (opencxOrgId, err) =>
      deps.log.warn(
        { opencxOrgId, reason: err instanceof Error ? err.message : String(err) },
        "could not read an organization's webhook settings ahead; the cached ones serve until they run out",
      ),
    );
    this.unmapped = new UnmappedOrganizations(deps.store, deps.log);
    this.deliveries = new Deliveries(deps.store, deps.log);
    this.read = deps.readOpencxEvent ?? toConversationEvent;
  }

  /** Validates a handled event's data once; a refusal names the field (as a 400 would). */
  convert(event: HandledEvent, data: unknown, webhookId: string, receivedAt?: string): Converted {
    try {
      const c = this.read(
        event,
        data,
        webhookId,
        (schema, d) => {
          if (d === null || typeof d !== 'object' || Array.isArray(d)) {
            throw new ApiError(
              400,
              'invalid_field',
              'data must be a JSON object (or an array whose first element is one)',
              { field: 'data' },
            );
          }
          return parseBody(schema, d, 'data');
        },
        receivedAt,
      );
      return { ok: true, ...c };
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      const details = Array.isArray(err.extra.details) ? (err.extra.details as { field?: unknown }[]) : [];
      return {
        ok: false,
        error: err,
        field: err.extra.field,
        fields: details.map((d) => (typeof d.field === 'string' ? `data.${d.field}` : null)),
      };
    }
  }

  /**
   * Hands the event to its conversation, once: "duplicate" when Temporal is known to have this
   * webhook-id already (this process delivered it, or the store's record says so).
   *
   * A conversation running on this process's last word gets a plain signal and drops a
   * redelivered event itself, so the ack waits for Temporal only
   * (docs/decisions/0028-load-and-the-floor.md). Otherwise the store's record is read before the
   * conversation is started or resumed; if the store cannot say in time, the event goes to
   * Temporal anyway (a resumed run finds its event on the case).
   */
  async deliver(
    orgId: string,
    webhookId: string,
    sessionId: string,
    event: ConversationEvent,
  ): Promise<{ workflowId: string; delivery: 'accepted' | 'resumed' | 'duplicate' }> {
    const conv = this.deps.conversations;
    if (!conv)
      throw new ApiError(503, 'temporal_unavailable', 'Conversations are not enabled on this instance');
    const workflowId = conversationWorkflowId(orgId, sessionId);
    if (this.deliveries.knows(orgId, webhookId)) return { workflowId, delivery: 'duplicate' };
    let resumed = false;
    // A conversation this process has delivered to is most likely running: a plain signal. One it
    // has not (new, or known to another process) goes the way that also starts it.
    const signalled = this.running.has(workflowId) && (await signalIfRunning(conv, orgId, sessionId, event));
    if (!signalled) {
      const seen = await within(DELIVERY_RECORD_MS, this.deps.store.deliverySeen(orgId, 'opencx', webhookId));
      if (seen) return { workflowId, delivery: 'duplicate' };
      ({ resumed } = await deliverEvent(conv, orgId, sessionId, event));
    }
    this.running.add(workflowId);
    this.deliveries.note(orgId, webhookId);
    if (event.kind === 'message') this.deps.metrics.messagesReceived.inc({ author: event.author });
    return { workflowId, delivery: resumed ? 'resumed' : 'accepted' };
  }

  /** Writes the deliveries not yet recorded in the store (tests, shutdown). */
  flushDeliveries(): Promise<void> {
    return this.deliveries.flush();
  }

  /**
   * Keeps a signed event that does not validate, sealed, for a replay. Waits for the store: an
   * event that cannot be kept fails the request (a 5xx, for the sender to retry), never lost quietly.
   */
  async keep(
    orgId: string,
    webhookId: string,
    event: string,
    failure: { field: string | undefined; code: string },
    body: Buffer,
  ): Promise<void> {
    const { dropped } = await this.deps.store.keepRejectedEvent({
      orgId,
      webhookId,
      event,
      field: failure.field,
      code: failure.code,
      body: body.toString('utf8'),
    });
    if (dropped > 0) {
      this.deps.metrics.opencxEventsDropped.inc(dropped);
      this.deps.log.warn(
        { orgId, dropped, limit: this.deps.store.rejectedEventLimits.perOrg },
        'refused OpenCX events dropped unreplayed: too many waiting for the organization',
      );
    }
  }

  /**
   * A message event the bridge could not read still says which conversation it is about: that
   * conversation reads its OpenCX history at once (docs/decisions/0020-history-reconciliation.md),
   * so the message is logged without waiting for a replay. Best effort: the event is kept either way.
   */
  async askHistoryCheck(orgId: string, webhookId: string, event: string, data: unknown): Promise<boolean> {
    const conv = this.deps.conversations;
    if (!conv || !MESSAGE_EVENTS.has(event)) return false;
    const d = eventBody(data) as { conversation_id?: unknown; session_id?: unknown } | null | undefined;
    const sid = [d?.conversation_id, d?.session_id].find(
      (v): v is string => typeof v === 'string' && v.length > 0 && v.length <= 200,
    );
    if (!sid) return false;
    try {
      // A conversation that has finished is not resumed for this: its new run would judge only
      // history newer than itself. The event stays kept for a replay.
      const { resumed } = await deliverEvent(
        conv,
        orgId,
        sid,
        { kind: 'history_check', eventId: `history-check:${webhookId}`, timestamp: new Date().toISOString() },
        { resume: false },
      );
      return !resumed;
    } catch (err) {
      this.deps.log.warn(
        { err, orgId, webhookId },
        'could not ask the conversation to read its OpenCX history',
      );
      return false;
    }
  }

  /** Deletes expired refused events now and then (at most hourly), whatever else happens. */
  pruneNowAndThen(): void {
    if (Date.now() - this.lastPrune < 3_600_000) return;
    this.lastPrune = Date.now();
    this.deps.store
      .pruneRejectedEvents()
      .catch((err: unknown) => this.deps.log.warn({ err }, 'could not delete expired refused OpenCX events'));
  }

  /**
   * Runs a kept event through the current validation: delivered exactly like a live webhook (same
   * delivery record, so never twice) and marked replayed; still refused, it stays kept with what
   * fails now.
   */
  async replay(orgId: string, kept: RejectedEvent & { body: string }): Promise<ReplayOutcome> {
    const base = { webhookId: kept.webhookId, event: kept.event };
    let envelope: { event: string; data: unknown };
    try {
      envelope = parseBody(envelopeSchema, JSON.parse(kept.body));
    } catch (err) {
      const e =
        err instanceof ApiError ? err : new ApiError(400, 'invalid_json', 'The kept body is not valid JSON');
      return { ...base, status: 'refused', error: errorOf(e) };
    }
    if (!isHandled(envelope.event)) {
      await this.deps.store.markRejectedEventsReplayed(orgId, [kept.webhookId]);
      return { ...base, status: 'ignored', reason: `event ${envelope.event} is not used by the bridge` };
    }
    const converted = this.convert(envelope.event, envelope.data, kept.webhookId, kept.receivedAt);
    if (!converted.ok) {
      await this.deps.store.noteRejectedEventReplay(orgId, kept.webhookId, {
        field: converted.field,
        code: converted.error.code,
      });
      this.deps.log.info(
        { orgId, event: kept.event, webhookId: kept.webhookId, field: converted.field ?? null },
        'replayed OpenCX event still refused',
      );
      return { ...base, status: 'refused', error: errorOf(converted.error) };
    }
    const { workflowId, delivery } = await this.deliver(
      orgId,
      kept.webhookId,
      converted.sessionId,
      converted.event,
    );
    await this.deps.store.markRejectedEventsReplayed(orgId, [kept.webhookId]);
    this.deps.metrics.webhookEvents.inc({ source: 'opencx', outcome: 'replayed' });
    this.deps.log.info(
      { orgId, event: kept.event, webhookId: kept.webhookId, delivery },
      'OpenCX event replayed',
    );
    return { ...base, status: 'replayed', workflowId, delivery };
  }
}

function errorOf(e: ApiError): { code: string; message: string; field?: string } {
  return { code: e.code, message: e.message, ...(e.extra.field !== undefined && { field: e.extra.field }) };
}
