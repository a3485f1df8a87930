import { z } from 'zod';
import {
  agentReplyRules,
  aiFieldSchema,
  CONTACT_MATCHING,
  DEFAULT_AGENT_REPLY_FILTER,
  DEFAULT_CLOSURE_STATUS_NAMES,
  DEFAULT_OPENCX_API_BASE_URL,
  GUID_RE,
  MASK,
  ODATA_PATHS,
  OPENCX_ORG_ID_RE,
  opencxMapping,
  type OrgSettings,
} from './schema';

/**
 * The settings of an organization's integration, each written once: what the request body accepts,
 * what the settings answer shows (secrets masked), its description, default, the Test & Save check
 * that covers it and its place in the admin console. Everything else is derived from these two
 * lists: the request schema (`settingsInputSchema`), the answer (`publicView`) and its OpenAPI
 * schema (`settingsViewSchema`), the console's form (`consoleFields`, served in
 * /admin/config.json) and which check covers which field (`FIELD_CHECKS`).
 *
 * To add a setting: add it here, to `OrgSettings` (schema.ts) and to what Test & Save stores
 * (test-and-save.ts `testCreatio`).
 */

/** Every check Test & Save reports (the `name` of a check). */
export const CHECK_NAMES = [
  'instance_url',
  'instance_reachable',
  'oauth_token',
  'odata_access',
  'case_metadata',
  'lookups',
  'case_permissions',
  'opencx_api_key',
  'opencx_organization',
  'agent_reply_process',
  'closure_process',
] as const;
export type CheckName = (typeof CHECK_NAMES)[number];

/** What a field holds, as the console shows and edits it. */
export type FieldType = 'text' | 'secret' | 'guid' | 'enum' | 'boolean' | 'list' | 'object';

/** Where a field goes in the admin console's settings form (index.html `data-fields`). */
export type ConsoleGroup = 'creatio' | 'cases' | 'opencx' | 'verify';

export interface ConsoleField {
  label: string;
  group: ConsoleGroup;
  placeholder?: string;
  /** Labels of an enum's values (a select). */
  options?: Record<string, string>;
  /** The request path the control edits when not the field itself (a part of an object). */
  path?: string;
  /** An empty control: sent as null (clears it) or left out (keeps what is stored). Default: null if accepted. */
  empty?: 'null' | 'omit';
  /** The control is a table of its own in index.html (AI fields), filled by console.js. */
  custom?: boolean;
}

export interface SettingsField {
  type: FieldType;
  description: string;
  /** What the request body accepts; absent: shown in the answer only. */
  input?: z.ZodType;
  /** What the settings answer holds and how it is read; absent: not shown (Test & Save only). */
  view?: { schema: z.ZodType; of: (s: OrgSettings, orgId: string) => unknown };
  /** Never shown: the answer holds a mask (or null when unset). */
  secret?: boolean;
  default?: unknown;
  /** The Test & Save check that finds it wrong. */
  check?: CheckName;
  /** Absent: not on the console's form. */
  console?: ConsoleField;
}

const guid = z
  .string()
  .trim()
  .regex(GUID_RE, 'must be a GUID such as 410006e1-ca4e-4502-a9ec-e54d922d2c00')
  .transform((v) => v.toLowerCase());
const optionalGuid = guid.nullish().transform((v) => v ?? undefined);
const nullableString = z.string().nullable();
const masked = (description: string) => z.string().describe(`${description} ("********" when set)`);

/** A GUID of a Creatio record, optional, found or not by the `lookups` check. */
const guidField = (
  key: 'defaultCaseOwnerId' | 'defaultCaseGroupId' | 'resolvedStatusId' | 'reopenStatusId',
  description: string,
  label: string,
  placeholder = 'GUID',
) =>
  ({
    type: 'guid',
    description,
    input: optionalGuid,
    view: { schema: nullableString, of: (s: OrgSettings) => s[key] ?? null },
    check: 'lookups',
    console: { label, group: 'cases', placeholder },
  }) as const;

