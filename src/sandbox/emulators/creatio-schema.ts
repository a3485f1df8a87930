/**
 * Entity schemas and seed data of the Creatio emulator, after the out-of-the-box Creatio 8.x
 * configuration (ids from Creatio's own constants; see reference/creatio-api.md §3.2, §4.1).
 */
export type ColumnType = 'guid' | 'string' | 'text' | 'datetime' | 'bool' | 'int' | { lookup: string };

export interface Column {
  type: ColumnType;
  maxLength?: number;
  default?: () => unknown;
}

let last = 0;
/** Record times as a database stamps them on commit: each later than the one before (1 ms apart at least). */
const now = () => {
  last = Math.max(Date.now(), last + 1);
  return new Date(last).toISOString();
};
const guidCol: Column = { type: 'guid' };
const str = (maxLength = 250): Column => ({ type: 'string', maxLength, default: () => '' });
const text: Column = { type: 'text', default: () => '' };
const bool: Column = { type: 'bool', default: () => false };
const date: Column = { type: 'datetime', default: () => '0001-01-01T00:00:00Z' };
const lookup = (target: string, def?: string): Column => ({
  type: { lookup: target },
  default: () => def ?? ZERO_GUID,
});

export const ZERO_GUID = '00000000-0000-0000-0000-000000000000';

export const IDS = {
  caseStatus: {
    New: 'ae5f2f10-f46b-1410-fd9a-0050ba5d6c38',
    'In progress': '7e9f1204-f46b-1410-fb9a-0050ba5d6c38',
    'Waiting for response': '3859c6e7-cbcb-486b-ba53-77808fe6e593',
    Resolved: 'ae7f411e-f46b-1410-009b-0050ba5d6c38',
    Closed: '3e7f420c-f46b-1410-fc9a-0050ba5d6c38',
    Canceled: '6e5f4218-f46b-1410-fe9a-0050ba5d6c38',
    Reopened: 'f063ebbe-fdc6-4982-8431-d8cfa52fedcf',
  },
  casePriority: {
    Low: 'd9bd322c-f46b-1410-ee8c-0050ba5d6c37',
    Medium: 'd9bd322c-f46b-1410-ee8c-0050ba5d6c38',
    High: 'd9bd322c-f46b-1410-ee8c-0050ba5d6c39',
    Critical: 'd9bd322c-f46b-1410-ee8c-0050ba5d6c3a',
  },
  caseOrigin: {
    Email: '7f9e1f1e-f46b-1410-3492-0050ba5d6c38',
    Portal: 'debf4124-f46b-1410-3592-0050ba5d6c38',
    Call: '5e5e202a-f46b-1410-3692-0050ba5d6c38',
    Chat: '2b7c8a10-3c2e-4b49-9d0a-6a1f2c5b7e01',
  },
  caseCategory: {
    Incident: '1b0bc159-150a-e111-a31b-00155d04c01d',
    'Service request': '1c0bc159-150a-e111-a31b-00155d04c01d',
  },
  activityType: {
    Task: 'fbe0acdc-cfc0-df11-b00f-001d60e938c6',
    Email: 'e2831dec-cfc0-df11-b00f-001d60e938c6',
    Call: 'e1831dec-cfc0-df11-b00f-001d60e938c6',
    Visit: 'e3831dec-cfc0-df11-b00f-001d60e938c6',
  },
  activityCategory: {
    'To do': 'f51c4643-58e6-df11-971b-001d60e938c6',
    Email: '8038a396-7825-e011-8165-00155d043204',
    Call: 'e52bd583-7825-e011-8165-00155d043204',
    Meeting: '42c74c49-58e6-df11-971b-001d60e938c6',
    Paperwork: '2365ae4f-58e6-df11-971b-001d60e938c6',
  },
  activityStatus: {
    'Not started': '384d4b84-58e6-df11-971b-001d60e938c6',
    'In progress': '394d4b84-58e6-df11-971b-001d60e938c6',
    Completed: '4bdbb88f-58e6-df11-971b-001d60e938c6',
    Canceled: '201cfba8-58e6-df11-971b-001d60e938c6',
  },
  messageType: {
    Incoming: '7f9d1f86-f36b-1410-068c-20cf30b39373',
    Outgoing: '7f6d3f94-f36b-1410-068c-20cf30b39373',
  },
  sysAdminUnit: {
    'All employees': 'a29a3ba5-4b0d-de11-9a51-005056c00008',
    'Support line 1': 'b5d51a2d-c0dd-477b-b2aa-58034367ba26',
  },
  contact: {
    Supervisor: '410006e1-ca4e-4502-a9ec-e54d922d2c00',
    'Integration user': '7a3b1c2d-0e4f-4a5b-8c6d-9e0f1a2b3c4d',
  },
} as const;

