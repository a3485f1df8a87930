// The admin console: the Creatio settings with Test & Save, the webhook URL, the conversation
// inspector, the OpenCX events the bridge refused (with their replay), and the conversations that
// need attention (#inspector?orgId=…&sessionId=… opens one in the inspector). Plain browser
// JavaScript over the bridge's own API (/v1/...); every value shown is set with textContent, never
// as HTML.
'use strict';

const $ = (sel, root = document) => root.querySelector(sel);
const GUID = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;
const SECRET_PLACEHOLDER = 'set; leave empty to keep it';

const session = {
  get token() {
    return sessionStorage.getItem('bridge.token');
  },
  get orgId() {
    return sessionStorage.getItem('bridge.orgId');
  },
  set(token, orgId) {
    sessionStorage.setItem('bridge.token', token);
    sessionStorage.setItem('bridge.orgId', orgId);
  },
  clear() {
    sessionStorage.removeItem('bridge.token');
    sessionStorage.removeItem('bridge.orgId');
  },
};

async function api(method, path, body) {
  const res = await fetch(path, {
    method,
    headers: {
      authorization: `Bearer ${session.token}`,
      ...(body !== undefined && { 'content-type': 'application/json' }),
    },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  let json;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    json = { error: { code: 'not_json', message: text.slice(0, 200) } };
  }
  return { status: res.status, body: json };
}

const orgPath = (rest) => `/v1/orgs/${encodeURIComponent(session.orgId)}${rest}`;

function el(tag, attrs = {}, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === 'class') e.className = v;
    else if (k.startsWith('data-')) e.setAttribute(k, v);
    else e[k] = v;
  }
  for (const c of children) e.append(c instanceof Node ? c : document.createTextNode(String(c ?? '')));
  return e;
}

/* ---------- sign in ---------- */

async function signIn(token, orgId) {
  await formReady;
  session.set(token, orgId);
  const res = await api('GET', orgPath('/integrations/creatio'));
  if (res.status === 401 || res.status === 429) {
    session.clear();
    throw new Error(res.body?.error?.message ?? 'Sign-in refused');
  }
  if (res.status === 400 || res.status === 403) {
    // 403: an organization's own token, signing in to another organization.
    session.clear();
    throw new Error(res.body?.error?.message ?? 'Bad organization ID');
  }
  showSignedIn(res.status === 200 ? res.body : null);
}

function showSignedIn(settings) {
  $('#sign-in').hidden = true;
  $('#signed-in').hidden = false;
  $('#sign-out').hidden = false;
  $('#who').textContent = `Organization ${session.orgId}`;
  fillSettings(settings);
}

/* ---------- settings ---------- */

function aiFieldRow(f = { column: '', title: '', type: 'text', description: '', enabled: true }) {
  const type = el(
    'select',
    { name: 'type' },
    el('option', { value: 'text' }, 'text'),
    el('option', { value: 'dropdown' }, 'dropdown'),
  );
  type.value = f.type;
  const remove = el('button', { type: 'button', className: 'remove' }, 'Remove');
  const row = el(
    'tr',
    {},
    el(
      'td',
      {},
      el('input', { type: 'checkbox', name: 'enabled', checked: f.enabled !== false, title: 'Enabled' }),
    ),
    el('td', {}, el('input', { name: 'column', value: f.column, placeholder: 'UsrTopic' })),
    el('td', {}, el('input', { name: 'title', value: f.title })),
    el('td', {}, type),
    el('td', {}, el('input', { name: 'description', value: f.description })),
    el('td', {}, remove),
  );
  remove.addEventListener('click', () => row.remove());
  return row;
}

/*
 * The settings form is built from the field list the server gives in config.json (from
 * src/settings/fields.ts): each field's control, its group, how it is filled from the settings
 * answer and how it is read back into the request body.
 */
let uiConfig;
const config = () => (uiConfig ??= fetch('config.json').then((r) => r.json()));