/** The fields at the top of the body and the answer, in their order. */
export const SETTINGS_FIELDS = {
  instanceUrl: {
    type: 'text',
    description: 'The address Creatio is opened with, e.g. https://acme.creatio.com',
    input: z.string().trim().min(1, 'is required'),
    view: { schema: z.string(), of: (s) => s.instanceUrl },
    check: 'instance_url',
    console: { label: 'Creatio instance URL', group: 'creatio', placeholder: 'https://acme.creatio.com' },
  },
  identityServiceUrl: {
    type: 'text',
    description: 'The Creatio Identity Service; empty: derived from the instance URL',
    input: z
      .string()
      .trim()
      .nullish()
      .transform((v) => v || undefined),
    view: { schema: nullableString, of: (s) => s.identityServiceUrl ?? null },
    check: 'oauth_token',
    console: {
      label: 'Identity Service URL',
      group: 'creatio',
      placeholder: 'empty: derived from the instance URL',
    },
  },
  clientId: {
    type: 'text',
    description: 'The client id of the OAuth 2.0 (client credentials) application in Creatio',
    input: z.string().trim().min(1, 'is required').max(200),
    view: { schema: z.string(), of: (s) => s.clientId },
    check: 'oauth_token',
    console: { label: 'Client ID', group: 'creatio' },
  },
  clientSecret: {
    type: 'secret',
    description: 'The client secret of that application; omitted on an update: the stored one is kept',
    secret: true,
    input: z.string().min(1).max(500).optional(),
    view: { schema: masked('The client secret'), of: () => MASK },
    check: 'oauth_token',
    console: { label: 'Client secret', group: 'creatio', empty: 'omit' },
  },
  defaultCaseOwnerId: guidField(
    'defaultCaseOwnerId',
    'The Contact that owns new cases',
    'Default case owner ID',
  ),
  defaultCaseGroupId: guidField(
    'defaultCaseGroupId',
    'The group (SysAdminUnit) new cases are assigned to',
    'Default case group ID',
  ),
  resolvedStatusId: guidField('resolvedStatusId', 'The Case status of a resolved case', 'Resolved status ID'),
  afterClose: {
    type: 'enum',
    description: 'A customer message after the conversation closed: logged on the case (log) or reopens it',
    input: z.enum(['log', 'reopen']).default('log'),
    view: { schema: z.enum(['log', 'reopen']), of: (s) => s.afterClose },
    default: 'log',
    console: {
      label: 'After the conversation closed, a customer message',
      group: 'cases',
      options: { log: 'is logged on the same case', reopen: 'reopens the case' },
    },
  },
  reopenStatusId: guidField(
    'reopenStatusId',
    'The Case status a reopened case gets (required with afterClose "reopen")',
    'Reopen status ID',
    'GUID (with reopen)',
  ),
  createCaseOnlyOnHandoff: {
    type: 'boolean',
    description:
      'Create the case when the conversation is handed off to an agent, not with its first message',
    input: z.boolean().default(false),
    view: { schema: z.boolean(), of: (s) => s.createCaseOnlyOnHandoff },
    default: false,
    console: { label: 'Create case only on handoff', group: 'cases' },
  },
  agentReplyFilter: {
    type: 'object',
    description: 'Which Creatio activities of a case are agent replies sent to the customer',
    input: z
      .strictObject({
        activityTypes: z.array(z.string().trim().min(1)).min(1, 'needs at least one activity type'),
        activityCategories: z.array(z.string().trim().min(1)).default([]),
      })
      .default(DEFAULT_AGENT_REPLY_FILTER),
    view: {
      schema: z.object({ activityTypes: z.array(z.string()), activityCategories: z.array(z.string()) }),
      of: (s) => s.agentReplyFilter,
    },
    default: DEFAULT_AGENT_REPLY_FILTER,
    check: 'lookups',
    console: {
      label: 'Agent-reply activity types',
      group: 'cases',
      placeholder: 'Email',
      path: 'agentReplyFilter.activityTypes',
    },
  },
  agentReplyRules: {
    type: 'object',
    description: 'What the agent-reply filter sends to the customer, and what it never does',
    // Shown in the answer; accepted back (a GET sent as a PUT) and ignored.
    input: z.object({ sent: z.array(z.string()), neverSent: z.array(z.string()) }).optional(),
    view: {
      schema: z.object({ sent: z.array(z.string()), neverSent: z.array(z.string()) }),
      of: (s) => agentReplyRules(s.agentReplyFilter),
    },
  },
  closureStatusNames: {
    type: 'list',
    description: 'The Case status names that close the conversation in OpenCX',
    input: z
      .array(z.string().min(1))
      .min(1, 'needs at least one status name')
      .default(DEFAULT_CLOSURE_STATUS_NAMES),
    view: { schema: z.array(z.string()), of: (s) => s.closureStatusNames },
    default: DEFAULT_CLOSURE_STATUS_NAMES,
    check: 'lookups',
    console: { label: 'Closure status names', group: 'cases', placeholder: 'Resolved, Closed' },
  },
  aiFields: {
    type: 'list',
    description: 'Case columns the AI fills from the conversation',
    input: z.array(aiFieldSchema).max(50).default([]),
    view: {
      schema: z.array(
        z.object({
          column: z.string(),
          title: z.string(),
          type: z.enum(['text', 'dropdown']),
          description: z.string(),
          enabled: z.boolean(),
        }),
      ),
      of: (s) => s.aiFields,
    },
    default: [],
    check: 'case_metadata',
    console: { label: 'AI fields', group: 'cases', custom: true },
  },
  contactMatching: {
    type: 'enum',
    description: 'Which existing Creatio Contact a case is linked to (README, Contacts)',
    input: z.enum(CONTACT_MATCHING).default('verified'),
    view: { schema: z.enum(CONTACT_MATCHING), of: (s) => s.contactMatching ?? 'verified' },
    default: 'verified',
    console: {
      label: 'A case is linked to an existing Contact',
      group: 'cases',
      options: {
        never: 'never (a new Contact each time)',
        verified: 'on a verified channel only',
        email_or_phone: 'by the email or phone the customer gave',
      },
    },
  },
  verifiedChannels: {
    type: 'list',
    description: 'Channels whose contact identity OpenCX has proven',
    input: z.array(z.string().trim().toLowerCase().min(1).max(50)).max(20).default([]),
    view: { schema: z.array(z.string()), of: (s) => s.verifiedChannels ?? [] },
    default: [],
    console: { label: 'Verified channels', group: 'cases', placeholder: 'sms, whatsapp' },
  },
  verifyProcesses: {
    type: 'boolean',
    description:
      'Test & Save only (not stored): also check that the Creatio business processes call the bridge back, with a probe case',
    input: z.boolean().default(false),
    default: false,
    console: {
      label:
        'Also check that the Creatio business processes call back (a probe case is created and removed; up to 10 s)',
      group: 'verify',
    },
  },
  odataPath: {
    type: 'enum',
    description: 'Where the instance serves OData 4, found by Test & Save (/odata: Creatio on .NET Core)',
    // Shown in the answer; accepted back and ignored.
    input: z.enum(ODATA_PATHS).optional(),
    view: { schema: z.enum(ODATA_PATHS), of: (s) => s.odataPath ?? '/0/odata' },
    check: 'instance_reachable',
  },
} satisfies Record<string, SettingsField>;

