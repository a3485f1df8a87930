import { ApiError } from '../errors';

export interface Notice {
  code: string;
  message: string;
  field?: string;
}

const LOOPBACK = new Set(['localhost', '127.0.0.1', '[::1]', '::1']);

export function isLoopback(hostname: string): boolean {
  return LOOPBACK.has(hostname.toLowerCase()) || /^127\.\d+\.\d+\.\d+$/.test(hostname);
}

/**
 * Normalises a Creatio base URL: https (http only for loopback hosts such as the sandbox), no
 * credentials, query or fragment; trailing slashes and a pasted `/0/...` app path are removed and
 * reported as notices so the admin sees what was stored.
 */
export function normalizeBaseUrl(input: string, field: string, notices: Notice[]): string {
  const raw = input.trim();
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    throw new ApiError(422, `${snake(field)}_malformed`, `${field} "${raw}" is not a URL`, {
      field,
      fix: 'Use the address you open Creatio with, for example https://yourcompany.creatio.com',
    });
  }
  if (u.protocol !== 'https:' && u.protocol !== 'http:') {
    throw new ApiError(422, `${snake(field)}_malformed`, `${field} must start with https://`, {
      field,
      fix: 'Use the address you open Creatio with, for example https://yourcompany.creatio.com',
    });
  }
  if (u.protocol === 'http:' && !isLoopback(u.hostname)) {
    throw new ApiError(
      422,
      `${snake(field)}_not_https`,
      `${field} must use https:// (http is accepted only for localhost)`,
      {
        field,
        fix: `Use https://${u.host}${u.pathname === '/' ? '' : u.pathname}`,
      },
    );
  }
  if (u.username || u.password || u.search || u.hash) {
    throw new ApiError(
      422,
      `${snake(field)}_malformed`,
      `${field} must be a plain base URL without credentials, query or fragment`,
      { field, fix: `Use ${u.origin}` },
    );
  }
  let path = u.pathname;
  const appPath = /\/0(\/.*)?$/.exec(path);
  if (appPath) {
    path = path.slice(0, appPath.index);
    notices.push({
      code: `${snake(field)}_app_path_removed`,
      field,
      message: `Removed "${appPath[0]}" from ${field}: the bridge adds /0/odata itself`,
    });
  }
  if (path.endsWith('/')) {
    const hadTrailing = raw.endsWith('/') || path.length > 1;
    path = path.replace(/\/+$/, '');
    if (hadTrailing) {
      notices.push({
        code: `${snake(field)}_trailing_slash_removed`,
        field,
        message: `Removed the trailing slash from ${field}: stored as ${u.origin}${path}`,
      });
    }
  }
  return `${u.origin}${path}`;
}

function snake(field: string): string {
  return field.replace(/[A-Z]/g, (c) => `_${c.toLowerCase()}`);
}