const getPath = (obj, path) => path.split('.').reduce((o, k) => o?.[k], obj);
function setPath(obj, path, value) {
  const keys = path.split('.');
  const last = keys.pop();
  let o = obj;
  for (const k of keys) o = o[k] ??= {};
  o[last] = value;
}

let settingsFields = [];

function fieldControl(f) {
  if (f.kind === 'checkbox') {
    return el(
      'label',
      { class: 'switch' },
      el('input', { name: f.control, type: 'checkbox' }),
      ` ${f.label}`,
    );
  }
  if (f.kind === 'select') {
    const select = el(
      'select',
      { name: f.control },
      ...f.options.map((o) => el('option', { value: o.value }, o.label)),
    );
    return el('label', {}, `${f.label} `, select);
  }
  const input = el('input', {
    name: f.control,
    ...(f.empty === 'blank' && { required: true }),
    ...(f.placeholder && { placeholder: f.placeholder }),
    ...(f.kind === 'secret' && { type: 'password', autocomplete: 'off' }),
  });
  return el('label', {}, `${f.label} `, input);
}

async function buildSettingsForm() {
  settingsFields = (await config()).settingsFields.filter((f) => !f.custom);
  for (const box of document.querySelectorAll('#settings-form [data-fields]')) {
    box.replaceChildren(...settingsFields.filter((f) => f.group === box.dataset.fields).map(fieldControl));
  }
}

function fillSettings(s) {
  const form = $('#settings-form');
  for (const f of settingsFields.filter((f) => f.shown)) {
    const input = form.elements[f.control];
    const value = s ? getPath(s, f.path) : undefined;
    if (f.kind === 'secret') {
      input.value = '';
      input.placeholder = value ? SECRET_PLACEHOLDER : '';
    } else if (f.kind === 'checkbox') input.checked = (value ?? f.default) === true;
    else if (f.kind === 'list') input.value = (value ?? f.default ?? []).join(', ');
    else if (f.kind === 'select') input.value = value ?? f.default;
    else input.value = value ?? '';
  }
  // What the filter sends and never sends, as the settings answer states it.
  const rules = s?.agentReplyRules;
  $('#reply-rules').replaceChildren(
    ...(rules
      ? [
          el('p', {}, 'Sent to the customer:'),
          el('ul', {}, ...rules.sent.map((r) => el('li', {}, r))),
          el('p', {}, 'Never sent:'),
          el('ul', {}, ...rules.neverSent.map((r) => el('li', {}, r))),
        ]
      : []),
  );
  $('#opencx-mapping').textContent = s?.opencx?.mapping ?? '';
  const body = $('#ai-fields tbody');
  body.replaceChildren(...(s?.aiFields ?? []).map(aiFieldRow));
  showWebhook(s?.webhookUrl);
}

function readSettings() {
  const form = $('#settings-form').elements;
  const body = {};
  for (const f of settingsFields) {
    const input = form[f.control];
    let value;
    if (f.kind === 'checkbox') value = input.checked;
    else if (f.kind === 'select') value = input.value;
    else if (f.kind === 'secret') value = input.value || undefined;
    else if (f.kind === 'list') {
      const list = input.value
        .split(',')
        .map((v) => v.trim())
        .filter(Boolean);
      value = list.length > 0 ? list : undefined;
    } else {
      const text = input.value.trim();
      value = text || { blank: '', null: null, omit: undefined }[f.empty];
    }
    if (value !== undefined) setPath(body, f.path, value);
  }
  body.aiFields = [...document.querySelectorAll('#ai-fields tbody tr')].map((row) => ({
    enabled: $('[name=enabled]', row).checked,
    column: $('[name=column]', row).value.trim(),
    title: $('[name=title]', row).value.trim(),
    type: $('[name=type]', row).value,
    description: $('[name=description]', row).value.trim(),
  }));
  return body;
}

function renderChecks(checks = []) {
  return el(
    'ul',
    { class: 'checks' },
    ...checks.map((c) =>
      el(
        'li',
        { class: c.skipped ? 'skipped' : c.ok ? 'ok' : 'failed', 'data-check': c.name },
        el('strong', {}, c.name),
        c.message ? ` — ${c.message}` : '',
        c.code && !c.ok ? el('code', {}, c.code) : '',
        c.fix && !c.ok ? el('div', { class: 'fix' }, `Fix: ${c.fix}`) : '',
      ),
    ),
  );
}

