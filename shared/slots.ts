// A counting semaphore, for what one process runs at once: the receiver's inflations
// (shared/recv/budget.ts inflateSlots) and zfs commands (shared/zfs.ts).
/** A counting semaphore with a FIFO of waiters; a waiter that no longer wants a slot just does not take one. */
export class Slots {
  private used = 0;
  private waiters: Array<() => void> = [];

  constructor(readonly max: number) {}

  get inUse(): number {
    return this.used;
  }

  tryTake(): boolean {
    if (this.used >= this.max) return false;
    this.used++;
    return true;
  }

  /** Resolves once a slot is taken (at once when one is free), in the order asked. */
  async take(): Promise<void> {
    if (this.waiters.length === 0 && this.tryTake()) return;
    await new Promise<void>((resolve) => {
      const wake = (): void => (this.tryTake() ? resolve() : this.wait(wake));
      this.wait(wake);
    });
  }

  /** `wake` is called once when a slot may be free (it must tryTake() again). */
  wait(wake: () => void): void {
    this.waiters.push(wake);
  }

  release(): void {
    if (this.used > 0) this.used--;
    // wake waiters in order until the free slots are taken again (a closed lane's waiter takes
    // none); only those waiting now, so one that waits again at once is not woken twice
    const now = this.waiters;
    this.waiters = [];
    let i = 0;
    while (i < now.length && this.used < this.max) now[i++]!();
    this.waiters = [...now.slice(i), ...this.waiters];
  }
}
