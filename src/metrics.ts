import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';

/**
 * The process's Prometheus metrics (served at /metrics): Node's own (CPU, memory, event-loop lag,
 * GC), HTTP, and what the bridge does. One instance per process, shared by the API and the
 * activities. The Temporal SDK's worker metrics (task slots, poll and schedule-to-start latency,
 * sticky cache) and the workflow's own counters are exported by the SDK at TEMPORAL_METRICS_ADDRESS.
 */
export class Metrics {
  readonly registry = new Registry();

  readonly httpRequests = new Counter({
    name: 'bridge_http_requests_total',
    help: 'HTTP requests by route and status',
    labelNames: ['method', 'route', 'status'] as const,
    registers: [this.registry],
  });
  readonly httpDuration = new Histogram({
    name: 'bridge_http_request_duration_seconds',
    help: 'HTTP request duration by route',
    labelNames: ['route'] as const,
    buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10],
    registers: [this.registry],
  });
  readonly webhookEvents = new Counter({
    name: 'bridge_webhook_events_total',
    help: 'Webhook calls by source (opencx, creatio) and outcome (accepted, duplicate, invalid_event, replayed, unmapped_organization, invalid_token, bad_request, ...)',
    labelNames: ['source', 'outcome'] as const,
    registers: [this.registry],
  });
  readonly opencxEventsDropped = new Counter({
    name: 'bridge_opencx_events_dropped_total',
    help: 'Refused OpenCX events dropped unreplayed because their organization had too many waiting (1,000)',
    registers: [this.registry],
  });
  readonly messagesReceived = new Counter({
    name: 'bridge_messages_received_total',
    help: 'Conversation messages accepted from OpenCX, by author',
    labelNames: ['author'] as const,
    registers: [this.registry],
  });
  readonly messagesLogged = new Counter({
    name: 'bridge_messages_logged_total',
    help: 'Messages written to Creatio as case activities',
    registers: [this.registry],
  });
  readonly loggingLag = new Histogram({
    name: 'bridge_message_logging_lag_seconds',
    help: 'From the OpenCX event timestamp to the activity written in Creatio',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 1800],
    registers: [this.registry],
  });
  readonly repliesDelivered = new Counter({
    name: 'bridge_agent_replies_delivered_total',
    help: 'Agent replies from Creatio delivered to the customer through OpenCX',
    registers: [this.registry],
  });
  readonly creatioCalls = new Counter({
    name: 'bridge_creatio_calls_total',
    help: 'HTTP calls to Creatio by method and answer (status code, or "error" when there was none)',
    labelNames: ['method', 'status'] as const,
    registers: [this.registry],
  });
  readonly creatioCallDuration = new Histogram({
    name: 'bridge_creatio_call_duration_seconds',
    help: 'HTTP calls to Creatio: time to the answer',
    labelNames: ['method'] as const,
    buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  /** Where the attention gauge reads its counts (set by the API: src/api/attention-routes.ts). */
  private attentionCounts: (() => Promise<Record<string, number>>) | undefined;
  /** Conversations that need attention, by kind, read from the store at each scrape. */
  readonly attentionConversations = new Gauge({
    name: 'bridge_attention_conversations',
    help: 'Conversations that need a person now, by kind (step_parked, step_retrying, ai_fields_blank, closure_mismatch)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
    collect: async () => {
      if (!this.attentionCounts) return;
      try {
        const counts = await this.attentionCounts();
        for (const [kind, n] of Object.entries(counts)) this.attentionConversations.set({ kind }, n);
      } catch {
        // The store did not answer: the last counts stay (a scrape never fails for it).
      }
    },
  });

  /** Reads the attention gauge's counts from `fn` at every scrape. */
  watchAttention(fn: () => Promise<Record<string, number>>): void {
    this.attentionCounts = fn;
  }

  constructor(opts: { defaultMetrics?: boolean } = {}) {
    if (opts.defaultMetrics !== false) collectDefaultMetrics({ register: this.registry });
  }

  /** Text exposition format. */
  render(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}
