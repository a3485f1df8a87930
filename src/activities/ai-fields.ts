import type { CreatioClient, Entity } from '../creatio/client';
import type { PropertyMetadata } from '../creatio/metadata';
import { closestName } from '../creatio/metadata';
import { ApplicationFailure } from '@temporalio/activity';
import { completeJson, LlmError, type LlmConfig } from '../llm/client';
import { AttentionWriter, runningConversation } from './attention';
import type { OrgContexts } from './context';
import { withFailures } from './failures';
import type { AiFieldMapping } from '../settings/schema';

export type AiFieldOutcomeKind =
  | 'written'
  | 'left_blank'
  | 'rejected_value'
  | 'column_missing'
  | 'mapping_disabled'
  | 'llm_not_configured'
  | 'llm_error';

/**
 * The LLM failed: every field's outcome rides along (those the LLM was to fill as `llm_error` with
 * the cause), so the state ties each blank column to its reason even when Temporal gives up.
 */
export class AiFieldsLlmError extends Error {
  override readonly name = 'AiFieldsLlmError';
  constructor(
    readonly llm: LlmError,
    readonly outcomes: AiFieldOutcome[],
  ) {
    super(llm.message);
  }
}

export interface AiFieldOutcome {
  column: string;
  title: string;
  outcome: AiFieldOutcomeKind;
  value?: string | number | boolean;
  reason?: string;
}

/** What a failed AI-fields activity carries to the workflow (ApplicationFailure details[0]). */
export interface AiFieldsFailureDetails {
  fields: AiFieldOutcome[];
}

/** Values a dropdown description lists, written in double quotes: Pick "High" for outages… */
export function listedValues(description: string): string[] {
  return [...description.matchAll(/"([^"]{1,100})"/g)].map((m) => m[1]!);
}

interface FieldSpec {
  mapping: AiFieldMapping;
  prop: PropertyMetadata;
  /** For dropdowns: allowed names, and the lookup's ids by lower-cased name when the column is a lookup. */
  allowed?: string[];
  lookupIds?: Map<string, string>;
}

const UNKNOWN = new Set(['', 'unknown', 'n/a', 'none', 'null']);

/** Coerces an answer to the column's type; `undefined` with a reason when it cannot be used. */
function coerce(
  spec: FieldSpec,
  raw: unknown,
): { value?: string | number | boolean; reason?: string; blank?: true } {
  if (raw === null || raw === undefined || (typeof raw === 'string' && UNKNOWN.has(raw.trim().toLowerCase())))
    return { blank: true };
  const text =
    typeof raw === 'string'
      ? raw.trim()
      : typeof raw === 'number' || typeof raw === 'boolean'
        ? String(raw)
        : '';
  if (spec.allowed) {
    const match = spec.allowed.find((a) => a.toLowerCase() === text.toLowerCase());
    if (!match)
      return {
        reason: `"${text.slice(0, 100)}" is not one of the allowed values (${spec.allowed.join(', ')})`,
      };
    if (spec.lookupIds) return { value: spec.lookupIds.get(match.toLowerCase())! };
    return { value: match };
  }
  switch (spec.prop.type) {
    case 'Edm.Boolean':
      if (['true', 'yes', '1'].includes(text.toLowerCase())) return { value: true };
      if (['false', 'no', '0'].includes(text.toLowerCase())) return { value: false };
      return { reason: `"${text}" is not a yes/no value` };
    case 'Edm.Int32':
    case 'Edm.Int64':
    case 'Edm.Int16':
    case 'Edm.Decimal':
    case 'Edm.Double': {
      const n = Number(text.replace(/,/g, ''));
      if (!Number.isFinite(n)) return { reason: `"${text}" is not a number` };
      return { value: spec.prop.type.startsWith('Edm.Int') ? Math.round(n) : n };
    }
    case 'Edm.DateTimeOffset': {
      const t = Date.parse(text);
      return Number.isNaN(t) ? { reason: `"${text}" is not a date` } : { value: new Date(t).toISOString() };
    }
    case 'Edm.Guid':
      return { reason: 'a lookup column needs type "dropdown" so the answer can be matched to a record' };
    default: {
      const max = spec.prop.maxLength;
      return { value: max && text.length > max ? text.slice(0, max) : text };
    }
  }
}

/**
 * Evaluates the organization's AI fields from the transcript with one structured-output call.
 * Returns each field's outcome, and the PATCH for the values that can be written.
 */
