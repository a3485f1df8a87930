/**
 * What the bridge uses of Creatio's data model: every entity set and column it reads or writes, and
 * the out-of-the-box lookup rows it relies on. Test & Save checks an instance's `$metadata` against
 * this list (a customized or older Creatio is caught when an admin connects), and the test suite
 * checks this list against Creatio's own configuration (src/sandbox/emulators/creatio-model.json,
 * extracted by scripts/creatio-oracle.ts): a name Creatio does not have fails the suite.
 */

/**
 * `required`: the bridge cannot work without it (Test & Save refuses to save). `optional`: the
 * bridge uses it where the instance has it and does without it otherwise (named as a notice).
 */
export interface EntityUse {
  required: readonly string[];
  optional: readonly string[];
  /** What the entity is for, in the words an admin reads in a finding. */
  purpose: string;
}

export const BRIDGE_MODEL: Readonly<Record<string, EntityUse>> = {
  Case: {
    purpose: 'the conversation’s case',
    required: [
      'Id',
      'Number',
      'Subject',
      'Symptoms',
      'Notes',
      'RegisteredOn',
      'StatusId',
      'ContactId',
      'OwnerId',
      'GroupId',
      'ModifiedOn',
    ],
    optional: ['OriginId'],
  },
  Activity: {
    purpose: 'one activity per message, and agent replies',
    required: [
      'Id',
      'CaseId',
      'Title',
      'Body',
      'TypeId',
      'ActivityCategoryId',
      'StatusId',
      'StartDate',
      'DueDate',
      'OwnerId',
      'CreatedOn',
    ],
    optional: [
      'Notes',
      'DetailedResult',
      'MessageTypeId',
      'EmailSendStatusId',
      'IsAutoSubmitted',
      'HeaderProperties',
      'Recepient',
    ],
  },
  ActivityFile: {
    purpose: 'files attached to agent replies',
    required: [],
    optional: ['Id', 'ActivityId', 'Name', 'Size', 'Inline'],
  },
  Contact: {
    purpose: 'the customer, and the default case owner',
    required: ['Id', 'Name'],
    optional: ['Email', 'Phone', 'MobilePhone'],
  },
  CaseStatus: {
    purpose: 'closure and resolution',
    required: ['Id', 'Name', 'IsFinal', 'IsResolved'],
    optional: [],
  },
  CaseOrigin: { purpose: 'the case’s origin (Chat, Email)', required: [], optional: ['Id', 'Name'] },
  ActivityType: {
    purpose: 'the activity types of messages and replies',
    required: ['Id', 'Name'],
    optional: [],
  },
  ActivityCategory: { purpose: 'activity categories', required: ['Id', 'Name'], optional: [] },
  ActivityStatus: { purpose: 'the status of logged messages', required: ['Id', 'Name'], optional: [] },
  SysAdminUnit: { purpose: 'the default case group', required: ['Id', 'Name'], optional: [] },
};

/**
 * Out-of-the-box lookup rows, by Id: Creatio's own code refers to them by these ids, so they are the
 * same on every instance (names are translated; ids are not). Each is checked against Creatio's
 * configuration by test/unit/creatio-conformance.test.ts.
 */
export const CREATIO_IDS = {
  /** ActivityType. */
  activityType: {
    Task: 'fbe0acdc-cfc0-df11-b00f-001d60e938c6',
    Email: 'e2831dec-cfc0-df11-b00f-001d60e938c6',
    Call: 'e1831dec-cfc0-df11-b00f-001d60e938c6',
  },
  /** ActivityCategory "To do". */
  activityCategoryToDo: 'f51c4643-58e6-df11-971b-001d60e938c6',
  /** ActivityStatus "Completed". */
  activityStatusCompleted: '4bdbb88f-58e6-df11-971b-001d60e938c6',
  /** EmailType: the lookup behind Activity.MessageTypeId (there is no entity set "MessageType"). */
  emailType: {
    Incoming: '7f9d1f86-f36b-1410-068c-20cf30b39373',
    Outgoing: '7f6d3f94-f36b-1410-068c-20cf30b39373',
  },
  /** EmailSendStatus: a mail an agent composed but did not send is "Not sent" (a draft). */
  emailSendStatus: {
    Sent: '8074ffc0-6107-e011-a646-16d83cab0980',
    NotSent: '20c0c460-6107-e011-a646-16d83cab0980',
  },
} as const;
