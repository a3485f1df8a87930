/**
 * Entity schemas and seed data of the Creatio emulator, generated from Creatio's own configuration:
 * creatio-model.json, extracted by scripts/creatio-oracle.ts from the public configuration source
 * of a Creatio 8.1 instance (its `source` field names the repository, commit and files). The
 * emulator therefore cannot offer an entity set, a column or a lookup target that Creatio lacks.
 *
 * What the configuration cannot say is marked where it is decided here:
 * - the sandbox tenant's own columns (CUSTOM_COLUMNS, `Usr` prefix as Creatio names custom ones);
 * - defaults Creatio takes from system settings (CaseStatusDef, CasePriorityDef, CaseOriginDef):
 *   tenant data, set here to the out-of-the-box values;
 * - English names of lookup rows whose package data is not in the source (ActivityType,
 *   ActivityCategory, ActivityStatus, EmailType, EmailSendStatus): their ids are Creatio's
 *   constants (the fixture's `constants`), their names the English captions Creatio shows.
 */
import model from './creatio-model.json';

export type ColumnType =
  | 'guid'
  | 'string'
  | 'text'
  | 'datetime'
  | 'date'
  | 'bool'
  | 'int'
  | 'decimal'
  | 'binary'
  | { lookup: string };

export interface Column {
  type: ColumnType;
  maxLength?: number;
  default?: () => unknown;
}

/** One column as creatio-model.json records it. */
interface ModelColumn {
  type: string;
  target?: string;
  maxLength?: number;
  default?: { source: string; value: string };
}

interface ModelEntity {
  entitySet: string;
  columns: Record<string, ModelColumn>;
}

/** Creatio's data model as extracted (entity → columns), the oracle of the conformance check. */
export const CREATIO_MODEL = model as unknown as {
  source: Record<string, unknown>;
  entities: Record<string, ModelEntity>;
  entityExists: Record<string, boolean>;
  rows: Record<string, Record<string, unknown>[]>;
  constants: Record<string, { Id: string; constants: string[] }[]>;
};

let last = 0;
/** Record times as a database stamps them on commit: each later than the one before (1 ms apart at least). */
const now = () => {
  last = Math.max(Date.now(), last + 1);
  return new Date(last).toISOString();
};

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';
/** Creatio answers an empty date this way (reference/creatio-api.md §2.4). */
const NO_DATE = '0001-01-01T00:00:00Z';

const rowId = (set: string, name: string): string => {
  const row = CREATIO_MODEL.rows[set]?.find((r) => r.Name === name);
  if (!row) throw new Error(`creatio-model.json has no ${set} row named "${name}"`);
  return String(row.Id);
};

const constantId = (set: string, constant: string): string => {
  const row = CREATIO_MODEL.constants[set]?.find((r) => r.constants.includes(constant));
  if (!row) throw new Error(`creatio-model.json has no ${set} constant ${constant}`);
  return row.Id;
};

const rowsByName = <N extends string>(set: string, names: readonly N[]) =>
  Object.fromEntries(names.map((n) => [n, rowId(set, n)])) as Record<N, string>;

const K = 'ConfigurationConstants.Activity';

export const IDS = {
  caseStatus: rowsByName('CaseStatus', [
    'New',
    'In progress',
    'Waiting for response',
    'Resolved',
    'Closed',
    'Canceled',
    'Reopened',
  ]),
  casePriority: rowsByName('CasePriority', ['Low', 'Medium', 'High', 'Critical']),
  caseOrigin: rowsByName('CaseOrigin', ['Email', 'Portal', 'Call', 'Chat']),
  caseCategory: rowsByName('CaseCategory', ['Incident', 'Service request']),
  activityType: {
    Task: constantId('ActivityType', `${K}.Type.Task`),
    Email: constantId('ActivityType', `${K}.Type.Email`),
    Call: constantId('ActivityType', `${K}.Type.Call`),
    Visit: constantId('ActivityType', `${K}.Type.Visit`),
  },
  activityCategory: {
    'To do': constantId('ActivityCategory', `${K}.ActivityCategory.DoIt`),
    Email: constantId('ActivityCategory', `${K}.ActivityCategory.Email`),
    Call: constantId('ActivityCategory', `${K}.ActivityCategory.Call`),
    Meeting: constantId('ActivityCategory', `${K}.ActivityCategory.Meeting`),
    Paperwork: constantId('ActivityCategory', `${K}.ActivityCategory.PaperWork`),
  },
  activityStatus: {
    'Not started': constantId('ActivityStatus', `${K}.Status.NotStarted`),
    'In progress': constantId('ActivityStatus', `${K}.Status.InProgress`),
    Completed: constantId('ActivityStatus', `${K}.Status.Done`),
    Canceled: constantId('ActivityStatus', `${K}.Status.Cancel`),
  },
  /** Activity.MessageTypeId points here (there is no entity set "MessageType"). */
  emailType: {
    Incoming: constantId('EmailType', `${K}.MessageType.Incoming`),
    Outgoing: constantId('EmailType', `${K}.MessageType.Outgoing`),
  },
  emailSendStatus: {
    Sent: constantId('EmailSendStatus', `${K}.EmailSendStatus.Sended`),
    'Not sent': constantId('EmailSendStatus', `${K}.EmailSendStatus.NotSended`),
  },
  /** The sandbox tenant's own records (not configuration). */
  sysAdminUnit: {
    'All employees': 'a29a3ba5-4b0d-de11-9a51-005056c00008',
    'Support line 1': 'b5d51a2d-c0dd-477b-b2aa-58034367ba26',
  },
  contact: {
    Supervisor: '410006e1-ca4e-4502-a9ec-e54d922d2c00',
    'Integration user': '7a3b1c2d-0e4f-4a5b-8c6d-9e0f1a2b3c4d',
  },
} as const;