function renderError(err) {
  return el(
    'div',
    { class: 'banner bad', id: 'error-banner' },
    el('code', { id: 'error-code' }, err.code),
    ' ',
    err.field ? `${err.field}: ` : '',
    err.message,
    err.fix ? el('div', { class: 'fix', id: 'error-fix' }, `Fix: ${err.fix}`) : '',
  );
}

async function testOrSave(save) {
  const result = $('#result');
  result.replaceChildren(el('p', {}, save ? 'Testing, then saving…' : 'Testing…'));
  const res = save
    ? await api('PUT', orgPath('/integrations/creatio'), readSettings())
    : await api('POST', orgPath('/integrations/creatio/test'), readSettings());
  const parts = [];
  if (res.body?.error) parts.push(renderError(res.body.error));
  else if (save)
    parts.push(
      el('div', { class: 'banner ok', id: 'saved' }, res.status === 201 ? 'Connected and saved.' : 'Saved.'),
    );
  else
    parts.push(
      el(
        'div',
        { class: res.body.ok ? 'banner ok' : 'banner bad' },
        res.body.ok ? 'Every check passed (not saved).' : 'A check failed.',
      ),
    );
  if (res.body?.checks) parts.push(renderChecks(res.body.checks));
  result.replaceChildren(...parts);
  if (save && res.status < 300) fillSettings(res.body);
}

function showWebhook(url) {
  $('#webhook').hidden = !url;
  $('#webhook-url').textContent = url ?? '';
}

/* ---------- conversation inspector ---------- */

async function temporalLink(workflowId) {
  const { temporalUiOrigin, namespace } = await config();
  return `${temporalUiOrigin}/namespaces/${encodeURIComponent(namespace)}/workflows/${encodeURIComponent(workflowId)}`;
}

async function inspect(query) {
  const out = $('#conversation');
  out.replaceChildren(el('p', {}, 'Looking…'));
  const q = query.trim();
  const diag = await api(
    'GET',
    orgPath(`/diagnose?${GUID.test(q) ? 'caseId' : 'sessionId'}=${encodeURIComponent(q)}`),
  );
  if (diag.body?.error) {
    out.replaceChildren(renderError(diag.body.error));
    return;
  }
  if (!diag.body.sessionId) {
    out.replaceChildren(findingsList(diag.body.findings));
    return;
  }
  const st = await api('GET', orgPath(`/sessions/${encodeURIComponent(diag.body.sessionId)}`));
  if (st.body?.error) {
    out.replaceChildren(renderError(st.body.error));
    return;
  }
  const s = st.body;
  const row = (k, v) => [el('dt', {}, k), el('dd', { 'data-field': k }, v ?? '—')];
  const parts = [
    el('h2', {}, `Conversation ${s.sessionId}`),
    el(
      'dl',
      {},
      ...row('Status', s.status),
      ...row('Mode', s.mode === 'handoff_only' ? 'case only on handoff' : 'case for every conversation'),
      ...row('Case', s.caseId ? `${s.caseNumber ?? ''} ${s.caseId}`.trim() : null),
      ...row(
        'Messages',
        `${s.messages.received} received, ${s.messages.logged} logged, ${s.messages.pending} pending`,
      ),
      ...row('Handed off', s.handedOffAt),
      ...row('Agent replies delivered', String(s.agentRepliesDelivered)),
      ...row('Case status', s.caseStatus),
      ...row(
        'Workflow',
        el(
          'a',
          { href: await temporalLink(s.workflowId), target: '_blank', rel: 'noopener', id: 'temporal-link' },
          `${s.workflowId} in the Temporal UI`,
        ),
      ),
    ),
  ];
  if (s.lastError) parts.push(parkedStep(s));
  parts.push(findingsList(diag.body.findings));
  if (s.messageLog?.length) {
    parts.push(
      el('h3', {}, 'Messages'),
      el(
        'table',
        { id: 'message-log' },
        el('thead', {}, el('tr', {}, el('th', {}, 'Message'), el('th', {}, 'Sync'))),
        el(
          'tbody',
          {},
          ...s.messageLog.map((m) =>
            el('tr', {}, el('td', {}, m.id), el('td', { class: `status-${m.status}` }, m.status)),
          ),
        ),
      ),
    );
  }
  if (s.notes?.length)
    parts.push(
      el('h3', {}, 'Notes'),
      el('ul', {}, ...s.notes.map((n) => el('li', {}, `${n.at}: ${n.message}`))),
    );
  out.replaceChildren(...parts);
}

