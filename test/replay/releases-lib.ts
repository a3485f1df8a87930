/**
 * Runs an earlier release's own code: a git worktree of the release commit with its own
 * `npm ci`, its own `src/main.ts` (worker and API in one process) against a Temporal server and a
 * PostgreSQL store given to it, its own Creatio and OpenCX emulators, and its own HTTP contract
 * (signed OpenCX webhooks, Test & Save, the session state, the Creatio webhook). Used by
 * `npm run replay:record-release` (test/replay/record-release.ts) and by test/e2e/upgrade.test.ts.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createHmac, randomBytes, randomUUID } from 'node:crypto';
import { createWriteStream, existsSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { Client as PgClient } from 'pg';
import * as prettier from 'prettier';

const run = promisify(execFile);

export const PROJECT_ROOT = path.resolve(__dirname, '..', '..');
/** The directory node runs from: the release processes get the same Node as this one. */
const NODE_BIN = path.dirname(process.execPath);

export interface Release {
  sha: string;
  short: string;
  /** Commit date, ISO 8601. */
  date: string;
  subject: string;
  /** The release's worktree, with its node_modules. */
  dir: string;
}

async function git(args: string[], cwd = PROJECT_ROOT): Promise<string> {
  const { stdout } = await run('git', args, { cwd, maxBuffer: 16 * 1024 * 1024 });
  return stdout.trim();
}

/** Today's code as a "release", to run its src/main.ts the same way (test/e2e/upgrade.test.ts). */
export async function currentCode(): Promise<Release> {
  const sha = await git(['rev-parse', 'HEAD']);
  return {
    sha,
    short: 'current',
    date: new Date().toISOString(),
    subject: 'the working tree',
    dir: PROJECT_ROOT,
  };
}

/**
 * A worktree of the release at `<root>/release-<short sha>` (root: RELEASE_WORKTREES, else /tmp)
 * with its dependencies installed by its own lock file. Idempotent: an existing worktree at the
 * right commit is reused, and `npm ci` runs again only if the lock file changed. The main
 * checkout's HEAD and index are never touched (`git worktree add --detach`).
 */
export async function prepareRelease(
  ref: string,
  log: (m: string) => void = () => {},
  root = process.env.RELEASE_WORKTREES ?? '/tmp',
): Promise<Release> {
  const sha = await git(['rev-parse', '--verify', `${ref}^{commit}`]).catch(async (err: unknown) => {
    // A shallow clone (CI) lacks the commit: fetch it by its full id.
    if (!/^[0-9a-f]{40}$/.test(ref)) throw err;
    log(`git fetch origin ${ref}`);
    await git(['fetch', '--depth=1', 'origin', ref]);
    return git(['rev-parse', '--verify', `${ref}^{commit}`]);
  });
  const short = sha.slice(0, 7);
  const [date, subject] = (await git(['log', '-1', '--format=%cI%n%s', sha])).split('\n') as [string, string];
  const dir = path.join(root, `release-${short}`);
  if (existsSync(path.join(dir, '.git'))) {
    const head = await git(['rev-parse', 'HEAD'], dir);
    if (head !== sha) throw new Error(`${dir} is at ${head}, not at ${sha}: remove it (git worktree remove)`);
  } else {
    log(`git worktree add ${dir} ${short}`);
    await git(['worktree', 'prune']);
    await git(['worktree', 'add', '--detach', dir, sha]);
  }
  const lock = await readFile(path.join(dir, 'package-lock.json'), 'utf8');
  const marker = path.join(dir, 'node_modules', '.release-npm-ci');
  const lockHash = createHash('sha256').update(lock).digest('hex');
  const installed = existsSync(marker) ? (await readFile(marker, 'utf8')).trim() : '';
  if (installed !== lockHash) {
    log(`npm ci in ${dir}`);
    await run('npm', ['ci', '--no-audit', '--no-fund', '--loglevel=error'], {
      cwd: dir,
      env: { ...process.env, PATH: `${NODE_BIN}:${process.env.PATH ?? ''}` },
      maxBuffer: 64 * 1024 * 1024,
    });
    await writeFile(marker, `${lockHash}\n`);
  }
  return { sha, short, date, subject, dir };
}