/** The OpenCX fields (`opencx.*` in the body and the answer). */
export const OPENCX_FIELDS = {
  apiBaseUrl: {
    type: 'text',
    description:
      'The OpenCX API; omitted on an update: the stored one is kept (new organizations: the default)',
    input: z.url({ protocol: /^https?$/ }).optional(),
    view: { schema: z.string(), of: (s) => s.opencx.apiBaseUrl },
    default: DEFAULT_OPENCX_API_BASE_URL,
    check: 'opencx_api_key',
    console: {
      label: 'API base URL',
      group: 'opencx',
      placeholder: DEFAULT_OPENCX_API_BASE_URL,
      empty: 'omit',
    },
  },
  apiKey: {
    type: 'secret',
    description: 'An OpenCX API key that reads and writes chat sessions',
    secret: true,
    input: z.string().min(1).max(500).optional(),
    view: { schema: masked('The OpenCX API key').nullable(), of: (s) => (s.opencx.apiKey ? MASK : null) },
    check: 'opencx_api_key',
    console: { label: 'API key', group: 'opencx', empty: 'omit' },
  },
  webhookSecret: {
    type: 'secret',
    description: "The signing secret of OpenCX's webhooks",
    secret: true,
    input: z.string().min(1).max(500).optional(),
    view: {
      schema: masked('The webhook signing secret').nullable(),
      of: (s) => (s.opencx.webhookSecret ? MASK : null),
    },
    console: { label: 'Webhook signing secret', group: 'opencx', empty: 'omit' },
  },
  organizationId: {
    type: 'text',
    description:
      "The OpenCX organization_id whose events this organization receives; omitted on an update: the stored one is kept; null: the bridge's org id",
    input: z
      .string()
      .trim()
      .regex(OPENCX_ORG_ID_RE, 'must be 1-200 printable characters without spaces')
      .nullish(),
    view: { schema: z.string(), of: (s, orgId) => s.opencx.organizationId ?? orgId },
    check: 'opencx_organization',
    console: {
      label: 'OpenCX organization ID',
      group: 'opencx',
      placeholder: "empty: the same as this organization's ID",
    },
  },
  mapping: {
    type: 'text',
    description: '"OpenCX organization X → bridge organization Y"',
    view: { schema: z.string(), of: (s, orgId) => opencxMapping(orgId, s) },
  },
} satisfies Record<string, SettingsField>;

type Fields = Record<string, SettingsField>;
type InputShape<T extends Fields> = {
  [K in keyof T as T[K] extends { input: z.ZodType } ? K : never]: T[K] extends { input: infer S }
    ? S
    : never;
};

function inputShape<T extends Fields>(fields: T): InputShape<T> {
  return Object.fromEntries(
    Object.entries(fields).flatMap(([k, f]) => (f.input ? [[k, f.input.describe(f.description)]] : [])),
  ) as InputShape<T>;
}