function parkedStep(s) {
  const e = s.lastError;
  const box = el(
    'div',
    { class: 'banner bad', id: 'parked' },
    el('strong', {}, e.parked ? `Parked: ${e.step}` : `Retrying: ${e.step}`),
    el('div', {}, `${e.type}: ${e.message}`),
  );
  if (e.parked) {
    const resume = el('button', { type: 'button', id: 'resume' }, 'Resume');
    resume.addEventListener('click', () => command(s.sessionId, 'resume'));
    box.append(resume);
    if (e.skippable) {
      const reason = el('input', { id: 'skip-reason', placeholder: 'Why give this step up?' });
      const skip = el('button', { type: 'button', id: 'skip' }, 'Skip');
      skip.addEventListener('click', () => command(s.sessionId, 'skip', { reason: reason.value }));
      box.append(' ', reason, skip);
    }
  }
  return box;
}

async function command(sessionId, kind, body) {
  const res = await api('POST', orgPath(`/sessions/${encodeURIComponent(sessionId)}/${kind}`), body);
  const out = $('#conversation');
  if (res.body?.error) {
    out.prepend(renderError(res.body.error));
    return;
  }
  await inspect(sessionId);
  $('#conversation').prepend(
    el('div', { class: 'banner ok', id: 'command-result' }, `${res.body.status}: ${res.body.step}`),
  );
}

function findingsList(findings) {
  if (!findings.length)
    return el(
      'div',
      { class: 'banner ok', id: 'findings' },
      'Diagnose: nothing is wrong with this conversation.',
    );
  return el(
    'div',
    { id: 'findings' },
    el('h3', {}, 'Diagnose'),
    el(
      'ul',
      { class: 'checks' },
      ...findings.map((f) =>
        el(
          'li',
          { class: 'failed', 'data-finding': f.code },
          el('strong', {}, f.code),
          ` — ${f.message}`,
          el('div', { class: 'fix' }, `Fix: ${f.fix}`),
        ),
      ),
    ),
  );
}

/* ---------- OpenCX events ---------- */