/** JSON as the repository's Prettier settings print it (`npm run lint` checks these files too). */
export async function writeJson(file: string, value: unknown): Promise<void> {
  const options = (await prettier.resolveConfig(file)) ?? {};
  await writeFile(file, await prettier.format(JSON.stringify(value), { ...options, filepath: file }));
}

/** A fresh schema in the database of `databaseUrl`; the returned URL puts the store in it. */
export async function freshSchema(databaseUrl: string, schema: string): Promise<string> {
  if (!/^[a-z_][a-z0-9_]*$/.test(schema)) throw new Error(`bad schema name ${schema}`);
  const pg = new PgClient({ connectionString: databaseUrl });
  await pg.connect();
  try {
    await pg.query(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
    await pg.query(`CREATE SCHEMA ${schema}`);
  } finally {
    await pg.end();
  }
  const url = new URL(databaseUrl);
  url.searchParams.set('options', `-c search_path=${schema}`);
  return url.toString();
}

export interface ReleaseProcess {
  url: string;
  adminToken: string;
  child: ChildProcess;
  stop(): Promise<void>;
}

/**
 * The release's `src/main.ts` (its worker and its API) in a child process, with its own `tsx`,
 * against the given Temporal server and store. SANDBOX=off: the emulators are this process's.
 */
export async function startReleaseProcess(
  rel: Release,
  o: {
    temporalAddress: string;
    databaseUrl: string;
    /** 32 bytes: the store's key, and (from the release that encrypts payloads) the payloads' key. */
    key: Buffer;
    port: number;
    logFile: string;
    env?: Record<string, string>;
    /**
     * When the process is ready; by default its API answers /readyz. A process without an API
     * (RUN_API=false: a release's workers only) needs another sign, e.g. its pollers on a queue.
     */
    ready?: (child: ChildProcess) => Promise<boolean>;
  },
): Promise<ReleaseProcess> {
  const adminToken = `release-admin-${randomBytes(16).toString('hex')}`;
  const url = `http://127.0.0.1:${o.port}`;
  const out = createWriteStream(o.logFile, { flags: 'a' });
  const child = spawn(path.join(rel.dir, 'node_modules', '.bin', 'tsx'), ['src/main.ts'], {
    cwd: rel.dir,
    env: {
      PATH: `${NODE_BIN}:${process.env.PATH ?? ''}`,
      HOME: process.env.HOME ?? '/tmp',
      NODE_ENV: 'development',
      HOST: '127.0.0.1',
      PORT: String(o.port),
      PUBLIC_BASE_URL: url,
      LOG_LEVEL: 'warn',
      LOG_FORMAT: 'json',
      ADMIN_API_TOKEN: adminToken,
      DATA_DIR: path.join(os.tmpdir(), `bridge-release-${rel.short}-${o.port}`),
      DATABASE_URL: o.databaseUrl,
      ENCRYPTION_KEY: o.key.toString('base64'),
      TEMPORAL_ADDRESS: o.temporalAddress,
      SANDBOX: 'off',
      ...o.env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout?.pipe(out);
  child.stderr?.pipe(out);
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
      await exited;
      clearTimeout(timer);
    }
    out.end();
  };
  const deadline = Date.now() + 90_000;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`release ${rel.short} exited with ${child.exitCode} at start; see ${o.logFile}`);
    }
    try {
      if (o.ready) {
        if (await o.ready(child)) break;
      } else {
        const res = await fetch(`${url}/readyz`, { headers: { authorization: `Bearer ${adminToken}` } });
        if (res.status === 200) break;
      }
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) {
      await stop();
      const tail = (await readFile(o.logFile, 'utf8').catch(() => '')).slice(-2000);
      throw new Error(`release ${rel.short} was not ready within 90 s; ${o.logFile} ends with:\n${tail}`);
    }
    await new Promise((r) => setTimeout(r, 250));
  }
  return { url, adminToken, child, stop };
}

