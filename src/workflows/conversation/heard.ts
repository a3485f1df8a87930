/**
 * Which messages of the conversation the bridge has already taken, recognised by their content as
 * well as by their id: OpenCX may tell the same message more than once, through different doors
 * (docs/decisions/0020-history-reconciliation.md):
 *
 * - `w`: a message webhook (`contact_response`, `ai_response`, `agent_response`);
 * - `f`: the `first_message` of `conversation.started` (which may also come as a `contact_response`);
 * - `h`: an item of the session's history (GET /chat/sessions/{id}/history);
 * - `r`: an agent reply the bridge itself sent (it shows in the history as a `human_agent` message).
 *
 * Whether a webhook's message id equals the history item's id is not documented, so both are
 * handled: an id already taken is the same message, and a message from one door with the same
 * author and text as an entry that another door brought and this door has not yet claimed is that
 * entry. A second "yes" from the customer is a new message: it finds no entry unclaimed by its
 * door (two webhooks never claim each other, nor two history items).
 *
 * Pure and deterministic (workflow code); the activity that sends replies computes the same
 * fingerprint.
 */

export type Door = 'w' | 'f' | 'h' | 'r';

export interface HeardEntry {
  /** Fingerprint of author and normalised text. */
  fp: string;
  /** The message's own time (webhook timestamp, history created_at, or when the reply was sent). */
  at: string;
  /** The ids it was taken under (at most a few). */
  ids: string[];
  /** Doors it came through. */
  doors: Door[];
}

/** Entries kept (and carried across continue-as-new): about 100 bytes each. */
export const MAX_HEARD = 2_000;

/** FNV-1a, 32 bits, over UTF-16 code units: cheap, deterministic, collisions harmless at this scale. */
function fnv1a(s: string): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) {
    h ^= s.charCodeAt(i);
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(36);
}

/**
 * The fingerprint of a message: its author and its text with whitespace collapsed (OpenCX may
 * trim or re-wrap what it stores). Texts are cut at 100,000 characters first. Empty texts have
 * none: an attachment-only message is recognised by its id only.
 */
export function messageFingerprint(author: string, text: string): string | undefined {
  const t = text.slice(0, 100_000).replace(/\s+/g, ' ').trim();
  if (!t) return undefined;
  return `${author}:${t.length.toString(36)}:${fnv1a(t)}`;
}

export class Heard {
  readonly entries: HeardEntry[];

  constructor(carried?: HeardEntry[]) {
    this.entries = carried ?? [];
  }

  /** The entry a message with this id was taken under. */
  byId(id: string): HeardEntry | undefined {
    for (let i = this.entries.length - 1; i >= 0; i--) {
      if (this.entries[i]!.ids.includes(id)) return this.entries[i];
    }
    return undefined;
  }

  /**
   * Records a message coming through `door`. Answers true when it is one already taken (by id, or
   * by content through another door), false when it is new (and now recorded).
   */
  take(door: Door, m: { id?: string; fp: string | undefined; at: string }): boolean {
    const known = m.id === undefined ? undefined : this.byId(m.id);
    if (known) {
      if (!known.doors.includes(door)) known.doors.push(door);
      return true;
    }
    // A reply the bridge sends is always new: its history item is the one that claims it.
    if (m.fp !== undefined && door !== 'r') {
      const same = this.entries.find((e) => e.fp === m.fp && !e.doors.includes(door));
      if (same) {
        same.doors.push(door);
        if (m.id !== undefined && same.ids.length < 4) same.ids.push(m.id);
        return true;
      }
    }
    if (m.fp === undefined && m.id === undefined) return false;
    this.entries.push({ fp: m.fp ?? '', at: m.at, ids: m.id === undefined ? [] : [m.id], doors: [door] });
    if (this.entries.length > MAX_HEARD) this.entries.splice(0, this.entries.length - MAX_HEARD);
    return false;
  }

  /** The oldest time still remembered when entries were dropped (older history is not judged). */
  get rememberedSince(): string | undefined {
    return this.entries.length >= MAX_HEARD ? this.entries[0]!.at : undefined;
  }
}
