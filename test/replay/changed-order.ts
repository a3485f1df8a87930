/**
 * A deliberate change for the replay test: a timer before every activity, as if a new step had
 * been put in front of each call. The commands then come in another order than the recorded
 * histories have them, which is what replaying must catch.
 */
import { sleep, type WorkflowInterceptorsFactory } from '@temporalio/workflow';

export const interceptors: WorkflowInterceptorsFactory = () => ({
  outbound: [
    {
      async scheduleActivity(input, next) {
        await sleep(1);
        return next(input);
      },
      async scheduleLocalActivity(input, next) {
        await sleep(1);
        return next(input);
      },
    },
  ],
});