const base: Record<string, Column> = {
  Id: guidCol,
  CreatedOn: { type: 'datetime', default: now },
  ModifiedOn: { type: 'datetime', default: now },
  CreatedById: lookup('Contact', IDS.contact['Integration user']),
  ModifiedById: lookup('Contact', IDS.contact['Integration user']),
};

const lookupSchema = (extra: Record<string, Column> = {}): Record<string, Column> => ({
  ...base,
  Name: str(250),
  Description: str(250),
  ...extra,
});

export const SCHEMAS: Record<string, Record<string, Column>> = {
  Case: {
    ...base,
    Number: str(250),
    Subject: str(500),
    Symptoms: text,
    Notes: text,
    Solution: text,
    RegisteredOn: date,
    StatusId: lookup('CaseStatus', IDS.caseStatus.New),
    PriorityId: lookup('CasePriority', IDS.casePriority.Medium),
    OriginId: lookup('CaseOrigin', IDS.caseOrigin.Call),
    CategoryId: lookup('CaseCategory', IDS.caseCategory.Incident),
    ContactId: lookup('Contact'),
    AccountId: lookup('Account'),
    OwnerId: lookup('Contact'),
    GroupId: lookup('SysAdminUnit', IDS.sysAdminUnit['Support line 1']),
    ResponseDate: date,
    SolutionDate: date,
    SolutionProvidedOn: date,
    ClosureDate: date,
    UsrProductName: str(100),
    UsrOrderNumber: str(50),
    UsrUrgent: bool,
  },
  Activity: {
    ...base,
    Title: str(500),
    Body: text,
    IsHtmlBody: bool,
    Notes: text,
    DetailedResult: text,
    TypeId: lookup('ActivityType', IDS.activityType.Task),
    ActivityCategoryId: lookup('ActivityCategory', IDS.activityCategory['To do']),
    StatusId: lookup('ActivityStatus', IDS.activityStatus['Not started']),
    StartDate: { type: 'datetime', default: now },
    DueDate: { type: 'datetime', default: now },
    OwnerId: lookup('Contact', IDS.contact['Integration user']),
    AuthorId: lookup('Contact', IDS.contact['Integration user']),
    CaseId: lookup('Case'),
    ContactId: lookup('Contact'),
    Sender: str(500),
    Recepient: text,
    MessageTypeId: lookup('MessageType'),
    SenderContactId: lookup('Contact'),
    /** Set on emails Creatio generates itself (notifications, auto-replies). */
    IsAutoSubmitted: bool,
  },
  /** A file attached to an activity; its content is the `Data` stream (GET ActivityFile(id)/Data). */
  ActivityFile: {
    ...base,
    ActivityId: lookup('Activity'),
    Name: str(500),
    Size: { type: 'int', default: () => 0 },
  },
  Contact: {
    ...base,
    Name: str(250),
    Email: str(250),
    Phone: str(250),
    MobilePhone: str(250),
    AccountId: lookup('Account'),
  },
  Account: { ...base, Name: str(250) },
  CaseStatus: lookupSchema({ IsFinal: bool, IsResolved: bool, IsPaused: bool }),
  CasePriority: lookupSchema(),
  CaseOrigin: lookupSchema(),
  CaseCategory: lookupSchema(),
  ActivityType: lookupSchema(),
  ActivityCategory: lookupSchema({ ActivityTypeId: lookup('ActivityType') }),
  ActivityStatus: lookupSchema({ Finish: bool }),
  MessageType: lookupSchema(),
  SysAdminUnit: lookupSchema({ SysAdminUnitTypeValue: { type: 'int', default: () => 0 } }),
};

type Seed = Record<string, Record<string, unknown>[]>;

const named = (ids: Record<string, string>, extra: (name: string) => Record<string, unknown> = () => ({})) =>
  Object.entries(ids).map(([Name, Id]) => ({ Id, Name, ...extra(Name) }));

export function seedData(): Seed {
  return {
    CaseStatus: named(IDS.caseStatus, (n) => ({
      IsFinal: n === 'Closed' || n === 'Canceled',
      IsResolved: n === 'Resolved',
      IsPaused: n === 'Waiting for response',
    })),
    CasePriority: named(IDS.casePriority),
    CaseOrigin: named(IDS.caseOrigin),
    CaseCategory: named(IDS.caseCategory),
    ActivityType: named(IDS.activityType),
    ActivityCategory: named(IDS.activityCategory, (n) => ({
      ActivityTypeId: n === 'Email' ? IDS.activityType.Email : IDS.activityType.Task,
    })),
    ActivityStatus: named(IDS.activityStatus, (n) => ({ Finish: n === 'Completed' || n === 'Canceled' })),
    MessageType: named(IDS.messageType),
    SysAdminUnit: named(IDS.sysAdminUnit, () => ({ SysAdminUnitTypeValue: 1 })),
    Contact: named(IDS.contact),
    Account: [],
    Case: [],
    Activity: [],
    ActivityFile: [],
  };
}
