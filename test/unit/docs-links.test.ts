/**
 * The documentation's pointers stay true: every Markdown file of the repository (README.md, docs/**,
 * bench/README.md, ...) is parsed, and the test fails naming the file and the pointer on
 * - a relative link whose file does not exist, or whose `#anchor` matches no heading of its target
 *   (GitHub's heading slugs);
 * - a backticked path that looks like a repository file (`src/…`, `test/…`, `bench/…`, `docs/…`,
 *   `scripts/…`, `.ci/…`, `deploy/…`, or a top-level file such as `package.json`) that does not exist,
 *   or such a file path with an extension written in prose (`see src/x.ts`).
 * Paths under a directory that .gitignore ignores (generated: `bench/results/`, `.data/`) are not checked.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';

const REPO = path.resolve(__dirname, '..', '..');
const SKIP_DIRS = new Set(['node_modules', '.cache', '.git', '.data', 'dist']);

/** Backticked text that names a repository path. */
const PATH_PREFIX = /^(src|test|bench|docs|scripts|\.ci|deploy)\//;
const TOP_LEVEL_FILE =
  /^(package(-lock)?\.json|tsconfig[\w.-]*\.json|Dockerfile|docker-compose[\w.-]*\.ya?ml|\.env\.example|\.prettierrc[\w.]*|\.prettierignore|\.gitignore|\.dockerignore|eslint\.config\.\w+|README\.md)$/;

export interface DocProblem {
  file: string;
  line: number;
  pointer: string;
  problem: string;
}

async function markdownFiles(root: string): Promise<string[]> {
  const out: string[] = [];
  const walk = async (dir: string): Promise<void> => {
    for (const e of await readdir(dir, { withFileTypes: true })) {
      if (e.isDirectory()) {
        if (!SKIP_DIRS.has(e.name)) await walk(path.join(dir, e.name));
      } else if (e.isFile() && e.name.endsWith('.md')) {
        out.push(path.join(dir, e.name));
      }
    }
  };
  await walk(root);
  return out.sort();
}

/** The file's lines with fenced code blocks blanked (their text is not Markdown). */
function proseLines(text: string): string[] {
  let fence: string | undefined;
  return text.split('\n').map((line) => {
    const m = /^\s{0,3}(`{3,}|~{3,})/.exec(line);
    if (fence) {
      const mark = m?.[1] ?? '';
      if (mark[0] === fence[0] && mark.length >= fence.length) fence = undefined;
      return '';
    }
    if (m) {
      fence = m[1] ?? '```';
      return '';
    }
    return line;
  });
}

