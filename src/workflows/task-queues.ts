/**
 * Activity task queues, one per peer, shared by every organization: the number of pollers stays
 * fixed however many organizations are connected. Organizations are kept apart by their call
 * limiters in the workers and by the fairness key every task carries (the organization id), not
 * by queues (docs/decisions/0014-shared-task-queues.md).
 */
export function creatioTaskQueue(base: string): string {
  return `${base}:creatio`;
}

/** OpenCX calls of every organization (each paced under OpenCX's 100 requests/minute by its limiter). */
export function opencxTaskQueue(base: string): string {
  return `${base}:opencx`;
}