/** The parts of a release's Creatio emulator the scenarios use (stable since the first release). */
export interface CreatioEmu {
  url: string;
  clients: Map<string, { denied: Record<string, string[]> }>;
  processes?: Record<string, unknown>[];
  insert(set: string, values: Record<string, unknown>): { Id: string };
  rows(set: string): Record<string, unknown>[];
  agentEmail?(caseId: string, o: { title: string; body: string; ownerId?: string }): unknown;
  modify(set: string, id: string, values: Record<string, unknown>): unknown;
  close(): Promise<void>;
}
export interface OpenCXEmu {
  url: string;
  messagesFor(sessionId: string): unknown[];
  close(): Promise<void>;
}

export interface ReleaseEmulators {
  creatio: CreatioEmu;
  opencx: OpenCXEmu | undefined;
  sandboxClient: { clientId: string; clientSecret: string };
  ids: {
    caseStatus: Record<string, string>;
    activityType: Record<string, string>;
    messageType?: Record<string, string>;
    contact: Record<string, string>;
  };
  close(): Promise<void>;
}

function firstExisting(dir: string, candidates: string[]): string | undefined {
  return candidates.map((c) => path.join(dir, c)).find((p) => existsSync(p));
}

/** The release's own emulators, loaded from its worktree (they resolve their imports there). */
export async function startReleaseEmulators(rel: Release): Promise<ReleaseEmulators> {
  const creatioPath = firstExisting(rel.dir, [
    'src/sandbox/emulators/creatio.ts',
    'test/emulators/creatio.ts',
  ]);
  if (!creatioPath) throw new Error(`release ${rel.short} has no Creatio emulator`);
  const schemaPath = path.join(path.dirname(creatioPath), 'creatio-schema.ts');
  const opencxPath = firstExisting(rel.dir, ['src/sandbox/emulators/opencx.ts', 'test/emulators/opencx.ts']);
  const cm = (await import(creatioPath)) as {
    startCreatioEmulator(port?: number): Promise<CreatioEmu>;
    SANDBOX_CLIENT: { clientId: string; clientSecret: string };
  };
  const sm = (await import(schemaPath)) as { IDS: ReleaseEmulators['ids'] };
  const creatio = await cm.startCreatioEmulator();
  let opencx: OpenCXEmu | undefined;
  if (opencxPath) {
    const om = (await import(opencxPath)) as { startOpenCXEmulator(port?: number): Promise<OpenCXEmu> };
    opencx = await om.startOpenCXEmulator();
  }
  return {
    creatio,
    opencx,
    sandboxClient: cm.SANDBOX_CLIENT,
    ids: sm.IDS,
    close: async () => {
      await opencx?.close();
      await creatio.close();
    },
  };
}

export const WEBHOOK_SECRET = `whsec_${Buffer.from('release-webhook-signing-key-0123456789').toString('base64')}`;

/** Standard Webhooks signature headers (what OpenCX sends; every release verifies these). */
export function signedHeaders(secret: string, body: string): Record<string, string> {
  const id = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ''), 'base64');
  const sig = createHmac('sha256', key).update(`${id}.${ts}.${body}`).digest('base64');
  return {
    'content-type': 'application/json',
    'webhook-id': id,
    'webhook-timestamp': String(ts),
    'webhook-signature': `v1,${sig}`,
  };
}

let clock = Date.now();
function nextTimestamp(): string {
  clock = Math.max(clock + 1000, Date.now());
  return new Date(clock).toISOString();
}

/** OpenCX webhook bodies, as every release's test harness builds them (test/bridge-harness.ts `ev`). */
export const ev = {
  started: (sessionId: string) => ({
    conversation_id: sessionId,
    contact: { name: 'Jane Doe', email: 'jane@example.com' },
    channel: 'web',
    timestamp: nextTimestamp(),
  }),
  message: (sessionId: string, id: string, text: string) => ({
    conversation_id: sessionId,
    message: { id, text },
    timestamp: nextTimestamp(),
  }),
  handoff: (sessionId: string) => ({
    conversation_id: sessionId,
    reason: 'user_requested_human',
    summary: 'Customer cannot log in after the password reset.',
    language: 'en',
    sentiment: 'angry',
    timestamp: nextTimestamp(),
  }),
  closed: (sessionId: string, resolution: 'resolved' | 'not_resolved' = 'resolved') => ({
    conversation_id: sessionId,
    resolution_status: resolution,
    summary: 'Password reset link resent.',
    language: 'en',
    user_sentiment: 'neutral',
    timestamp: nextTimestamp(),
  }),
};