export async function evaluateAiFields(opts: {
  client: CreatioClient;
  mappings: AiFieldMapping[];
  llm: LlmConfig | undefined;
  transcript: string;
  budgetChars: number;
}): Promise<{ outcomes: AiFieldOutcome[]; patch: Record<string, unknown> }> {
  const outcomes: AiFieldOutcome[] = [];
  const enabled = opts.mappings.filter((m) => {
    if (!m.enabled)
      outcomes.push({
        column: m.column,
        title: m.title,
        outcome: 'mapping_disabled',
        reason: 'the mapping is disabled',
      });
    return m.enabled;
  });
  if (enabled.length === 0) return { outcomes, patch: {} };
  if (!opts.llm) {
    for (const m of enabled) {
      outcomes.push({
        column: m.column,
        title: m.title,
        outcome: 'llm_not_configured',
        reason: 'no LLM is configured (LLM_BASE_URL)',
      });
    }
    return { outcomes, patch: {} };
  }
  const caseType = (await opts.client.metadata()).get('Case');
  const specs: FieldSpec[] = [];
  for (const m of enabled) {
    const prop = caseType?.properties.get(m.column);
    if (!prop) {
      const near = caseType && closestName(m.column, caseType.properties.keys());
      outcomes.push({
        column: m.column,
        title: m.title,
        outcome: 'column_missing',
        reason: `Case has no column "${m.column}"${near ? `; did you mean "${near}"?` : ''}`,
      });
      continue;
    }
    const spec: FieldSpec = { mapping: m, prop };
    if (m.type === 'dropdown') {
      if (prop.lookupEntity) {
        // OData returns rows in no promised order: by name, or in the order the description lists them.
        const rows = await opts.client.list<Entity & { Name: string }>(prop.lookupEntity, {
          select: ['Id', 'Name'],
          orderby: 'Name asc',
          top: 200,
        });
        const listed = listedValues(m.description);
        const usable =
          listed.length > 0
            ? listed.flatMap((l) => rows.filter((r) => r.Name.toLowerCase() === l.toLowerCase()).slice(0, 1))
            : rows;
        spec.allowed = usable.map((r) => r.Name);
        spec.lookupIds = new Map(usable.map((r) => [r.Name.toLowerCase(), r.Id]));
      } else {
        spec.allowed = listedValues(m.description);
      }
    }
    specs.push(spec);
  }
  if (specs.length === 0) return { outcomes, patch: {} };

  const schema = {
    type: 'object',
    additionalProperties: false,
    required: specs.map((s) => s.mapping.column),
    properties: Object.fromEntries(
      specs.map((s) => [
        s.mapping.column,
        {
          type: ['string', 'null'],
          description: `${s.mapping.title}: ${s.mapping.description}`,
          ...(s.allowed && s.allowed.length > 0 && { enum: [...s.allowed, null] }),
        },
      ]),
    ),
  };
  const transcript =
    opts.transcript.length > opts.budgetChars
      ? `…${opts.transcript.slice(-opts.budgetChars)}`
      : opts.transcript;
  let answer: Record<string, unknown>;
  try {
    answer = await completeJson(
      opts.llm,
      [
        {
          role: 'system',
          content:
            "You fill fields of a CRM support case from the conversation below. Follow each field's description. " +
            'For a field with a list of allowed values, answer exactly one of them. Answer null when the conversation does not tell.',
        },
        { role: 'user', content: transcript },
      ],
      schema,
    );
  } catch (err) {
    if (!(err instanceof LlmError)) throw err;
    const failed = specs.map((s) => ({
      column: s.mapping.column,
      title: s.mapping.title,
      outcome: 'llm_error' as const,
      reason: err.message,
    }));
    throw new AiFieldsLlmError(err, [...outcomes, ...failed]);
  }
  const patch: Record<string, unknown> = {};
  for (const s of specs) {
    const c = coerce(s, answer[s.mapping.column]);
    const base = { column: s.mapping.column, title: s.mapping.title };
    if (c.blank)
      outcomes.push({
        ...base,
        outcome: 'left_blank',
        reason: 'the model answered that the conversation does not tell',
      });
    else if (c.value === undefined) outcomes.push({ ...base, outcome: 'rejected_value', reason: c.reason! });
    else {
      patch[s.mapping.column] = c.value;
      outcomes.push({ ...base, outcome: 'written', value: c.value });
    }
  }
  return { outcomes, patch };
}

/** The AI-fields activity: one structured LLM call, checked against Case's real columns. */
export function createAiFieldsActivities(orgs: OrgContexts) {
  const { deps } = orgs;
  const attention = new AttentionWriter(deps.store);
  /**
   * The conversation's `ai_fields_blank`: set while the LLM left fields blank (it failed, or none
   * is configured), cleared once an evaluation had an answer for them.
   */
  const noteBlank = async (outcomes: AiFieldOutcome[]) => {
    const c = runningConversation();
    if (!c) return;
    const blank = outcomes.filter((o) => o.outcome === 'llm_error' || o.outcome === 'llm_not_configured');
    if (blank.length === 0) await attention.clear(c.orgId, c.sessionId, ['ai_fields_blank']);
    else
      await attention.set(
        c.orgId,
        c.sessionId,
        'ai_fields_blank',
        `${blank.map((o) => o.column).join(', ')}: ${blank[0]!.reason ?? blank[0]!.outcome}`,
      );
  };
  return {
    /** Evaluates the organization's AI fields from the transcript. */
    async evaluateAiFields(input: {
      orgId: string;
      transcript: string;
    }): Promise<{ outcomes: AiFieldOutcome[]; patch: Record<string, unknown> }> {
      return withFailures(async () => {
        const { settings, client } = await orgs.creatio(input.orgId);
        try {
          const result = await evaluateAiFields({
            client,
            mappings: settings.aiFields,
            llm: deps.llm,
            transcript: input.transcript,
            budgetChars: deps.aiTranscriptBudgetChars ?? 12_000,
          });
          await noteBlank(result.outcomes);
          return result;
        } catch (err) {
          if (err instanceof AiFieldsLlmError) {
            await noteBlank(err.outcomes);
            const { llm } = err;
            throw ApplicationFailure.create({
              type: llm.name,
              message: llm.message,
              nonRetryable: !llm.retryable,
              details: [{ fields: err.outcomes } satisfies AiFieldsFailureDetails],
              ...(llm.retryAfterMs !== undefined && { nextRetryDelay: llm.retryAfterMs }),
            });
          }
          throw err;
        }
      });
    },
  };
}

export type AiFieldsActivities = ReturnType<typeof createAiFieldsActivities>;
