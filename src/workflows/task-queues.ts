/**
 * Creatio calls of each organization run on their own task queue, whose activity rate the server
 * limits (maxTaskQueueActivitiesPerSecond): a burst of conversations in one organization cannot
 * flood its Creatio instance, nor hold up the other organizations.
 */
export function creatioTaskQueue(base: string, orgId: string): string {
  return `${base}:creatio:${orgId}`;
}

/** OpenCX calls of each organization: its own queue, paced under OpenCX's 100 requests/minute. */
export function opencxTaskQueue(base: string, orgId: string): string {
  return `${base}:opencx:${orgId}`;
}
