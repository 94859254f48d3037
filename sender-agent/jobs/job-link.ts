// A job's one session with its receiver (job-session.ts): dialled once per replication run,
// every target planned by one GetTargets call, and each dataset's first step taken from that
// plan. A receiver that cannot be reached or planned is not a failure here: the session is
// dialled again by the next dataset that needs it (each dataset retries within the job's
// retry budget, dataset-replication.ts), and a target the plan does not cover is read alone.
import type { SenderConfig } from '../../shared/config.js';
import type { TargetState } from '../../shared/control.js';
import { ZferryError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';
import { JobSession } from '../job-session.js';

export class JobLink {
  private opening: Promise<JobSession> | null = null;
  private plan = new Map<string, TargetState | ZferryError>();

  constructor(
    private readonly to: string,
    private readonly config: Pick<SenderConfig, 'tls' | 'baseDir' | 'serverName'>,
    private readonly what: string,
  ) {}

  /** The open session; dialled on first use, and again after a dial that failed. */
  session(): Promise<JobSession> {
    this.opening ??= JobSession.open(this.to, this.config, this.what).catch((e: unknown) => {
      this.opening = null;
      throw e;
    });
    return this.opening;
  }

  /** Dials and plans every target in one round trip; on failure each dataset reads its own target. */
  async prepare(targets: string[], log: Logger): Promise<void> {
    try {
      this.plan = await (await this.session()).plan(targets);
    } catch (e) {
      log.warn('could not plan the targets in one call; each dataset reads its own', { error: (e as Error).message });
    }
  }

  /** The planned state of `target` (or why the receiver refused it alone), once: a later read is fresh. */
  planned(target: string): TargetState | ZferryError | undefined {
    const p = this.plan.get(target);
    this.plan.delete(target);
    return p;
  }

  close(): void {
    void this.opening?.then(
      (s) => s.close(),
      () => {},
    );
    this.opening = null;
  }
}
