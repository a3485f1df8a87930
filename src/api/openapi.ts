import { z } from 'zod';
import { settingsInputSchema, settingsViewShape } from '../settings/fields';
import { eventDataSchemas, HANDLED_EVENTS } from '../opencx/events';
import { payloadsSchema } from './codec-routes';
import { creatioWebhookBodySchema } from './creatio-webhook';
import { SCENARIOS } from '../diagnose/findings';
import { skipBodySchema } from './sessions-routes';
import { newTokenSchema } from './admin-tokens-routes';
import { ATTENTION_KINDS } from './attention-routes';

/**
 * The OpenAPI 3.1 document of the HTTP contract (DESIGN.md §7 and §8). Request bodies come from the
 * zod schemas the routes validate with (as input: what a caller sends, before defaults and
 * transforms); responses from the schemas below, which describe what the routes answer.
 */

type JsonSchema = Record<string, unknown>;

/** A zod schema as JSON Schema 2020-12 (OpenAPI 3.1's dialect), without the `$schema` line. */
function schemaOf(schema: z.ZodType, io: 'input' | 'output' = 'input'): JsonSchema {
  const { $schema: _dialect, ...rest } = z.toJSONSchema(schema, { io, unrepresentable: 'any' });
  return rest;
}

const errorBody = z.object({
  error: z.object({
    code: z.string().describe('snake_case cause, stable for scripts'),
    message: z.string().describe('what is wrong, for people'),
    field: z.string().optional().describe('the request field at fault'),
    fix: z.string().optional().describe('what to do about it'),
  }),
});

const check = z.object({
  name: z.string(),
  ok: z.boolean(),
  skipped: z.boolean().optional(),
  code: z.string().optional(),
  message: z.string().optional(),
  fix: z.string().optional(),
  field: z.string().optional(),
});
const notice = z.looseObject({ code: z.string(), message: z.string() });

const settingsView = z.object({
  ...settingsViewShape,
  notices: z.array(notice).optional(),
  checks: z.array(check).optional(),
});

const stepError = z.object({
  step: z.string(),
  type: z.string(),
  message: z.string(),
  at: z.string(),
  parked: z.boolean(),
  skippable: z.boolean().optional(),
});
const evidence = z.object({
  calls: z.number(),
  lastCallAt: z.string().nullable(),
  missed: z.number(),
  lastMissedAt: z.string().nullable(),
  finding: z.string().nullable(),
});
const sessionView = z.looseObject({
  orgId: z.string(),
  sessionId: z.string(),
  workflowId: z.string(),
  mode: z.enum(['every_conversation', 'handoff_only']),
  status: z.enum(['open', 'closed']),
  caseId: z.string().nullable(),
  caseNumber: z.string().nullable(),
  messages: z.object({
    received: z.number(),
    logged: z.number(),
    pending: z.number(),
    skipped: z.number().optional(),
  }),
  handedOffAt: z.string().nullable(),
  caseStatus: z.string().nullable(),
  agentRepliesDelivered: z.number(),
  processes: z.object({ agentReply: evidence, closure: evidence }),
  aiFields: z
    .object({
      status: z.enum(['done', 'failed']),
      reason: z.string().optional(),
      fields: z.array(
        z.looseObject({
          column: z.string(),
          title: z.string(),
          outcome: z.string(),
          reason: z.string().optional(),
        }),
      ),
    })
    .nullable(),
  lastError: stepError.nullable(),
  notes: z.array(z.object({ at: z.string(), message: z.string() })),
  runs: z.number(),
  history: z
    .object({
      lastCheckAt: z.string().nullable(),
      found: z.number().describe('Messages found in the OpenCX history that no webhook had brought'),
      finding: z.string().nullable(),
    })
    .optional()
    .describe("The last check of the session's OpenCX history"),
  messageLog: z
    .array(z.object({ id: z.string(), status: z.enum(['logged', 'pending', 'skipped']) }))
    .optional()
    .describe('The most recent messages (up to 200), oldest first'),
  workflow: z.object({ id: z.string(), runId: z.string(), status: z.string(), taskQueue: z.string() }),
  retrying: z.array(
    z.object({
      activity: z.string().nullable(),
      attempt: z.number().nullable(),
      lastFailure: z.string().nullable(),
      lastFailureType: z.string().nullable(),
    }),
  ),
});

