import type { Column } from './creatio-schema';

/** A $filter parse or type error; the emulator answers it as Creatio does, with a 400 envelope. */
export class FilterError extends Error {}

type Literal =
  | { kind: 'string'; value: string }
  | { kind: 'guid'; value: string }
  | { kind: 'number'; value: number }
  | { kind: 'datetime'; value: number }
  | { kind: 'bool'; value: boolean }
  | { kind: 'null' };

type Node =
  | { op: 'and' | 'or'; left: Node; right: Node }
  | { op: 'not'; arg: Node }
  | { op: 'cmp'; cmp: string; prop: string; lit: Literal }
  | { op: 'fn'; fn: 'contains' | 'startswith' | 'endswith'; prop: string; lit: Literal };

const TOKEN_RE =
  /\s*(?:(\()|(\))|(,)|'((?:[^']|'')*)'|([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})(?![\w-])|(\d{4}-\d{2}-\d{2}T[\d:.]+(?:Z|[+-]\d{2}:\d{2})?)|(-?\d+(?:\.\d+)?)(?![\w-])|([A-Za-z_][\w/]*))/iy;

function tokenize(src: string): { t: string; v: string }[] {
  const out: { t: string; v: string }[] = [];
  TOKEN_RE.lastIndex = 0;
  while (TOKEN_RE.lastIndex < src.length) {
    if (/^\s*$/.test(src.slice(TOKEN_RE.lastIndex))) break;
    const m = TOKEN_RE.exec(src);
    if (!m) throw new FilterError(`Syntax error at position ${TOKEN_RE.lastIndex} in '${src}'.`);
    if (m[1]) out.push({ t: '(', v: '(' });
    else if (m[2]) out.push({ t: ')', v: ')' });
    else if (m[3]) out.push({ t: ',', v: ',' });
    else if (m[4] !== undefined) out.push({ t: 'str', v: m[4].replace(/''/g, "'") });
    else if (m[5]) out.push({ t: 'guid', v: m[5].toLowerCase() });
    else if (m[6]) out.push({ t: 'date', v: m[6] });
    else if (m[7]) out.push({ t: 'num', v: m[7] });
    else if (m[8]) out.push({ t: 'id', v: m[8] });
  }
  return out;
}

export function parseFilter(src: string): Node {
  const toks = tokenize(src);
  let i = 0;
  const peek = () => toks[i];
  const next = () => {
    const t = toks[i++];
    if (!t) throw new FilterError(`Unexpected end of filter '${src}'.`);
    return t;
  };
  const literal = (): Literal => {
    const t = next();
    switch (t.t) {
      case 'str':
        return { kind: 'string', value: t.v };
      case 'guid':
        return { kind: 'guid', value: t.v };
      case 'num':
        return { kind: 'number', value: Number(t.v) };
      case 'date': {
        if (!/(Z|[+-]\d{2}:\d{2})$/.test(t.v))
          throw new FilterError(`The DateTimeOffset '${t.v}' has no time zone.`);
        return { kind: 'datetime', value: Date.parse(t.v) };
      }
      case 'id':
        if (t.v === 'true' || t.v === 'false') return { kind: 'bool', value: t.v === 'true' };
        if (t.v === 'null') return { kind: 'null' };
    }
    throw new FilterError(`Expected a literal, found '${t.v}'.`);
  };
  const primary = (): Node => {
    const t = next();
    if (t.t === '(') {
      const e = orExpr();
      if (next().t !== ')') throw new FilterError("')' expected.");
      return e;
    }
    if (t.t !== 'id') throw new FilterError(`Unexpected '${t.v}'.`);
    if (t.v === 'not') return { op: 'not', arg: primary() };
    if (t.v === 'contains' || t.v === 'startswith' || t.v === 'endswith') {
      if (next().t !== '(') throw new FilterError("'(' expected.");
      const prop = next();
      if (next().t !== ',') throw new FilterError("',' expected.");
      const lit = literal();
      if (next().t !== ')') throw new FilterError("')' expected.");
      return { op: 'fn', fn: t.v, prop: prop.v, lit };
    }
    const cmp = next();
    if (!['eq', 'ne', 'gt', 'ge', 'lt', 'le'].includes(cmp.v)) {
      throw new FilterError(`Unknown operator '${cmp.v}'.`);
    }
    return { op: 'cmp', cmp: cmp.v, prop: t.v, lit: literal() };
  };
  const andExpr = (): Node => {
    let left = primary();
    while (peek()?.v === 'and') {
      i++;
      left = { op: 'and', left, right: primary() };
    }
    return left;
  };
  const orExpr = (): Node => {
    let left = andExpr();
    while (peek()?.v === 'or') {
      i++;
      left = { op: 'or', left, right: andExpr() };
    }
    return left;
  };
  const tree = orExpr();
  if (i !== toks.length) throw new FilterError(`Unexpected '${toks[i]?.v}'.`);
  return tree;
}