/**
 * The sandbox tenant's own Case columns (AI field targets in the demo and tests). Real tenants add
 * theirs the same way; Test & Save checks AI field columns against each instance's $metadata.
 */
export const CUSTOM_COLUMNS: Record<string, Record<string, Column>> = {
  Case: {
    UsrProductName: { type: 'string', maxLength: 100, default: () => '' },
    UsrOrderNumber: { type: 'string', maxLength: 50, default: () => '' },
    UsrUrgent: { type: 'bool', default: () => false },
  },
};

/** Defaults Creatio takes from system settings (tenant data): the out-of-the-box values. */
const SETTINGS_DEFAULTS: Record<string, string> = {
  CaseStatusDef: IDS.caseStatus.New,
  CasePriorityDef: IDS.casePriority.Medium,
  CaseOriginDef: IDS.caseOrigin.Call,
};

function columnOf(c: ModelColumn): Column {
  const d = c.default;
  const fromModel = (): (() => unknown) | undefined => {
    if (!d) return undefined;
    if (d.source === 'Const' && d.value) {
      // The schema states constants as text ("False", "0"): typed as the column is.
      const v =
        c.type === 'bool'
          ? d.value.toLowerCase() === 'true'
          : c.type === 'int' || c.type === 'decimal'
            ? Number(d.value)
            : d.value;
      return () => v;
    }
    if (d.source === 'SystemValue' && d.value === 'CurrentDateTime') return now;
    if (d.source === 'SystemValue' && d.value === 'CurrentUserContact')
      return () => IDS.contact['Integration user'];
    if (d.source === 'Settings' && SETTINGS_DEFAULTS[d.value]) return () => SETTINGS_DEFAULTS[d.value];
    return undefined;
  };
  const given = fromModel();
  switch (c.type) {
    case 'lookup':
      return { type: { lookup: c.target ?? '' }, default: given ?? (() => ZERO_GUID) };
    case 'guid':
      return { type: 'guid', ...(given && { default: given }) };
    case 'string':
      return {
        type: 'string',
        ...(c.maxLength && { maxLength: c.maxLength }),
        default: given ?? (() => ''),
      };
    case 'bool':
      return { type: 'bool', default: given ?? (() => false) };
    case 'int':
      return { type: 'int', default: given ?? (() => 0) };
    case 'decimal':
      return { type: 'decimal', default: given ?? (() => 0) };
    case 'datetime':
      return { type: 'datetime', default: given ?? (() => NO_DATE) };
    case 'date':
      return { type: 'date', default: given ?? (() => null) };
    case 'binary':
      return { type: 'binary' };
    default:
      // text, and the few display types (Color) that OData serves as strings
      return { type: 'text', default: given ?? (() => '') };
  }
}

/** The emulator's schemas: Creatio's entities with their columns, plus the sandbox's own columns. */
export function buildSchemas(): Record<string, Record<string, Column>> {
  const out: Record<string, Record<string, Column>> = {};
  for (const [name, e] of Object.entries(CREATIO_MODEL.entities)) {
    const cols: Record<string, Column> = {};
    for (const [col, c] of Object.entries(e.columns)) cols[col] = columnOf(c);
    out[e.entitySet || name] = { ...cols, ...CUSTOM_COLUMNS[name] };
  }
  return out;
}

/** One shared copy for code that only reads (the emulator keeps its own, see cloneSchemas). */
export const SCHEMAS = buildSchemas();

/** A copy an emulator can change (a test removes a column, as a customized tenant would). */
export function cloneSchemas(): Record<string, Record<string, Column>> {
  return Object.fromEntries(Object.entries(SCHEMAS).map(([k, v]) => [k, { ...v }]));
}

type Seed = Record<string, Record<string, unknown>[]>;

const named = (ids: Record<string, string>, extra: (name: string) => Record<string, unknown> = () => ({})) =>
  Object.entries(ids).map(([Name, Id]) => ({ Id, Name, ...extra(Name) }));

/** Lookup rows as the configuration's package data has them (only the columns the schema has). */
const packageRows = (set: string) =>
  (CREATIO_MODEL.rows[set] ?? []).map((r) =>
    Object.fromEntries(Object.entries(r).filter(([k]) => k in (SCHEMAS[set] ?? {}))),
  );

export function seedData(): Seed {
  return {
    CaseStatus: packageRows('CaseStatus'),
    CasePriority: packageRows('CasePriority'),
    CaseOrigin: packageRows('CaseOrigin'),
    CaseCategory: packageRows('CaseCategory'),
    ActivityType: named(IDS.activityType),
    ActivityCategory: named(IDS.activityCategory, (n) => ({
      ActivityTypeId: n === 'Email' ? IDS.activityType.Email : IDS.activityType.Task,
    })),
    ActivityStatus: named(IDS.activityStatus, (n) => ({ Finish: n === 'Completed' || n === 'Canceled' })),
    EmailType: named(IDS.emailType),
    EmailSendStatus: named(IDS.emailSendStatus),
    SysAdminUnit: named(IDS.sysAdminUnit, () => ({ SysAdminUnitTypeValue: 1 })),
    Contact: named(IDS.contact),
    Account: [],
    Case: [],
    Activity: [],
    ActivityFile: [],
    ActivityParticipant: [],
    ActivityParticipantRole: [],
    ActivityPriority: [],
  };
}
