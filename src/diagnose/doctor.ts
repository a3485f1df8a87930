/**
 * `npm run doctor -- --org <orgId> --session <sessionId> | --case <caseId>`: the diagnose endpoint
 * of a running bridge, printed for a terminal. Exit code 0 when nothing is wrong, 1 with findings,
 * 2 when the question or the bridge could not be asked.
 *
 * BRIDGE_URL (default http://127.0.0.1:$PORT or :8080) and ADMIN_API_TOKEN (default: the
 * development token in $DATA_DIR/admin-token) say which bridge.
 */
import { readFile } from 'node:fs/promises';
import path from 'node:path';
import { parseArgs } from 'node:util';

interface Diagnosis {
  sessionId: string | null;
  caseId: string | null;
  workflowId: string | null;
  findings: { code: string; scenario: string; message: string; fix: string }[];
}

const USAGE = 'usage: npm run doctor -- --org <orgId> (--session <sessionId> | --case <caseId>)';

async function adminToken(): Promise<string> {
  if (process.env.ADMIN_API_TOKEN) return process.env.ADMIN_API_TOKEN;
  return (await readFile(path.join(process.env.DATA_DIR ?? '.data', 'admin-token'), 'utf8')).trim();
}

export async function doctor(argv: string[], out: (line: string) => void): Promise<number> {
  let values: { org?: string; session?: string; case?: string };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { org: { type: 'string' }, session: { type: 'string' }, case: { type: 'string' } },
    }));
  } catch (err) {
    out(`${err instanceof Error ? err.message : String(err)}\n${USAGE}`);
    return 2;
  }
  if (!values.org || (!values.session && !values.case)) {
    out(USAGE);
    return 2;
  }
  const base = process.env.BRIDGE_URL ?? `http://127.0.0.1:${process.env.PORT ?? 8080}`;
  const q = values.session
    ? `sessionId=${encodeURIComponent(values.session)}`
    : `caseId=${encodeURIComponent(values.case!)}`;
  let res: Response;
  try {
    res = await fetch(`${base}/v1/orgs/${encodeURIComponent(values.org)}/diagnose?${q}`, {
      headers: { authorization: `Bearer ${await adminToken()}` },
    });
  } catch (err) {
    out(`Could not ask the bridge at ${base}: ${err instanceof Error ? err.message : String(err)}`);
    return 2;
  }
  const body = (await res.json()) as Diagnosis & { error?: { code: string; message: string; fix?: string } };
  if (!res.ok || body.error) {
    out(
      `${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}${body.error?.fix ? `\nFix: ${body.error.fix}` : ''}`,
    );
    return 2;
  }
  out(
    `Organization ${values.org}, conversation ${body.sessionId ?? '—'}, case ${body.caseId ?? '—'}` +
      (body.workflowId ? ` (workflow ${body.workflowId})` : ''),
  );
  if (body.findings.length === 0) {
    out('Nothing is wrong with this conversation.');
    return 0;
  }
  for (const f of body.findings) {
    out(`\n✖ ${f.code} [${f.scenario}]\n  ${f.message}\n  Fix: ${f.fix}`);
  }
  return 1;
}

if (require.main === module) {
  void doctor(process.argv.slice(2), (line) => console.log(line)).then((code) => process.exit(code));
}