const diagnosis = z.object({
  sessionId: z.string().nullable(),
  caseId: z.string().nullable(),
  workflowId: z.string().nullable(),
  findings: z.array(
    z.object({ code: z.string(), scenario: z.enum(SCENARIOS), message: z.string(), fix: z.string() }),
  ),
});

const replayError = z.object({ code: z.string(), message: z.string(), field: z.string().optional() });
const replayOutcome = z.union([
  z.object({
    webhookId: z.string(),
    event: z.string(),
    status: z.literal('replayed'),
    workflowId: z.string(),
    delivery: z
      .enum(['accepted', 'resumed', 'duplicate'])
      .describe('duplicate: Temporal already had this webhook-id (nothing happens twice)'),
  }),
  z.object({
    webhookId: z.string(),
    event: z.string(),
    status: z.literal('ignored'),
    reason: z.string(),
  }),
  z.object({
    webhookId: z.string(),
    event: z.string(),
    status: z.literal('refused'),
    error: replayError.describe('What still fails; the event stays kept'),
  }),
]);
const keptEvents = z.object({
  orgId: z.string(),
  waiting: z.number().describe('Refused events waiting for a replay'),
  groups: z.array(
    z.object({
      event: z.string(),
      field: z.string().nullable(),
      code: z.string(),
      count: z.number(),
      since: z.string(),
      lastAt: z.string(),
    }),
  ),
  dropped: z
    .object({ count: z.number(), lastAt: z.string() })
    .nullable()
    .describe('Refused events dropped unreplayed (more than 1,000 waiting)'),
  events: z
    .array(
      z.object({
        webhookId: z.string(),
        event: z.string(),
        field: z.string().nullable(),
        code: z.string(),
        attempts: z.number().describe('Deliveries of this webhook-id'),
        receivedAt: z.string(),
        lastAt: z.string().describe('The last delivery; the event is deleted 30 days after it'),
      }),
    )
    .describe('Oldest first; never the body'),
  fix: z.string().optional(),
});
const unmapped = z.object({
  organizations: z.array(
    z.object({
      opencxOrganizationId: z.string(),
      events: z.number(),
      firstSeenAt: z.string(),
      lastSeenAt: z.string(),
      message: z.string(),
    }),
  ),
  fix: z.string().optional(),
});

const attentionItem = z.object({
  orgId: z.string(),
  sessionId: z.string().nullable().describe('null for an organization-level item'),
  kind: z.enum(ATTENTION_KINDS),
  message: z.string().describe('what is wrong, for people'),
  fix: z.string().describe('what to do about it'),
  since: z.string().describe('when it was first seen (ISO 8601)'),
  detail: z.string().describe('the step, activity or error it comes from'),
  links: z.object({
    inspector: z.string().nullable().describe("the console's conversation inspector"),
    temporal: z.string().nullable().describe("the conversation's workflow in the Temporal UI"),
  }),
});
const attentionList = (withOrg: boolean) =>
  z.object({
    ...(withOrg && { orgId: z.string() }),
    count: z.number().describe('items listed'),
    counts: z
      .record(z.enum(ATTENTION_KINDS), z.number())
      .describe('items by kind (all, not only those listed)'),
    items: z.array(attentionItem).describe('newest first'),
  });

const opencxEnvelopes = HANDLED_EVENTS.map((event) =>
  z.object({
    event: z.literal(event),
    organization_id: z.string().min(1),
    data: eventDataSchemas[event],
  }),
);