const EDM: Record<string, string> = {
  guid: 'Edm.Guid',
  string: 'Edm.String',
  text: 'Edm.String',
  datetime: 'Edm.DateTimeOffset',
  date: 'Edm.Date',
  bool: 'Edm.Boolean',
  int: 'Edm.Int32',
  decimal: 'Edm.Decimal',
  binary: 'Edm.Stream',
};

export function edmType(c: Column): string {
  return typeof c.type === 'object' ? 'Edm.Guid' : (EDM[c.type] ?? 'Edm.String');
}

const LIT_EDM: Record<Literal['kind'], string> = {
  string: 'Edm.String',
  guid: 'Edm.Guid',
  number: 'Edm.Int32',
  datetime: 'Edm.DateTimeOffset',
  bool: 'Edm.Boolean',
  null: 'null',
};

/** Type-checks a parsed filter against a schema, with Creatio's own error wording. */
export function checkFilter(node: Node, schema: Record<string, Column>, typeName: string): void {
  const prop = (name: string) => {
    const c = schema[name];
    if (!c) {
      throw new FilterError(
        `The query specified in the URI is not valid. Could not find a property named '${name}' on type 'Terrasoft.Configuration.OData.${typeName}'.`,
      );
    }
    return c;
  };
  switch (node.op) {
    case 'and':
    case 'or':
      checkFilter(node.left, schema, typeName);
      checkFilter(node.right, schema, typeName);
      return;
    case 'not':
      checkFilter(node.arg, schema, typeName);
      return;
    case 'fn':
    case 'cmp': {
      const left = edmType(prop(node.prop));
      const right = LIT_EDM[node.lit.kind];
      const numeric = (t: string) => t === 'Edm.Int32' || t === 'Edm.Decimal';
      const compatible = right === 'null' || left === right || (numeric(left) && numeric(right));
      if (!compatible) {
        throw new FilterError(
          `A binary operator with incompatible types was detected. Found operand types '${left}' and '${right}' for operator kind '${node.op === 'cmp' ? node.cmp : node.fn}'.`,
        );
      }
    }
  }
}

function compare(a: unknown, lit: Literal, schemaCol: Column): number {
  if (lit.kind === 'null') return a === null || a === undefined ? 0 : 1;
  if (lit.kind === 'datetime' || (typeof schemaCol.type === 'string' && schemaCol.type === 'datetime')) {
    return Date.parse(String(a)) - (lit.kind === 'datetime' ? lit.value : Date.parse(String(lit.value)));
  }
  const av = typeof a === 'string' && lit.kind === 'guid' ? a.toLowerCase() : a;
  const lv = lit.value;
  if (av === lv) return 0;
  return (av as number | string) < (lv as number | string) ? -1 : 1;
}

export function evalFilter(
  node: Node,
  row: Record<string, unknown>,
  schema: Record<string, Column>,
): boolean {
  switch (node.op) {
    case 'and':
      return evalFilter(node.left, row, schema) && evalFilter(node.right, row, schema);
    case 'or':
      return evalFilter(node.left, row, schema) || evalFilter(node.right, row, schema);
    case 'not':
      return !evalFilter(node.arg, row, schema);
    case 'fn': {
      const v = typeof row[node.prop] === 'string' ? (row[node.prop] as string) : '';
      const s = node.lit.kind === 'string' ? node.lit.value : '';
      return node.fn === 'contains'
        ? v.includes(s)
        : node.fn === 'startswith'
          ? v.startsWith(s)
          : v.endsWith(s);
    }
    case 'cmp': {
      const c = compare(row[node.prop], node.lit, schema[node.prop]!);
      switch (node.cmp) {
        case 'eq':
          return c === 0;
        case 'ne':
          return c !== 0;
        case 'gt':
          return c > 0;
        case 'ge':
          return c >= 0;
        case 'lt':
          return c < 0;
        default:
          return c <= 0;
      }
    }
  }
}
