import { mkdir, writeFile } from 'node:fs/promises';
import path from 'node:path';

/**
 * Writes a benchmark's result to bench/results/<name>-<date>.json, with the date first in it;
 * returns the file's path relative to the working directory, for the benchmark to print.
 */
export async function writeResult(name: string, data: object): Promise<string> {
  const dir = path.join(__dirname, 'results');
  await mkdir(dir, { recursive: true });
  const date = new Date().toISOString();
  const file = path.join(dir, `${name}-${date.replace(/[:.]/g, '-')}.json`);
  await writeFile(file, JSON.stringify({ date, ...data }, null, 2));
  return path.relative(process.cwd(), file);
}