function viewShape(fields: Fields): Record<string, z.ZodType> {
  return Object.fromEntries(
    Object.entries(fields).flatMap(([k, f]) =>
      f.view ? [[k, f.view.schema.description ? f.view.schema : f.view.schema.describe(f.description)]] : [],
    ),
  );
}

function viewOf(fields: Fields, s: OrgSettings, orgId: string): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(fields).flatMap(([k, f]) => (f.view ? [[k, f.view.of(s, orgId)]] : [])),
  );
}

/** Body of PUT /v1/orgs/:orgId/integrations/creatio (and of the /test call). */
export const settingsInputSchema = z.strictObject({
  ...inputShape(SETTINGS_FIELDS),
  opencx: z.strictObject(inputShape(OPENCX_FIELDS)).optional(),
});

export type SettingsInput = z.infer<typeof settingsInputSchema>;

/** The settings answer: every secret replaced by a mask (or null when unset). */
export function publicView(orgId: string, s: OrgSettings, webhookUrl: string) {
  return {
    orgId,
    ...viewOf(SETTINGS_FIELDS, s, orgId),
    opencx: viewOf(OPENCX_FIELDS, s, orgId),
    webhookUrl,
  };
}

/** The settings answer's shape, for the OpenAPI document (src/api/openapi.ts adds notices and checks). */
export const settingsViewShape = {
  orgId: z.string(),
  ...viewShape(SETTINGS_FIELDS),
  opencx: z.object(viewShape(OPENCX_FIELDS)),
  webhookUrl: z.string().describe('The URL the Creatio business processes call'),
};

/** Every field with its path in the body ("opencx.apiKey"), in order. */
export function settingsFields(): ({ name: string } & SettingsField)[] {
  return [
    ...Object.entries(SETTINGS_FIELDS as Fields).map(([k, f]) => ({ name: k, ...f })),
    ...Object.entries(OPENCX_FIELDS as Fields).map(([k, f]) => ({ name: `opencx.${k}`, ...f })),
  ];
}

/** Which Test & Save check covers which field (fields no check reads are absent). */
export const FIELD_CHECKS: Record<string, CheckName> = Object.fromEntries(
  settingsFields().flatMap((f) => (f.check ? [[f.name, f.check]] : [])),
);

/** The GUID fields the `lookups` check looks up in Creatio (test-and-save.ts says where). */
export type LookupGuidField = {
  [K in keyof typeof SETTINGS_FIELDS]: (typeof SETTINGS_FIELDS)[K] extends { type: 'guid'; check: 'lookups' }
    ? K
    : never;
}[keyof typeof SETTINGS_FIELDS];
export const LOOKUP_GUID_FIELDS = settingsFields()
  .filter((f) => f.type === 'guid' && f.check === 'lookups')
  .map((f) => f.name as LookupGuidField);

/** The console's form: what /admin/config.json serves and console.js builds the form from. */
export function consoleFields() {
  return settingsFields().flatMap((f) => {
    if (!f.console) return [];
    const { label, group, placeholder, options, custom } = f.console;
    const path = f.console.path ?? f.name;
    const values = f.type === 'enum' && f.input ? enumValues(f.input) : undefined;
    // The default of the part the control edits (agentReplyFilter.activityTypes: ["Email"]).
    const inner = f.console.path ? path.slice(f.name.length + 1).split('.') : [];
    const fallback = inner.reduce<unknown>(
      (o, k) => (o as Record<string, unknown> | undefined)?.[k],
      f.default,
    );
    const kind =
      f.type === 'boolean'
        ? 'checkbox'
        : values
          ? 'select'
          : Array.isArray(fallback)
            ? 'list'
            : f.secret
              ? 'secret'
              : 'text';
    return [
      {
        path,
        // The control's name: the last part of the path (e.g. "apiKey" for opencx.apiKey).
        control: path.split('.').pop()!,
        label,
        group,
        kind,
        ...(placeholder && { placeholder }),
        ...(custom && { custom }),
        // An empty control: sent as "" (required: the answer says so), as null (clears it), or left
        // out (keeps what is stored, or the default).
        empty: !f.input?.safeParse(undefined).success
          ? 'blank'
          : (f.console.empty ?? (f.input.safeParse(null).success ? 'null' : 'omit')),
        /** In the settings answer (the form is filled from it). */
        shown: !!f.view,
        default: fallback ?? null,
        ...(values && { options: values.map((v) => ({ value: v, label: options?.[v] ?? v })) }),
      },
    ];
  });
}

function enumValues(schema: z.ZodType): string[] | undefined {
  let s: z.ZodType = schema;
  // Through .default() and .optional() to the enum.
  while (s instanceof z.ZodDefault || s instanceof z.ZodOptional) s = s.unwrap() as z.ZodType;
  return s instanceof z.ZodEnum ? (s.options as string[]) : undefined;
}
