import { defineSearchAttributeKey, SearchAttributeType } from '@temporalio/common';

/**
 * Custom search attributes of conversation workflows: an operator finds any conversation in the
 * Temporal UI by organization, OpenCX session or Creatio case. IDs only: no PII, no message text.
 */
export const SEARCH_ATTRIBUTE_KEYS = {
  OrgId: defineSearchAttributeKey('OrgId', SearchAttributeType.KEYWORD),
  OpenCXSessionId: defineSearchAttributeKey('OpenCXSessionId', SearchAttributeType.KEYWORD),
  CreatioCaseId: defineSearchAttributeKey('CreatioCaseId', SearchAttributeType.KEYWORD),
};

/** The same, as `temporal server start-dev --search-attribute Name=Type` values. */
export const SEARCH_ATTRIBUTE_TYPES: Record<keyof typeof SEARCH_ATTRIBUTE_KEYS, 'Keyword'> = {
  OrgId: 'Keyword',
  OpenCXSessionId: 'Keyword',
  CreatioCaseId: 'Keyword',
};
