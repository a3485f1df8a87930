import { Context } from '@temporalio/activity';
import { creatioClientFor, type CreatioClient } from '../creatio/client';
import type { LlmConfig } from '../llm/client';
import type { Metrics } from '../metrics';
import { CallLimiters, SHIPPED_CALL_LIMITS } from '../net/call-limiter';
import { OPENCX_FALLBACK_MAX_WAIT_MS, OpenCXPacing } from '../net/opencx-pacing';
import { OpenCXClient } from '../opencx/client';
import { StoreUnavailableError, type Store, type StoredOrg } from '../store';

import type { ReplyLimits } from './agent-replies';
import { OrgNotConnectedError } from './failures';
import { alive, attemptTimeLeftMs, cancellation } from './heartbeat';

export interface ActivityDeps {
  store: Store;
  /** OpenAI-compatible endpoint for AI fields; absent → AI fields are skipped with that reason. */
  llm?: LlmConfig;
  /** Characters of transcript sent to the LLM, counted from the most recent end. */
  aiTranscriptBudgetChars?: number;
  creatioTimeoutMs: number;
  /** Link to the session in the OpenCX dashboard; `{sessionId}` is replaced. */
  opencxSessionUrlTemplate: string;
  onCreatioRequest?: (orgId: string) => void;
  /** The process's metrics (messages logged, Creatio calls, replies delivered). */
  metrics?: Metrics;
  /** Attachment links on loopback http (emulators, development); production keeps https only. */
  allowLoopbackHttpLinks?: boolean;
  /** Agent-reply look-back window and attachment caps (defaults in agent-replies.ts). */
  replyLimits?: Partial<ReplyLimits>;
  /**
   * Paces each organization's HTTP calls (src/net/call-limiter.ts); defaults when absent. The
   * OpenCX limiters pace calls only while the store cannot be reached (see `opencxPacing`).
   */
  limiters?: { creatio: CallLimiters; opencx: CallLimiters };
  /** Paces OpenCX calls per API key across worker processes (src/net/opencx-pacing.ts). */
  opencxPacing?: OpenCXPacing;
}

/** The shared OpenCX pace of an activity worker: waits beat for the activity and end with it. */
export function activityOpenCXPacing(
  o: Omit<ConstructorParameters<typeof OpenCXPacing>[0], 'timeLeftMs' | 'beat' | 'signal'>,
): OpenCXPacing {
  return new OpenCXPacing({ ...o, timeLeftMs: attemptTimeLeftMs, beat: alive, signal: cancellation });
}

/** A settings copy younger than this is used without asking the store whether it changed. */
export const SETTINGS_FRESH_MS = 1_000;

/** True when this activity attempt is a retry (it must look before it writes). */
export const isRetry = () => Context.current().info.attempt > 1;

/**
 * The per-organization context every activity shares: settings read from the store, and clients
 * (with their tokens and lookup caches) kept while the settings stay the same.
 */
export class OrgContexts {
  private readonly clients = new Map<
    string,
    { version: string; client: CreatioClient; lookups: Map<string, Promise<string | undefined>> }
  >();

  private readonly settingsCache = new Map<string, { stored: StoredOrg; checkedAt: number }>();
  private readonly limiters: { creatio: CallLimiters; opencx: CallLimiters };
  private readonly opencxPacing: OpenCXPacing;

  constructor(readonly deps: ActivityDeps) {
    this.limiters = deps.limiters ?? {
      creatio: new CallLimiters({ initialPerSecond: SHIPPED_CALL_LIMITS.creatioInitialPerSecond }),
      opencx: new CallLimiters({
        initialPerSecond: SHIPPED_CALL_LIMITS.opencxMaxPerSecond,
        maxPerSecond: SHIPPED_CALL_LIMITS.opencxMaxPerSecond,
        maxWaitMs: OPENCX_FALLBACK_MAX_WAIT_MS,
      }),
    };
    this.opencxPacing =
      deps.opencxPacing ??
      activityOpenCXPacing({
        db: deps.store.db,
        perSecond: SHIPPED_CALL_LIMITS.opencxMaxPerSecond,
        fallback: this.limiters.opencx,
        callMs: deps.creatioTimeoutMs,
      });
    // A save in this process applies from the next step; in another process, within a second.
    deps.store.onSettingsChanged((orgId) => this.settingsCache.delete(orgId));
  }

  /** Creatio answers most of this organization's calls right now (its call limiter keeps the count). */
  answering(orgId: string): boolean {
    return this.limiters.creatio.for(orgId).answering();
  }

  /**
   * The organization's stored settings. A copy is kept: used as is for a second, then while its
   * version (updated_at) is the stored one, so that a step reads at most one timestamp, not the
   * settings and their secrets. A save in this process drops the copy at once; in another
   * process, it applies within a second. While the store does not answer, the last copy read is
   * used: a blip in the bridge's own database never stops a conversation this process knows.
   */
  async settings(orgId: string): Promise<StoredOrg> {
    const hit = this.settingsCache.get(orgId);
    const now = Date.now();
    if (hit && now - hit.checkedAt < SETTINGS_FRESH_MS) return hit.stored;
    let stored: StoredOrg | undefined;
    try {
      const version = hit && (await this.deps.store.settingsVersion(orgId));
      if (hit && version && version.getTime() === hit.stored.updatedAt.getTime()) {
        hit.checkedAt = now;
        return hit.stored;
      }
      stored = await this.deps.store.getOrg(orgId);
    } catch (err) {
      if (hit && err instanceof StoreUnavailableError) return hit.stored;
      throw err;
    }
    if (!stored) {
      this.settingsCache.delete(orgId);
      throw new OrgNotConnectedError(orgId);
    }
    this.settingsCache.set(orgId, { stored, checkedAt: now });
    return stored;
  }

  async creatio(orgId: string) {
    const stored = await this.settings(orgId);
    const s = stored.settings;
    const version = stored.updatedAt.toISOString();
    let entry = this.clients.get(orgId);
    if (!entry || entry.version !== version) {
      entry = {
        version,
        client: creatioClientFor(s, {
          timeoutMs: this.deps.creatioTimeoutMs,
          limiter: this.limiters.creatio.for(orgId),
          onRequest: ({ method, status, ms }) => {
            alive();
            this.deps.onCreatioRequest?.(orgId);
            this.deps.metrics?.creatioCalls.inc({ method, status: String(status) });
            this.deps.metrics?.creatioCallDuration.observe({ method }, ms / 1000);
          },
        }),
        lookups: new Map(),
      };
      this.clients.set(orgId, entry);
    }
    const { client, lookups } = entry;
    /** The Id of a lookup row by name, asked once per client (failures are asked again). */
    const lookup = (set: string, name: string) => {
      const key = `${set}:${name}`;
      let p = lookups.get(key);
      if (!p) {
        p = client.findByName(set, name).then((rows) => rows[0]?.Id);
        p.catch(() => lookups.delete(key));
        lookups.set(key, p);
      }
      return p;
    };
    return { settings: s, client, lookup };
  }

  async opencx(orgId: string): Promise<OpenCXClient> {
    const { apiBaseUrl, apiKey } = (await this.settings(orgId)).settings.opencx;
    if (!apiKey) throw new OrgNotConnectedError(orgId, 'has no OpenCX API key');
    return new OpenCXClient(apiBaseUrl, apiKey, this.deps.creatioTimeoutMs, this.opencxPacing.for(apiKey));
  }
}
