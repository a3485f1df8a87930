export interface PropertyMetadata {
  name: string;
  /** EDM type, e.g. Edm.String, Edm.Guid, Edm.DateTimeOffset. */
  type: string;
  maxLength: number | undefined;
  /** For `<Name>Id` lookup columns: the entity set the lookup points to (e.g. CasePriority). */
  lookupEntity: string | undefined;
}

export interface EntityMetadata {
  name: string;
  properties: Map<string, PropertyMetadata>;
}

const attr = (tag: string, name: string): string | undefined =>
  new RegExp(`\\b${name}="([^"]*)"`).exec(tag)?.[1];

/**
 * Reads entity types and their properties from an OData 4 CSDL document. Only what the bridge
 * needs: property names (case-sensitive), types, text lengths and lookup targets.
 */
export function parseMetadata(xml: string): Map<string, EntityMetadata> {
  const out = new Map<string, EntityMetadata>();
  const typeRe = /<EntityType\b([^>]*?)(?:\/>|>([\s\S]*?)<\/EntityType>)/g;
  for (let m = typeRe.exec(xml); m; m = typeRe.exec(xml)) {
    const name = attr(m[1] ?? '', 'Name');
    if (!name) continue;
    const body = m[2] ?? '';
    const properties = new Map<string, PropertyMetadata>();
    for (const p of body.match(/<Property\b[^>]*>/g) ?? []) {
      const pname = attr(p, 'Name');
      if (!pname) continue;
      const maxLength = attr(p, 'MaxLength');
      properties.set(pname, {
        name: pname,
        type: attr(p, 'Type') ?? 'Edm.String',
        maxLength: maxLength && /^\d+$/.test(maxLength) ? Number(maxLength) : undefined,
        lookupEntity: undefined,
      });
    }
    for (const n of body.match(/<NavigationProperty\b[^>]*>/g) ?? []) {
      const nname = attr(n, 'Name');
      const target = attr(n, 'Type')?.split('.').pop();
      const idProp = nname && properties.get(`${nname}Id`);
      if (idProp && target) idProp.lookupEntity = target;
    }
    out.set(name, { name, properties });
  }
  return out;
}

/** Levenshtein distance, for "did you mean" suggestions on column names. */
export function editDistance(a: string, b: string): number {
  const prev = Array.from({ length: b.length + 1 }, (_, i) => i);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** The closest name: an exact case-insensitive match first, else the smallest edit distance (if close). */
export function closestName(wanted: string, candidates: Iterable<string>): string | undefined {
  const list = [...candidates];
  const ci = list.find((c) => c.toLowerCase() === wanted.toLowerCase());
  if (ci) return ci;
  let best: string | undefined;
  let bestD = Infinity;
  for (const c of list) {
    const d = editDistance(wanted.toLowerCase(), c.toLowerCase());
    if (d < bestD) [best, bestD] = [c, d];
  }
  return best !== undefined && bestD <= Math.max(2, Math.floor(wanted.length / 3)) ? best : undefined;
}
