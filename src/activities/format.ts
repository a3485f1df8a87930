import type { Attachment, Author, Contact } from '../workflows/messages';

/** Title prefix on every activity the bridge writes: how it (and people) tell them from agents' own. */
export const BRIDGE_MARKER = '[OpenCX]';

const AUTHOR_LABEL: Record<Author, string> = { customer: 'Customer', ai: 'AI agent', agent: 'OpenCX agent' };

const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

const oneLine = (s: string, max: number) => {
  const flat = s.replace(/\s+/g, ' ').trim();
  return flat.length > max ? `${flat.slice(0, max - 1)}…` : flat;
};

export function contactLabel(c: Contact): string {
  return c.name || c.email || c.phone || 'a visitor';
}

export function caseSubject(channel: string, contact: Contact, sessionId: string): string {
  return oneLine(`OpenCX ${channel} conversation with ${contactLabel(contact)} (session ${sessionId})`, 500);
}

export function messageTitle(author: Author, text: string, agentName?: string): string {
  const who = author === 'agent' && agentName ? `OpenCX agent ${agentName}` : AUTHOR_LABEL[author];
  return oneLine(`${BRIDGE_MARKER} ${who}: ${text || '(attachment)'}`, 250);
}

export function messageBody(opts: {
  author: Author;
  text: string;
  timestamp: string;
  attachments: Attachment[];
  agentName?: string;
}): string {
  const who =
    opts.author === 'agent' && opts.agentName
      ? `${AUTHOR_LABEL.agent} (${opts.agentName})`
      : AUTHOR_LABEL[opts.author];
  const lines = [
    `<p><b>${escapeHtml(who)}</b> · ${escapeHtml(opts.timestamp)}</p>`,
    `<p>${escapeHtml(opts.text).replace(/\n/g, '<br>')}</p>`,
  ];
  if (opts.attachments.length > 0) {
    lines.push(
      '<p>Attachments:</p><ul>' +
        opts.attachments
          .map(
            (a) =>
              `<li><a href="${escapeHtml(a.url)}">${escapeHtml(a.name)}</a>${a.mimeType ? ` (${escapeHtml(a.mimeType)})` : ''}</li>`,
          )
          .join('') +
        '</ul>',
    );
  }
  return lines.join('\n');
}

export function sessionLinkBody(
  sessionUrl: string,
  sessionId: string,
  contact: Contact,
  channel: string,
): string {
  return [
    `<p><a href="${escapeHtml(sessionUrl)}">View session in OpenCX</a></p>`,
    `<p>Session ${escapeHtml(sessionId)} · channel ${escapeHtml(channel)} · ${escapeHtml(contactLabel(contact))}</p>`,
    contact.email ? `<p>Email: ${escapeHtml(contact.email)}</p>` : '',
    contact.phone ? `<p>Phone: ${escapeHtml(contact.phone)}</p>` : '',
  ]
    .filter(Boolean)
    .join('\n');
}

export function handoffDescription(h: {
  summary: string;
  language: string;
  sentiment: string;
  reason?: string;
}): string {
  return [
    h.summary,
    '',
    `Language: ${h.language || 'unknown'}`,
    `Sentiment: ${h.sentiment || 'unknown'}`,
    ...(h.reason ? [`Handoff reason: ${h.reason}`] : []),
  ].join('\n');
}