const json = (schema: z.ZodType, io: 'input' | 'output' = 'output') => ({
  'application/json': { schema: schemaOf(schema, io) },
});
const ok = (description: string, schema: z.ZodType) => ({ description, content: json(schema) });
const errorRef = (description: string) => ({
  description,
  content: { 'application/json': { schema: { $ref: '#/components/schemas/Error' } } },
});

const orgId = {
  name: 'orgId',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$' },
};
const sessionId = {
  name: 'sessionId',
  in: 'path',
  required: true,
  schema: { type: 'string', pattern: '^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$' },
  description: 'The OpenCX session (conversation) id',
};
const eventId = {
  name: 'eventId',
  in: 'path',
  required: true,
  schema: { type: 'string', maxLength: 200 },
  description: 'The webhook-id of the refused delivery',
};
const limit = (max: number) => ({
  name: 'limit',
  in: 'query',
  schema: { type: 'integer', minimum: 1, maximum: max, default: 100 },
});
const admin = [{ adminToken: [] }];
const adminErrors = {
  '400': errorRef('The request is not valid: error.field names the problem'),
  '401': errorRef('Missing or wrong admin token'),
  '403': errorRef("An organization's token outside its organization, or on an operator-only route"),
  '429': errorRef('Too many failed attempts from this address'),
};
const temporalErrors = {
  '404': errorRef('No such conversation'),
  '503': errorRef('Temporal or the store is not reachable; retry later'),
};