async function loadEvents() {
  const out = $('#events-out');
  out.replaceChildren(el('p', {}, 'Loading…'));
  const [kept, unmapped] = await Promise.all([
    api('GET', orgPath('/opencx-events?limit=1000')),
    api('GET', '/v1/opencx-events/unmapped'),
  ]);
  const parts = [el('h2', {}, 'Refused OpenCX events')];
  if (kept.body?.error) parts.push(renderError(kept.body.error));
  else if (kept.body.events.length === 0)
    parts.push(
      el('div', { class: 'banner ok', id: 'no-kept-events' }, 'No refused OpenCX event is waiting.'),
    );
  else {
    const all = el('button', { type: 'button', id: 'replay-all' }, `Replay all (${kept.body.waiting})`);
    all.addEventListener('click', () => void replay(null));
    parts.push(
      el('p', { class: 'hint' }, kept.body.fix ?? ''),
      all,
      el(
        'table',
        { id: 'kept-events' },
        el(
          'thead',
          {},
          el(
            'tr',
            {},
            ...['Webhook ID', 'Event', 'Field', 'Code', 'Attempts', 'First received', 'Last', ''].map((h) =>
              el('th', {}, h),
            ),
          ),
        ),
        el(
          'tbody',
          {},
          ...kept.body.events.map((e) => {
            const one = el('button', { type: 'button', class: 'replay' }, 'Replay');
            one.addEventListener('click', () => void replay(e.webhookId));
            return el(
              'tr',
              { 'data-webhook-id': e.webhookId },
              el('td', {}, e.webhookId),
              el('td', {}, e.event),
              el('td', {}, e.field ?? '—'),
              el('td', {}, e.code),
              el('td', {}, String(e.attempts)),
              el('td', {}, e.receivedAt),
              el('td', {}, e.lastAt),
              el('td', {}, one),
            );
          }),
        ),
      ),
    );
  }
  if (kept.body?.dropped)
    parts.push(
      el(
        'div',
        { class: 'banner bad', id: 'dropped-events' },
        `${kept.body.dropped.count} refused event(s) were dropped unreplayed (too many waiting), the last at ${kept.body.dropped.lastAt}.`,
      ),
    );
  // An organization's own token does not see the bridge-wide list (the operator's).
  if (unmapped.body?.error?.code === 'operator_only') {
    out.replaceChildren(...parts);
    return;
  }
  parts.push(el('h2', {}, 'OpenCX organizations not connected'));
  if (unmapped.body?.error) parts.push(renderError(unmapped.body.error));
  else if (unmapped.body.organizations.length === 0)
    parts.push(el('p', { class: 'hint' }, 'Every OpenCX event came from a connected OpenCX organization.'));
  else
    parts.push(
      el('p', { class: 'hint' }, unmapped.body.fix ?? ''),
      el(
        'ul',
        { id: 'unmapped', class: 'checks' },
        ...unmapped.body.organizations.map((o) =>
          el('li', { class: 'failed', 'data-opencx-org': o.opencxOrganizationId }, o.message),
        ),
      ),
    );
  out.replaceChildren(...parts);
}

async function replay(webhookId) {
  const res = await api(
    'POST',
    orgPath(webhookId ? `/opencx-events/${encodeURIComponent(webhookId)}/replay` : '/opencx-events/replay'),
  );
  await loadEvents();
  let banner;
  if (res.body?.error) banner = renderError(res.body.error);
  else if (webhookId)
    banner = el('div', { class: 'banner ok', id: 'replay-result' }, `${webhookId}: ${res.body.status}`);
  else {
    const refused = res.body.events.filter((e) => e.status === 'refused');
    banner = el(
      'div',
      { class: refused.length ? 'banner bad' : 'banner ok', id: 'replay-result' },
      `Replayed ${res.body.replayed}, still refused ${res.body.refused}.`,
      ...refused.map((e) => el('div', {}, `${e.webhookId}: ${e.error.field ?? ''} ${e.error.message}`)),
    );
  }
  $('#events-out').prepend(banner);
}

/* ---------- attention ---------- */

/** The console's own link to a conversation in the inspector. */
const inspectorHash = (orgId, sessionId) =>
  `#inspector?orgId=${encodeURIComponent(orgId)}&sessionId=${encodeURIComponent(sessionId)}`;

async function loadAttention() {
  const out = $('#attention-out');
  out.replaceChildren(el('p', {}, 'Loading…'));
  const res = await api('GET', orgPath('/attention'));
  if (res.body?.error) {
    out.replaceChildren(renderError(res.body.error));
    return;
  }
  const { items, counts } = res.body;
  const summary = Object.entries(counts)
    .filter(([, n]) => n > 0)
    .map(([k, n]) => `${k}: ${n}`)
    .join(', ');
  if (items.length === 0) {
    out.replaceChildren(el('div', { class: 'banner ok', id: 'no-attention' }, 'Nothing needs attention.'));
    return;
  }
  out.replaceChildren(
    el('p', { id: 'attention-counts' }, summary),
    el(
      'table',
      { id: 'attention-items' },
      el(
        'thead',
        {},
        el(
          'tr',
          {},
          ...['Since', 'Kind', 'Conversation', 'What is wrong', 'Links'].map((h) => el('th', {}, h)),
        ),
      ),
      el(
        'tbody',
        {},
        ...items.map((i) => {
          const links = el('td', { class: 'links' });
          if (i.sessionId) {
            const open = el(
              'a',
              { href: inspectorHash(i.orgId, i.sessionId), class: 'inspector-link' },
              'Inspector',
            );
            links.append(open);
          }
          if (i.links.temporal) {
            links.append(
              ' ',
              el(
                'a',
                { href: i.links.temporal, target: '_blank', rel: 'noopener', class: 'temporal-link' },
                'Temporal UI',
              ),
            );
          }
          return el(
            'tr',
            { 'data-kind': i.kind, 'data-session-id': i.sessionId ?? '' },
            el('td', {}, i.since),
            el('td', {}, el('code', {}, i.kind)),
            el('td', {}, i.sessionId ?? '(organization)'),
            el('td', {}, i.message, el('div', { class: 'fix' }, `Fix: ${i.fix}`)),
            links,
          );
        }),
      ),
    ),
  );
}