export async function waitFor<T>(
  what: string,
  fn: () => T | Promise<T>,
  timeoutMs = 60_000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  let last: T | undefined;
  while (Date.now() < deadline) {
    last = await fn();
    if (last) return last;
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`timed out after ${timeoutMs} ms waiting for ${what} (last: ${JSON.stringify(last)})`);
}

/** The HTTP contract of a running bridge (release or today's): Test & Save, webhooks, session state. */
export class BridgeHttp {
  constructor(
    readonly url: string,
    private readonly adminToken: string,
  ) {}

  async request(method: string, p: string, body?: unknown): Promise<{ status: number; body: any }> {
    const res = await fetch(`${this.url}${p}`, {
      method,
      headers: {
        authorization: `Bearer ${this.adminToken}`,
        ...(body !== undefined && { 'content-type': 'application/json' }),
      },
      body: body === undefined ? undefined : JSON.stringify(body),
      signal: AbortSignal.timeout(30_000),
    });
    const text = await res.text();
    let parsed: unknown = text;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      // not JSON
    }
    return { status: res.status, body: parsed };
  }

  /** Connects an organization to the emulators through Test & Save. */
  async connectOrg(
    orgId: string,
    emus: ReleaseEmulators,
    overrides: Record<string, unknown> = {},
  ): Promise<void> {
    const res = await this.request('PUT', `/v1/orgs/${orgId}/integrations/creatio`, {
      instanceUrl: emus.creatio.url,
      clientId: emus.sandboxClient.clientId,
      clientSecret: emus.sandboxClient.clientSecret,
      opencx: {
        ...(emus.opencx && { apiBaseUrl: emus.opencx.url }),
        apiKey: 'ocx_test_key',
        webhookSecret: WEBHOOK_SECRET,
      },
      ...overrides,
    });
    if (res.status !== 201 && res.status !== 200) {
      throw new Error(`connect ${orgId} answered ${res.status}: ${JSON.stringify(res.body)}`);
    }
  }

  async send(orgId: string, event: string, data: Record<string, unknown>): Promise<void> {
    const body = JSON.stringify({ event, organization_id: orgId, data });
    for (let attempt = 0; ; attempt++) {
      const res = await fetch(`${this.url}/webhooks/opencx`, {
        method: 'POST',
        headers: signedHeaders(WEBHOOK_SECRET, body),
        body,
        signal: AbortSignal.timeout(30_000),
      });
      const text = await res.text();
      if (res.status >= 200 && res.status < 300) return;
      // A webhook the bridge could not hand on yet is sent again, as OpenCX would.
      if (res.status >= 500 && attempt < 20) {
        await new Promise((r) => setTimeout(r, 500));
        continue;
      }
      throw new Error(`${event} for ${orgId} answered ${res.status}: ${text}`);
    }
  }

  async session(orgId: string, sessionId: string): Promise<any> {
    const res = await this.request('GET', `/v1/orgs/${orgId}/sessions/${sessionId}`);
    return res.status === 200 ? res.body : undefined;
  }

  /** The organization's Creatio webhook URL as its settings answer it (PUBLIC_BASE_URL is this API). */
  async creatioWebhookUrl(orgId: string): Promise<string> {
    const res = await this.request('GET', `/v1/orgs/${orgId}/integrations/creatio`);
    const url = (res.body as { webhookUrl?: string } | undefined)?.webhookUrl;
    if (!url) throw new Error(`no webhookUrl for ${orgId}: ${JSON.stringify(res.body)}`);
    return url;
  }
}
