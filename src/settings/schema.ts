import { z } from 'zod';

export const GUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

export const aiFieldSchema = z.strictObject({
  column: z.string().trim().min(1).max(128),
  title: z.string().trim().min(1).max(200),
  type: z.enum(['text', 'dropdown']),
  description: z.string().trim().min(1).max(4000),
  enabled: z.boolean().default(true),
});

/**
 * What counts as an agent reply by default (DESIGN.md §8): outgoing Email activities only. Tasks,
 * Calls and other types are internal notes and never reach the customer unless listed explicitly.
 */
export const DEFAULT_AGENT_REPLY_FILTER = { activityTypes: ['Email'], activityCategories: [] };

/** The first release's default; stored settings equal to it are migrated to the one above. */
export const LEGACY_AGENT_REPLY_FILTER = { activityTypes: ['Email', 'Task'], activityCategories: [] };
export const DEFAULT_CLOSURE_STATUS_NAMES = ['Resolved', 'Closed'];
export const DEFAULT_OPENCX_API_BASE_URL = 'https://api.open.cx';

/** An OpenCX `organization_id` as the bridge takes it: 1-200 printable ASCII characters, no space. */
export const OPENCX_ORG_ID_RE = /^[\x21-\x7e]{1,200}$/;

export type AiFieldMapping = z.infer<typeof aiFieldSchema>;

/**
 * How a conversation's case finds its Creatio Contact:
 * - "never": every conversation gets a new Contact;
 * - "verified": an existing Contact is matched only on a channel listed in `verifiedChannels`, by
 *   the identifier that channel proves (the phone number on sms / whatsapp / phone, the address on
 *   email, either on any other listed channel); elsewhere a new Contact;
 * - "email_or_phone": matched by the email or phone the customer gave, whatever the channel (anyone
 *   who types someone else's address gets that person's Contact and case history).
 */
export const CONTACT_MATCHING = ['never', 'verified', 'email_or_phone'] as const;
export type ContactMatching = (typeof CONTACT_MATCHING)[number];

/** Settings as the service uses them: URLs normalised, secrets in clear (in memory only). */
export interface OrgSettings {
  instanceUrl: string;
  identityServiceUrl: string | undefined;
  clientId: string;
  clientSecret: string;
  defaultCaseOwnerId: string | undefined;
  defaultCaseGroupId: string | undefined;
  resolvedStatusId: string | undefined;
  afterClose: 'log' | 'reopen';
  reopenStatusId: string | undefined;
  createCaseOnlyOnHandoff: boolean;
  agentReplyFilter: { activityTypes: string[]; activityCategories: string[] };
  closureStatusNames: string[];
  aiFields: AiFieldMapping[];
  /** Absent in settings saved before it existed: "verified". */
  contactMatching?: ContactMatching;
  /** Absent in settings saved before it existed: none. */
  verifiedChannels?: string[];
  opencx: {
    apiBaseUrl: string;
    apiKey: string | undefined;
    webhookSecret: string | undefined;
    /** The OpenCX `organization_id` whose events this organization receives; absent: its own id. */
    organizationId?: string;
  };
  /**
   * Where the instance serves OData 4, found by Test & Save: `/0/odata` (Creatio on .NET Framework,
   * every cloud site) or `/odata` (Creatio on .NET / .NET Core); reference/creatio-api.md §2.1.
   * Absent in settings saved before it existed: `/0/odata`.
   */
  odataPath?: OdataPath;
}

export const ODATA_PATHS = ['/0/odata', '/odata'] as const;
export type OdataPath = (typeof ODATA_PATHS)[number];

export const MASK = '********';

/** The OpenCX organization id settings keep: the one given (null: back to the default), else the stored one. */
export function opencxOrganizationField(
  given: string | null | undefined,
  stored: string | undefined,
): { organizationId?: string } {
  const id = given === null ? undefined : (given ?? stored);
  return id ? { organizationId: id } : {};
}

/** "OpenCX organization X → bridge organization Y", as the settings and Test & Save show it. */
export function opencxMapping(orgId: string, s: { opencx: { organizationId?: string } }): string {
  return `OpenCX organization ${s.opencx.organizationId ?? orgId} → bridge organization ${orgId}`;
}

/**
 * What the agent-reply filter sends to the customer and what it never does, in words (the settings
 * answer, Test & Save's included): the rules of src/activities/agent-replies.ts `replyQuery`.
 */
export function agentReplyRules(f: OrgSettings['agentReplyFilter']): { sent: string[]; neverSent: string[] } {
  const others = f.activityTypes.filter((t) => t !== 'Email');
  const categories =
    f.activityCategories.length > 0
      ? ` in the categories ${f.activityCategories.map((c) => `"${c}"`).join(', ')}`
      : '';
  const sent: string[] = [];
  if (f.activityTypes.includes('Email')) {
    sent.push(
      `Outgoing Emails${categories} that were sent (not drafts), addressed To the case's contact and no one else (copies to colleagues are fine), without Creatio's Auto-Submitted header`,
    );
  }
  for (const t of others) {
    sent.push(
      `"${t}" activities${categories} on the case, whoever they are addressed to (customers without an email address included)`,
    );
  }
  const neverSent = [
    'Drafts (Emails whose send status is Not sent)',
    'Incoming Emails',
    "Emails addressed To anyone besides the case's contact (a supplier, a colleague, a queue)",
    "Creatio's automatic notifications (Auto-Submitted)",
    'Inline images of an Email (signatures, logos) as attachments',
    'Activities the bridge wrote (titles starting with [OpenCX])',
  ];
  const unlisted = ['Task', 'Call'].filter((t) => !f.activityTypes.includes(t));
  if (unlisted.length > 0)
    neverSent.push(
      `${unlisted.map((t) => `"${t}"`).join(' and ')} activities and any other type not listed (internal notes)`,
    );
  if (others.length === 0) {
    neverSent.push(
      'Anything on a case whose contact has no email address (chat, SMS, WhatsApp customers): list the activity type (and category) your agents use to reply to them, e.g. Task with the category "Reply to customer"',
    );
  }
  return { sent, neverSent };
}
