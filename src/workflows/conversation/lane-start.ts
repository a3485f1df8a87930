/**
 * When a lane beside the main loop starts its loop: with the run, or (runs whose flow has
 * `lanesWhenAsked`) at its first request, so that a lane never asked adds no promise and no
 * condition to the run's activations. Synchronous: the loop starts in the call that asks for it.
 */
export class LaneStart {
  private whenAsked = false;
  private started = false;

  constructor(private readonly run: () => void) {}

  /** The run's start: the loop starts now, unless it waits to be asked and nothing was asked yet. */
  start(whenAsked: boolean, asked: boolean): void {
    this.whenAsked = whenAsked;
    if (!whenAsked || asked) this.begin();
  }

  /** A request: starts the loop if it was waiting for one. */
  asked(): void {
    if (this.whenAsked && !this.started) this.begin();
  }

  private begin(): void {
    this.started = true;
    this.run();
  }
}
