import type { Client } from '@temporalio/client';
import type { Config } from '../config';
import type { Logger } from '../logger';
import type { Metrics } from '../metrics';
import type { TestOptions } from '../settings/test-and-save';
import type { ProcessProbeOptions } from '../settings/process-probe';
import type { Store } from '../store';
import type { CreatioInbox } from '../workflow-client/creatio-inbox';
import type { ConversationOptions } from '../workflows/contract';
import type { OrgPayloadCodec } from './codec-routes';
import type { FailureLimiter } from './failure-limiter';
import type { OpencxEventReader } from './opencx-ingress';

/** What /readyz answers: ready or not, and each check's result. */
export interface Readiness {
  ready: boolean;
  checks: Record<string, { ok: boolean; detail?: string | Record<string, unknown> }>;
}

/** What the API's routes are given (src/api/app.ts builds the app from it). */
export interface AppDeps {
  config: Pick<Config, 'publicBaseUrl' | 'adminApiToken' | 'creatioRequestTimeoutMs'> &
    Partial<Pick<Config, 'temporalUiOrigin' | 'temporal' | 'trustProxy' | 'env'>>;
  /** The payload codec of Temporal history; serves /codec/* for the Temporal UI and CLI. */
  codec?: OrgPayloadCodec;
  /** Failed admin-token and webhook-token attempts per route and credential (src/api/failure-limiter.ts). */
  authFailures?: FailureLimiter;
  store: Store;
  log: Logger;
  metrics: Metrics;
  readiness: () => Promise<Readiness>;
  /**
   * How long this process keeps an OpenCX organization's receiver (its webhook secret and mode)
   * before it reads the store again: 30 s; tests shorten it. Another process's change reaches it
   * within that time (its own changes at once).
   */
  receiversTtlMs?: number;
  /** Test & Save's options (tests shorten the processes' wait). */
  testOptions?: Partial<Omit<TestOptions, 'processes'>> & {
    processes?: Partial<Pick<ProcessProbeOptions, 'waitMs' | 'pollMs'>>;
  };
  /** Temporal client and the options new conversations start with; absent → conversation routes answer 503. */
  conversations?: {
    client: Client;
    taskQueue: string;
    options: ConversationOptions;
    creatioInbox?: CreatioInbox;
  };
  /**
   * How OpenCX event data is read into conversation events (default: src/opencx/events.ts). A test
   * gives another release's reading, to replay what this one refused.
   */
  readOpencxEvent?: OpencxEventReader;
}
