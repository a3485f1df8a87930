import path from 'node:path';
import express, { Router } from 'express';
import { consoleFields } from '../../settings/fields';
import type { AppDeps } from '../deps';

/** The console's files (copied next to the compiled code by `npm run build`). */
const STATIC_DIR = path.join(__dirname, 'static');

/**
 * GET /admin/: the admin console, a static page that signs in with the admin token and works
 * through the bridge's own API. Its script reads nothing but that API and /admin/config.json (which
 * also gives the settings form's fields).
 */
export function adminRouter(deps: Pick<AppDeps, 'config'>): Router {
  const r = Router();
  const settingsFields = consoleFields();
  r.use('/admin', (_req, res, next) => {
    res.setHeader(
      'content-security-policy',
      "default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    );
    res.setHeader('x-content-type-options', 'nosniff');
    res.setHeader('referrer-policy', 'no-referrer');
    next();
  });
  // Also matches /admin (routing is not strict): the page's relative links need the slash.
  r.get('/admin/', (req, res) => {
    if (!req.originalUrl.split('?')[0]!.endsWith('/')) {
      res.redirect(301, '/admin/');
      return;
    }
    res.sendFile(path.join(STATIC_DIR, 'index.html'));
  });
  r.get('/admin/config.json', (_req, res) => {
    res.json({
      temporalUiOrigin: deps.config.temporalUiOrigin ?? 'http://localhost:8233',
      namespace: deps.config.temporal?.namespace ?? 'default',
      // The settings form's fields (src/settings/fields.ts); console.js builds the form from them.
      settingsFields,
    });
  });
  r.use('/admin', express.static(STATIC_DIR, { index: false, fallthrough: true, maxAge: '5m' }));
  return r;
}
