/**
 * The conformance check of the bridge's OData requests: every entity set, column (in $select,
 * $filter, $orderby, $expand and written bodies) and literal type a request names is checked
 * against Creatio's own configuration (creatio-model.json, plus the sandbox tenant's declared
 * `Usr` columns), whatever the emulator instance answers. The emulator records each request that
 * fails it; `npm test` fails on any (test/run.ts, CREATIO_CONFORMANCE_LOG).
 */
import { CUSTOM_COLUMNS, SCHEMAS, type Column } from './creatio-schema';
import { checkFilter, parseFilter } from './odata-filter';

const KEY_RE = /^([A-Za-z]\w*)(?:\(([^)]*)\))?(?:\/(\w+))?$/;

/** What is wrong with one request by Creatio's configuration; empty when nothing is. */
export function nonConformance(
  method: string,
  rest: string,
  params: URLSearchParams,
  body: string,
): string[] {
  if (rest === '' || rest === '$metadata') return [];
  const m = KEY_RE.exec(rest);
  if (!m) return [`"${rest}" is not an OData path Creatio serves`];
  const set = m[1]!;
  const schema = SCHEMAS[set];
  if (!schema) return [`Creatio has no entity set "${set}"`];
  const problems: string[] = [];
  const column = (name: string, where: string): Column | undefined => {
    const c = schema[name];
    if (!c) problems.push(`${where}: ${set} has no column "${name}"`);
    return c;
  };
  if (m[3]) {
    const c = column(m[3], 'property path');
    if (c && c.type !== 'binary') problems.push(`${set}.${m[3]} is not a stream property`);
  }
  for (const name of (params.get('$select') ?? '').split(',').filter(Boolean)) column(name.trim(), '$select');
  for (const part of (params.get('$orderby') ?? '').split(',').filter(Boolean)) {
    column(part.trim().split(/\s+/)[0]!, '$orderby');
  }
  for (const part of (params.get('$expand') ?? '').split(',').filter(Boolean)) {
    const nav = part.trim().split('(')[0]!;
    const c = schema[`${nav}Id`];
    if (!c || typeof c.type !== 'object')
      problems.push(`$expand: ${set} has no navigation property "${nav}"`);
  }
  const filter = params.get('$filter');
  if (filter) {
    try {
      checkFilter(parseFilter(filter), schema, set);
    } catch (err) {
      problems.push(`$filter: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
  if ((method === 'POST' || method === 'PATCH') && body) {
    try {
      const values = JSON.parse(body) as Record<string, unknown>;
      for (const [k, v] of Object.entries(values)) {
        const c = column(k, 'body');
        if (c && v !== null && !literalFits(c, v))
          problems.push(`body: ${set}.${k} cannot take ${typeof v} ${JSON.stringify(v).slice(0, 40)}`);
      }
    } catch {
      problems.push('body: not JSON');
    }
  }
  return problems;
}

const GUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function literalFits(c: Column, v: unknown): boolean {
  if (typeof c.type === 'object' || c.type === 'guid') return typeof v === 'string' && GUID_RE.test(v);
  switch (c.type) {
    case 'bool':
      return typeof v === 'boolean';
    case 'int':
    case 'decimal':
      return typeof v === 'number';
    case 'binary':
      return false;
    default:
      return typeof v === 'string';
  }
}

/** The sandbox's own columns, by entity (allowed by the check: a tenant's custom columns). */
export const DECLARED_CUSTOM_COLUMNS = Object.fromEntries(
  Object.entries(CUSTOM_COLUMNS).map(([set, cols]) => [set, Object.keys(cols)]),
);
