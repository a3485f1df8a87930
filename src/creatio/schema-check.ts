import { closestName, type EntityMetadata } from './metadata';
import { BRIDGE_MODEL, type EntityUse } from './model';

/** An entity set or column the bridge uses that an instance's `$metadata` does not have. */
export interface SchemaGap {
  entity: string;
  /** Absent: the whole entity set is missing. */
  column?: string;
  /** The instance's nearest name (a typo, a renamed column, another letter case). */
  closest?: string;
  /** False: the bridge does without it (named as a notice, not a failure). */
  required: boolean;
  purpose: string;
}

/**
 * Every name of `model` (by default what the bridge uses) that the instance lacks. Names are
 * case-sensitive, as Creatio's OData parser is (reference/creatio-api.md §2.8).
 */
export function schemaGaps(
  meta: Map<string, EntityMetadata>,
  model: Readonly<Record<string, EntityUse>> = BRIDGE_MODEL,
): SchemaGap[] {
  const gaps: SchemaGap[] = [];
  for (const [entity, use] of Object.entries(model)) {
    const type = meta.get(entity);
    const required = use.required.length > 0;
    if (!type) {
      const closest = closestName(entity, meta.keys());
      gaps.push({ entity, required, purpose: use.purpose, ...(closest && { closest }) });
      continue;
    }
    for (const [columns, isRequired] of [
      [use.required, true],
      [use.optional, false],
    ] as const) {
      for (const column of columns) {
        if (type.properties.has(column)) continue;
        const closest = closestName(column, type.properties.keys());
        gaps.push({
          entity,
          column,
          required: isRequired,
          purpose: use.purpose,
          ...(closest && { closest }),
        });
      }
    }
  }
  return gaps;
}

/** One gap in words, for a check, a notice or a finding. */
export function describeGap(g: SchemaGap): string {
  const what = g.column ? `no column "${g.column}" on ${g.entity}` : `no entity set "${g.entity}"`;
  const near = g.closest ? ` (the closest is "${g.closest}")` : '';
  return `This Creatio has ${what}${near}: the bridge uses it for ${g.purpose}`;
}