/** The document served at /openapi.json. */
export function openApiDocument(serverUrl: string): JsonSchema {
  const settingsBody = {
    required: true,
    content: json(settingsInputSchema, 'input'),
  };
  return {
    openapi: '3.1.0',
    info: {
      title: 'OpenCX ⇄ Creatio bridge',
      version: '1',
      description:
        'Keeps OpenCX conversations and Creatio cases in sync. Errors are `{ error: { code, message, field?, fix? } }`.',
    },
    servers: [{ url: serverUrl }],
    components: {
      securitySchemes: {
        adminToken: { type: 'http', scheme: 'bearer', description: 'ADMIN_API_TOKEN' },
        standardWebhooks: {
          type: 'apiKey',
          in: 'header',
          name: 'webhook-signature',
          description: 'Standard Webhooks signature (webhook-id, webhook-timestamp, webhook-signature)',
        },
      },
      schemas: { Error: schemaOf(errorBody, 'output') },
    },
    paths: {
      '/v1/orgs/{orgId}/integrations/creatio': {
        parameters: [orgId],
        put: {
          operationId: 'testAndSave',
          summary: 'Test & Save: run every live check, store the settings only if all pass',
          security: admin,
          requestBody: settingsBody,
          responses: {
            '200': ok('Saved (updated)', settingsView),
            '201': ok('Saved (new organization)', settingsView),
            '422': errorRef('A check failed; nothing stored. error.code names it, `checks` lists all'),
            '409': errorRef(
              'opencx_organization_taken: another organization receives this OpenCX organization (error.message names both)',
            ),
            ...adminErrors,
          },
        },
        get: {
          operationId: 'getSettings',
          summary: 'The stored settings, secrets masked, with the webhook URL',
          security: admin,
          responses: {
            '200': ok('Stored settings', settingsView),
            '404': errorRef('The organization has no Creatio integration'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/integrations/creatio/test': {
        parameters: [orgId],
        post: {
          operationId: 'testSettings',
          summary: 'The same live checks as Test & Save, without saving',
          security: admin,
          requestBody: settingsBody,
          responses: {
            '200': ok(
              'Each check with its outcome and fix',
              z.object({ ok: z.boolean(), checks: z.array(check), notices: z.array(notice) }),
            ),
            '409': errorRef(
              'opencx_organization_taken: another organization receives this OpenCX organization',
            ),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/integrations/creatio/webhook-token': {
        parameters: [orgId],
        post: {
          operationId: 'rotateWebhookToken',
          summary: 'Rotate the Creatio webhook token; the old URL stops working at once',
          security: admin,
          responses: {
            '200': ok('The new webhook URL', z.object({ webhookUrl: z.string() })),
            '404': errorRef('The organization has no Creatio integration'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/sessions/{sessionId}': {
        parameters: [orgId, sessionId],
        get: {
          operationId: 'getSession',
          summary: 'The conversation as its workflow sees it',
          security: admin,
          responses: { '200': ok('Conversation state', sessionView), ...adminErrors, ...temporalErrors },
        },
      },
      '/v1/orgs/{orgId}/sessions/{sessionId}/resume': {
        parameters: [orgId, sessionId],
        post: {
          operationId: 'resumeStep',
          summary: 'Try the parked step again now',
          security: admin,
          responses: {
            '200': ok('Resumed', z.object({ status: z.literal('resumed'), step: z.string() })),
            '409': errorRef('No step is parked (nothing_parked)'),
            ...adminErrors,
            ...temporalErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/sessions/{sessionId}/skip': {
        parameters: [orgId, sessionId],
        post: {
          operationId: 'skipStep',
          summary:
            'Give up the parked step (recorded in the state and on the case); the conversation goes on',
          security: admin,
          requestBody: { required: true, content: json(skipBodySchema, 'input') },
          responses: {
            '200': ok(
              'Skipped',
              z.object({ status: z.literal('skipped'), step: z.string(), reason: z.string() }),
            ),
            '409': errorRef('No step is parked, or the step cannot be skipped'),
            ...adminErrors,
            ...temporalErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/diagnose': {
        parameters: [
          orgId,
          {
            name: 'sessionId',
            in: 'query',
            schema: { type: 'string' },
            description: 'The OpenCX session id',
          },
          {
            name: 'caseId',
            in: 'query',
            schema: { type: 'string', format: 'uuid' },
            description: 'Or the Creatio case Id',
          },
        ],
        get: {
          operationId: 'diagnose',
          summary: 'Walk the troubleshooting page for one conversation; empty findings = nothing wrong',
          security: admin,
          responses: {
            '200': ok('Findings, each with its fix', diagnosis),
            ...adminErrors,
            ...temporalErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/attention': {
        parameters: [orgId, limit(5000)],
        get: {
          operationId: 'listAttention',
          summary:
            "The organization's conversations that need a person now (parked steps, failing activities, blank AI fields, closures not synced) and its own items (a business process not calling, refused webhook calls), newest first",
          security: admin,
          responses: { '200': ok('Items with their links', attentionList(true)), ...adminErrors },
        },
      },
      '/v1/attention': {
        parameters: [limit(5000)],
        get: {
          operationId: 'listAllAttention',
          summary: 'Every organization’s items that need a person now, newest first (operator token only)',
          security: admin,
          responses: { '200': ok('Items with their links', attentionList(false)), ...adminErrors },
        },
      },
      '/v1/orgs/{orgId}/opencx-events': {
        parameters: [orgId, limit(1000)],
        get: {
          operationId: 'listRefusedOpencxEvents',
          summary: 'Signed OpenCX events the bridge refused, kept for a replay (never their content)',
          security: admin,
          responses: {
            '200': ok('What waits, grouped and one by one', keptEvents),
            '404': errorRef('The organization has no Creatio integration'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/opencx-events/replay': {
        parameters: [orgId],
        post: {
          operationId: 'replayRefusedOpencxEvents',
          summary:
            'Replay every kept event through the current validation: those that validate reach their conversation (once) and are marked replayed; the others stay kept',
          security: admin,
          responses: {
            '200': ok(
              'Each event with its outcome',
              z.object({
                replayed: z.number(),
                refused: z.number(),
                ignored: z.number(),
                events: z.array(replayOutcome),
              }),
            ),
            '404': errorRef('The organization has no Creatio integration'),
            '503': errorRef('Temporal or the store is not reachable; retry later'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/opencx-events/{eventId}/replay': {
        parameters: [orgId, eventId],
        post: {
          operationId: 'replayRefusedOpencxEvent',
          summary: 'Replay one kept event (as above)',
          security: admin,
          responses: {
            '200': ok(
              'Replayed, ignored (an event the bridge no longer acts on) or already replayed',
              z.union([
                replayOutcome,
                z.object({
                  webhookId: z.string(),
                  event: z.string(),
                  status: z.literal('already_replayed'),
                  replayedAt: z.string(),
                }),
              ]),
            ),
            '422': errorRef('Still refused: error.field names what fails; the event stays kept'),
            '404': errorRef('No such kept event (event_not_found), or no such organization'),
            '503': errorRef('Temporal or the store is not reachable; retry later'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/admin-tokens': {
        parameters: [orgId],
        post: {
          operationId: 'createOrgToken',
          summary:
            'A new admin token that opens this organization only (operator token; the token is shown once, only its hash is kept)',
          security: admin,
          requestBody: { required: false, content: json(newTokenSchema, 'input') },
          responses: {
            '201': ok(
              'The token, shown once',
              z.object({
                id: z.string(),
                label: z.string(),
                createdAt: z.string(),
                token: z.string(),
                note: z.string(),
              }),
            ),
            '404': errorRef('The organization has no Creatio integration'),
            ...adminErrors,
          },
        },
        get: {
          operationId: 'listOrgTokens',
          summary: "The organization's admin tokens (never the tokens themselves; operator token)",
          security: admin,
          responses: {
            '200': ok(
              'Oldest first',
              z.object({
                orgId: z.string(),
                tokens: z.array(
                  z.object({
                    id: z.string(),
                    label: z.string(),
                    createdAt: z.string(),
                    revokedAt: z.string().nullable(),
                  }),
                ),
              }),
            ),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/admin-tokens/{tokenId}': {
        parameters: [orgId, { name: 'tokenId', in: 'path', required: true, schema: { type: 'string' } }],
        delete: {
          operationId: 'revokeOrgToken',
          summary: 'Revoke one of the organization’s admin tokens (operator token)',
          security: admin,
          responses: {
            '204': { description: 'Revoked' },
            '404': errorRef('No such token in this organization'),
            ...adminErrors,
          },
        },
      },
      '/v1/orgs/{orgId}/audit': {
        parameters: [orgId, limit(1000)],
        get: {
          operationId: 'auditLog',
          summary:
            'Who changed what in the organization (settings, tokens, resume, skip, replays), newest first; never a secret',
          security: admin,
          responses: {
            '200': ok(
              'Newest first',
              z.object({
                orgId: z.string(),
                entries: z.array(
                  z.object({
                    at: z.string(),
                    actor: z.string(),
                    action: z.string(),
                    detail: z.record(z.string(), z.unknown()),
                  }),
                ),
              }),
            ),
            ...adminErrors,
          },
        },
      },
      '/v1/opencx-events/unmapped': {
        parameters: [limit(1000)],
        get: {
          operationId: 'listUnmappedOpencxOrganizations',
          summary:
            'OpenCX organizations that sent events no organization receives (answered 401), with counts and last seen',
          security: admin,
          responses: { '200': ok('Most recently seen first', unmapped), ...adminErrors },
        },
      },
      '/webhooks/opencx': {
        post: {
          operationId: 'opencxWebhook',
          summary: 'OpenCX conversation events (Standard Webhooks signature)',
          security: [{ standardWebhooks: [] }],
          requestBody: {
            required: true,
            content: {
              'application/json': {
                schema: {
                  oneOf: opencxEnvelopes.map((e) => schemaOf(e)),
                  description: 'Other event names are acknowledged and ignored.',
                },
              },
            },
          },
          responses: {
            '202': { description: 'Accepted: durable in the conversation workflow' },
            '200': { description: 'Acknowledged (an event the bridge does not act on, or a redelivery)' },
            '400': errorRef(
              'The event is not valid: error.field names the problem. A signed event is kept for a replay (/v1/orgs/{orgId}/opencx-events)',
            ),
            '401': errorRef(
              'Bad or missing signature, a timestamp outside the tolerance, or an organization_id no organization receives',
            ),
            '404': errorRef('The organization has no Creatio integration'),
            '503': errorRef('Temporal or the store is not reachable; OpenCX retries'),
          },
        },
      },
      '/webhooks/creatio/{token}': {
        parameters: [
          {
            name: 'token',
            in: 'path',
            required: true,
            schema: { type: 'string' },
            description: 'The organization webhook token',
          },
        ],
        post: {
          operationId: 'creatioWebhook',
          summary: 'Calls from the Creatio business processes (agent reply, case closure)',
          requestBody: { required: true, content: json(creatioWebhookBodySchema, 'input') },
          responses: {
            '202': ok('Accepted', z.object({ status: z.literal('accepted'), sessionId: z.string() })),
            '200': ok(
              'Ignored: the case was not created by the bridge',
              z.object({ status: z.literal('ignored'), reason: z.string() }),
            ),
            '400': errorRef('The body is not valid: error.field names the problem, error.fix the mapping'),
            '401': errorRef('Unknown token: the process uses a stale webhook URL'),
            '429': errorRef('Too many failed attempts from this address'),
          },
        },
      },
      '/healthz': {
        get: {
          operationId: 'healthz',
          summary: 'Liveness',
          responses: { '200': ok('Alive', z.object({ status: z.literal('ok') })) },
        },
      },
      '/readyz': {
        get: {
          operationId: 'readyz',
          summary: 'Readiness: Temporal, store, workers (`checks` with the operator token only)',
          responses: {
            '200': ok(
              'Ready',
              z.object({
                ready: z.boolean(),
                checks: z.record(z.string(), z.looseObject({ ok: z.boolean() })).optional(),
              }),
            ),
            '401': { description: 'A token that is not the operator token' },
            '503': { description: 'Not ready: `checks` (operator token) names what is not' },
          },
        },
      },
      '/metrics': {
        get: {
          operationId: 'metrics',
          summary: 'Prometheus metrics',
          responses: {
            '200': {
              description: 'Text exposition format',
              content: { 'text/plain': { schema: { type: 'string' } } },
            },
          },
        },
      },
      '/openapi.json': {
        get: {
          operationId: 'openapi',
          summary: 'This document',
          responses: {
            '200': {
              description: 'OpenAPI 3.1',
              content: { 'application/json': { schema: { type: 'object' } } },
            },
          },
        },
      },
      '/admin/': {
        get: {
          operationId: 'adminConsole',
          summary: 'The admin console (HTML): settings with Test & Save, webhook URL, conversation inspector',
          responses: {
            '200': { description: 'HTML', content: { 'text/html': { schema: { type: 'string' } } } },
          },
        },
      },
      '/admin/config.json': {
        get: {
          operationId: 'adminConsoleConfig',
          summary: 'What the console needs to link to the Temporal UI',
          responses: {
            '200': ok(
              'Temporal UI origin and namespace',
              z.object({ temporalUiOrigin: z.string(), namespace: z.string() }),
            ),
          },
        },
      },
      ...codecPaths(),
    },
  };
}

/** The Temporal remote codec's two endpoints (src/api/codec-routes.ts). */
function codecPaths() {
  return Object.fromEntries(
    (['encode', 'decode'] as const).map((op) => [
      `/codec/${op}`,
      {
        post: {
          operationId: `codec${op[0]!.toUpperCase()}${op.slice(1)}`,
          summary: `Temporal remote codec: ${op} payloads (for the Temporal UI and CLI)`,
          security: admin,
          requestBody: { required: true, content: json(payloadsSchema, 'input') },
          responses: {
            '200': { description: `${op === 'encode' ? 'Encoded' : 'Decoded'} payloads` },
            '401': errorRef('Missing or wrong admin token'),
          },
        },
      },
    ]),
  );
}