/** GitHub's anchor for a heading: its text, lower case, punctuation dropped, spaces as hyphens. */
export function slug(heading: string): string {
  const text = heading
    .replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1') // links and images: their text
    .replace(/<[^>]+>/g, '') // inline HTML
    .split(/(`[^`]*`)/) // code spans keep their content as it is; elsewhere emphasis markers go
    .map((part, i) =>
      i % 2 === 1
        ? part.slice(1, -1)
        : part
            .replace(/\*+/g, '')
            .replace(/_+/g, (m: string, at: number, s: string) =>
              /\w/.test(s[at - 1] ?? '') && /\w/.test(s[at + m.length] ?? '') ? m : '',
            ),
    )
    .join('');
  return text
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc} -]/gu, '')
    .replace(/ /g, '-');
}

/** Every anchor a Markdown file offers: its headings' slugs (repeats numbered) and explicit ids. */
export function anchorsOf(text: string): Set<string> {
  const anchors = new Set<string>();
  const seen = new Map<string, number>();
  for (const line of proseLines(text)) {
    const h = /^\s{0,3}#{1,6}\s+(.*?)(\s+#+)?\s*$/.exec(line);
    if (h) {
      const base = slug(h[1] ?? '');
      const n = seen.get(base) ?? 0;
      seen.set(base, n + 1);
      anchors.add(n === 0 ? base : `${base}-${n}`);
    }
    for (const m of line.matchAll(/<a\s+(?:id|name)="([^"]+)"/g)) anchors.add(m[1] ?? '');
  }
  return anchors;
}

/** Code spans of a line, without the backticks. */
function codeSpans(line: string): string[] {
  const spans: string[] = [];
  const re = /(`+)([^`]|[^`][\s\S]*?[^`])\1(?!`)/g;
  for (const m of line.matchAll(re)) spans.push((m[2] ?? '').trim());
  return spans;
}

function ignoredByGit(root: string): string[] {
  try {
    const text = readFileSync(path.join(root, '.gitignore'), 'utf8');
    return text
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => l && !l.startsWith('#') && !l.includes('*'))
      .map((l) => l.replace(/^\//, '').replace(/\/$/, ''));
  } catch {
    return [];
  }
}

/** Checks every Markdown file under root; returns what is broken. */
export async function checkDocs(root: string): Promise<DocProblem[]> {
  const files = await markdownFiles(root);
  const anchorCache = new Map<string, Set<string>>();
  const anchorsOfFile = async (file: string): Promise<Set<string>> => {
    let a = anchorCache.get(file);
    if (!a) {
      a = anchorsOf(await readFile(file, 'utf8'));
      anchorCache.set(file, a);
    }
    return a;
  };
  const ignored = ignoredByGit(root);
  const generated = (rel: string) => ignored.some((i) => rel === i || rel.startsWith(`${i}/`));
  const problems: DocProblem[] = [];
  const anchorChecks: { file: string; line: number; target: string; resolved: string; anchor: string }[] = [];

  for (const file of files) {
    const rel = path.relative(root, file);
    const lines = proseLines(await readFile(file, 'utf8'));
    lines.forEach((line, i) => {
      const report = (pointer: string, problem: string) =>
        problems.push({ file: rel, line: i + 1, pointer, problem });
      // Inline links and images, outside code spans; reference definitions.
      const withoutCode = line.replace(/(`+)[\s\S]*?\1/g, (m) => ' '.repeat(m.length));
      const targets = [
        ...[...withoutCode.matchAll(/\]\(\s*(<[^>]*>|[^)\s]+)(?:\s+"[^"]*")?\s*\)/g)].map((m) => m[1] ?? ''),
        ...[...withoutCode.matchAll(/^\s{0,3}\[[^\]]+\]:\s*(\S+)/g)].map((m) => m[1] ?? ''),
      ];
      for (const raw of targets) {
        const target = raw.replace(/^<|>$/g, '');
        if (/^[a-z][a-z0-9+.-]*:/i.test(target) || target.startsWith('//')) continue; // http:, mailto:
        const hash = target.indexOf('#');
        const filePart = decodeURIComponent(hash >= 0 ? target.slice(0, hash) : target);
        const anchor = hash >= 0 ? decodeURIComponent(target.slice(hash + 1)) : undefined;
        const resolved = filePart
          ? filePart.startsWith('/')
            ? path.join(root, filePart)
            : path.resolve(path.dirname(file), filePart)
          : file;
        if (!existsSync(resolved)) {
          report(target, `link to a missing file (${path.relative(root, resolved)})`);
          continue;
        }
        if (anchor !== undefined && resolved.endsWith('.md')) {
          anchorChecks.push({ file: rel, line: i + 1, target, resolved, anchor });
        }
      }
      // Backticked repository paths.
      for (const span of codeSpans(line)) {
        const candidate = span.replace(/:\d+(-\d+)?$/, '').replace(/#.*$/, '');
        if (!/^[\w@./-]+$/.test(candidate) || candidate.includes('..')) continue;
        if (!PATH_PREFIX.test(candidate) && !TOP_LEVEL_FILE.test(candidate)) continue;
        if (generated(candidate.replace(/\/$/, ''))) continue;
        if (!existsSync(path.join(root, candidate))) report(`\`${span}\``, 'no such file in the repository');
      }
      // File paths written in prose (with an extension: `src/x.ts`, not `docs/decisions/0020`).
      const prose = withoutCode.replace(/\]\([^)]*\)/g, ']');
      for (const m of prose.matchAll(
        /(?<![\w/.-])((?:src|test|bench|docs|scripts|\.ci|deploy)\/[\w@./-]*\.[A-Za-z]+)/g,
      )) {
        const candidate = m[1] ?? '';
        if (generated(candidate) || existsSync(path.join(root, candidate))) continue;
        report(candidate, 'no such file in the repository');
      }
    });
  }
  for (const c of anchorChecks) {
    const anchors = await anchorsOfFile(c.resolved);
    if (!anchors.has(c.anchor.toLowerCase())) {
      problems.push({
        file: c.file,
        line: c.line,
        pointer: c.target,
        problem: `no heading for #${c.anchor} in ${path.relative(root, c.resolved)}`,
      });
    }
  }
  return problems;
}