/* ---------- tabs and links ---------- */

const TABS = ['settings', 'inspector', 'opencx-events', 'attention'];

function showTab(name) {
  for (const b of document.querySelectorAll('nav button'))
    b.classList.toggle('active', b.dataset.tab === name);
  for (const tab of TABS) $(`#${tab}`).hidden = name !== tab;
  if (name === 'opencx-events') void loadEvents();
  if (name === 'attention') void loadAttention();
}

/** `#inspector?orgId=…&sessionId=…`: opens the conversation in the inspector (the attention list links so). */
async function followHash() {
  const m = /^#inspector\?(.*)$/.exec(location.hash);
  if (!m || !session.token) return;
  const q = new URLSearchParams(m[1]);
  const orgId = q.get('orgId');
  const sessionId = q.get('sessionId');
  if (!sessionId) return;
  // The operator's token opens any organization; an organization's token is refused elsewhere.
  if (orgId && orgId !== session.orgId) await signIn(session.token, orgId);
  showTab('inspector');
  $('#find-form').elements.query.value = sessionId;
  await inspect(sessionId);
}

/* ---------- wiring ---------- */

let formReady;
document.addEventListener('DOMContentLoaded', () => {
  formReady = buildSettingsForm();
  $('#sign-in-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const f = ev.target.elements;
    const error = $('#sign-in-error');
    error.hidden = true;
    signIn(f.token.value, f.orgId.value.trim()).catch((err) => {
      error.textContent = err.message;
      error.hidden = false;
    });
  });
  $('#sign-out').addEventListener('click', () => {
    session.clear();
    location.reload();
  });
  for (const b of document.querySelectorAll('nav button')) {
    b.addEventListener('click', () => showTab(b.dataset.tab));
  }
  $('#reload-attention').addEventListener('click', () => void loadAttention());
  window.addEventListener('hashchange', () => void followHash().catch(() => undefined));
  $('#add-ai-field').addEventListener('click', () => $('#ai-fields tbody').append(aiFieldRow()));
  $('#test').addEventListener('click', () => void testOrSave(false));
  $('#settings-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void testOrSave(true);
  });
  $('#copy-webhook').addEventListener(
    'click',
    () => void navigator.clipboard?.writeText($('#webhook-url').textContent),
  );
  $('#rotate-webhook').addEventListener('click', async () => {
    if (!confirm('Rotate the webhook URL? The old one keeps working only for the overlap.')) return;
    const res = await api('POST', orgPath('/integrations/creatio/webhook-token'));
    if (res.body?.webhookUrl) showWebhook(res.body.webhookUrl);
    if (res.body?.previousValidUntil) {
      $('#webhook-hint').textContent =
        `The old URL works until ${res.body.previousValidUntil}: update both processes in Creatio before then.`;
    }
  });
  $('#reload-events').addEventListener('click', () => void loadEvents());
  $('#find-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    void inspect(ev.target.elements.query.value);
  });
  if (session.token && session.orgId) {
    signIn(session.token, session.orgId)
      .then(() => followHash())
      .catch(() => undefined);
  }
});
