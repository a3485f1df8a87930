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

/**
 * Entries kept (and carried across continue-as-new): up to about 150 bytes each (two ids of ~40
 * characters, the time, the fingerprint), so at most ~150 kB of the carried input.
 */
export const MAX_HEARD = 1_000;
/** Ids kept per entry (a webhook's and the history item's). */
const MAX_IDS = 2;

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

  /**
   * @param idsAgree OpenCX was seen to give a webhook's message the history item's id: then a
   *   webhook and a history item are the same message only when their ids are (content would take
   *   a lost "yes" for an earlier one).
   */
  constructor(
    carried?: HeardEntry[],
    private forgotten?: string,
    private readonly idsAgree: () => boolean = () => false,
  ) {
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
   * The entry that a message coming through `door` is, if any: by id, or by content through
   * another door it has not claimed yet (never for the bridge's own reply, which is always new).
   * `skip`: entries already claimed by other messages of the same look.
   */
  match(
    door: Door,
    m: { id?: string; fp: string | undefined },
    skip?: Set<HeardEntry>,
  ): HeardEntry | undefined {
    const known = m.id === undefined ? undefined : this.byId(m.id);
    if (known) return known;
    if (m.fp === undefined || door === 'r') return undefined;
    const crossesIds = (e: HeardEntry) =>
      this.idsAgree() && ((door === 'h' && e.doors.includes('w')) || (door === 'w' && e.doors.includes('h')));
    return this.entries.find(
      (e) => e.fp === m.fp && !e.doors.includes(door) && !skip?.has(e) && !crossesIds(e),
    );
  }

  /**
   * Records a message coming through `door`. Answers true when it is one already taken (by id, or
   * by content through another door), false when it is new (and now recorded).
   */
  take(door: Door, m: { id?: string; fp: string | undefined; at: string }): boolean {
    const same = this.match(door, m);
    if (same) {
      if (!same.doors.includes(door)) same.doors.push(door);
      if (m.id !== undefined && !same.ids.includes(m.id) && same.ids.length < MAX_IDS) same.ids.push(m.id);
      return true;
    }
    if (m.fp === undefined && m.id === undefined) return false;
    this.entries.push({ fp: m.fp ?? '', at: m.at, ids: m.id === undefined ? [] : [m.id], doors: [door] });
    if (this.entries.length > MAX_HEARD) {
      for (const e of this.entries.splice(0, this.entries.length - MAX_HEARD)) {
        if (!this.forgotten || e.at > this.forgotten) this.forgotten = e.at;
      }
    }
    return false;
  }

  /**
   * The newest time of an entry dropped to keep the bound: history at or before it is not judged
   * any more (its messages may be ones the dropped entries knew).
   */
  get forgottenUpTo(): string | undefined {
    return this.forgotten;
  }
}