function describeProblems(problems: DocProblem[]): string {
  return problems.map((p) => `${p.file}:${p.line}: ${p.pointer}: ${p.problem}`).join('\n');
}

describe('documentation links', () => {
  it('every relative link, anchor and backticked path in the repository Markdown exists', async () => {
    const files = await markdownFiles(REPO);
    assert.ok(files.includes(path.join(REPO, 'README.md')), 'README.md is among the checked files');
    const problems = await checkDocs(REPO);
    assert.equal(problems.length, 0, `broken pointers in the docs:\n${describeProblems(problems)}`);
  });

  it('reports a missing file, a missing anchor and a missing backticked path (fixture)', async () => {
    const root = await mkdtemp(path.join(tmpdir(), 'docs-links-'));
    try {
      await mkdir(path.join(root, 'docs'));
      await mkdir(path.join(root, 'src'));
      await writeFile(path.join(root, 'src', 'real.ts'), '');
      await writeFile(path.join(root, '.gitignore'), 'bench/results/\n');
      await writeFile(
        path.join(root, 'docs', 'guide.md'),
        [
          '# Guide',
          '',
          '## The `webhookUrl` and _Test & Save_',
          '',
          '## Repeated',
          '',
          '## Repeated',
          '',
          '```sh',
          'see [inside a fence](missing-in-fence.md) and `src/not-checked.ts`',
          '```',
        ].join('\n'),
      );
      await writeFile(
        path.join(root, 'README.md'),
        [
          '# Fixture',
          '',
          'Good: [guide](docs/guide.md), [section](docs/guide.md#the-webhookurl-and-test--save),',
          '[second](docs/guide.md#repeated-1), [here](#fixture), [site](https://example.com/x.md),',
          '`src/real.ts`, `src/real.ts:12`, `bench/results/latest.json` (generated), `npm test`.',
          '',
          'Broken: [gone](docs/missing.md), [bad anchor](docs/guide.md#no-such-heading),',
          '[own anchor](#nowhere), `src/retry.ts` and `package.json`.',
          'Prose: src/real.ts is fine, src/workflows/retry.ts is not; https://example.com/src/x.ts is a URL.',
        ].join('\n'),
      );
      const problems = await checkDocs(root);
      assert.deepEqual(
        problems.map((p) => `${p.file}:${p.line} ${p.pointer}`).sort(),
        [
          'README.md:7 docs/guide.md#no-such-heading',
          'README.md:7 docs/missing.md',
          'README.md:8 #nowhere',
          'README.md:8 `package.json`',
          'README.md:8 `src/retry.ts`',
          'README.md:9 src/workflows/retry.ts',
        ],
        describeProblems(problems),
      );
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('slugs headings as GitHub does', () => {
    assert.equal(
      slug('Creatio business processes (agent replies and closure)'),
      'creatio-business-processes-agent-replies-and-closure',
    );
    assert.equal(slug('Connect an organization (Test & Save)'), 'connect-an-organization-test--save');
    assert.equal(slug('`HISTORY_CHECK_AFTER` and **bold**'), 'history_check_after-and-bold');
    assert.equal(slug("Creatio's data model, checked"), 'creatios-data-model-checked');
    assert.equal(slug('OpenCX ⇄ Creatio bridge'), 'opencx--creatio-bridge');
  });
});
