import { MORE_ATTACHMENTS_NOTE_URL, NOTE_SCHEME } from '../opencx/events';
import type { Attachment, Author, Contact, LogEntry } from '../workflows/contract';

/** Title prefix on every activity the bridge writes: how it (and people) tell them from agents' own. */
export const BRIDGE_MARKER = '[OpenCX]';

const AUTHOR_LABEL: Record<Author, string> = { customer: 'Customer', ai: 'AI agent', agent: 'OpenCX agent' };

/** Every text from OpenCX goes through this before it becomes part of an HTML activity body. */
export const escapeHtml = (s: string) =>
  s.replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]!);

/** Plain text as HTML: escaped, line breaks kept. */
export const htmlText = (s: string) => escapeHtml(s).replace(/\r?\n/g, '<br>');

/**
 * Whether an attachment URL may become a link in Creatio: https only (http for loopback hosts when
 * `allowLoopbackHttp`, as with the emulators). `javascript:`, `data:` and the like never do.
 */
export function isSafeLink(url: string, allowLoopbackHttp = false): boolean {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return false;
  }
  if (u.protocol === 'https:') return true;
  return (
    allowLoopbackHttp &&
    u.protocol === 'http:' &&
    (u.hostname === 'localhost' || u.hostname === '[::1]' || /^127\.\d+\.\d+\.\d+$/.test(u.hostname))
  );
}

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
  allowLoopbackHttp?: boolean;
  /** The session in OpenCX, linked from the notes on what was cut. */
  sessionUrl?: string;
}): string {
  const who =
    opts.author === 'agent' && opts.agentName
      ? `${AUTHOR_LABEL.agent} (${opts.agentName})`
      : AUTHOR_LABEL[opts.author];
  const files = opts.attachments.filter((a) => !a.url.startsWith(NOTE_SCHEME));
  const note = (a: Attachment) =>
    `<p><i>${escapeHtml(a.name)}</i>${
      opts.sessionUrl ? ` · <a href="${escapeHtml(opts.sessionUrl)}">View session in OpenCX</a>` : ''
    }</p>`;
  const notes = (more: boolean) =>
    opts.attachments
      .filter((a) => a.url.startsWith(NOTE_SCHEME) && (a.url === MORE_ATTACHMENTS_NOTE_URL) === more)
      .map(note);
  const lines = [
    `<p><b>${escapeHtml(who)}</b> · ${escapeHtml(opts.timestamp)}</p>`,
    `<p>${htmlText(opts.text)}</p>`,
    ...notes(false),
  ];
  if (files.length > 0) {
    lines.push(
      '<p>Attachments:</p><ul>' +
        files
          .map(
            (a) =>
              `<li>${
                isSafeLink(a.url, opts.allowLoopbackHttp)
                  ? `<a href="${escapeHtml(a.url)}">${escapeHtml(a.name)}</a>`
                  : `${escapeHtml(a.name)} (link not kept: only https links are)`
              }${a.mimeType ? ` (${escapeHtml(a.mimeType)})` : ''}</li>`,
          )
          .join('') +
        '</ul>',
    );
  }
  lines.push(...notes(true));
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

/** The handoff note's HTML body: every part escaped (the summary and reason come from OpenCX). */
export function handoffNoteBody(h: {
  summary: string;
  language: string;
  sentiment: string;
  reason?: string;
}): string {
  return htmlText(handoffDescription(h));
}

/** The handoff summary as plain text (the case's Symptoms column). */
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

/** The key (for its deterministic id), title and HTML body of one activity the bridge writes. */
export function entryContent(
  e: LogEntry,
  o: { sessionUrl: string; sessionId: string; allowLoopbackHttp: boolean },
): { key: string; title: string; body: string } {
  switch (e.kind) {
    case 'session_link':
      return {
        key: e.kind,
        title: `${BRIDGE_MARKER} Conversation started: View session in OpenCX`,
        body: sessionLinkBody(o.sessionUrl, o.sessionId, e.contact, e.channel),
      };
    case 'message':
      return {
        key: `message:${e.messageId}`,
        title: messageTitle(e.author, e.text, e.agentName),
        body: messageBody({ ...e, allowLoopbackHttp: o.allowLoopbackHttp, sessionUrl: o.sessionUrl }),
      };
    case 'handoff_note':
      return {
        key: e.kind,
        title: `${BRIDGE_MARKER} Handed off to a human agent${e.reason ? `: ${e.reason}` : ''}`.slice(0, 250),
        body: handoffNoteBody(e),
      };
    case 'note':
      return {
        key: `note:${e.key}`,
        title: `${BRIDGE_MARKER} ${e.title}`.slice(0, 250),
        body: htmlText(e.text),
      };
  }
}
