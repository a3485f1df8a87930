/**
 * Trailing coalescing of identical signals: while one send for a key is in flight, every new call
 * waits for the single next send, which starts after the current one ends. Each caller is answered
 * only after a send that started after the caller arrived, so no call's effect can be missed; a
 * burst of N calls costs at most two sends in flight at a time per key.
 */
export class Coalescer {
  /** `minIntervalMs`: the next send for a key starts at least this long after the previous one ended. */
  constructor(private readonly minIntervalMs = 0) {}

  private readonly state = new Map<string, { inflight: Promise<void>; next: Promise<void> | undefined }>();

  run(key: string, send: () => Promise<void>): Promise<void> {
    const s = this.state.get(key);
    if (!s) {
      const inflight = send().finally(() => this.advance(key, inflight));
      this.state.set(key, { inflight, next: undefined });
      return inflight;
    }
    const pause = () =>
      this.minIntervalMs > 0 ? new Promise<void>((r) => setTimeout(r, this.minIntervalMs)) : undefined;
    s.next ??= s.inflight.then(pause, pause).then(() => send());
    return s.next;
  }

  private advance(key: string, finished: Promise<void>): void {
    const s = this.state.get(key);
    if (!s || s.inflight !== finished) return;
    if (!s.next) {
      this.state.delete(key);
      return;
    }
    const next = s.next;
    const inflight = next.finally(() => this.advance(key, inflight));
    // Callers of `next` see its failure; this internal copy must not surface as unhandled.
    inflight.catch(() => undefined);
    this.state.set(key, { inflight, next: undefined });
  }
}
