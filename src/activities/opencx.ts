/** Activities that talk to OpenCX: agent replies to the customer, and resolving the session. */
import { DEFAULT_REPLY_LIMITS, deliver, type AgentReply } from './agent-replies';
import { isRetry, type OrgContexts } from './context';
import { withFailures } from './failures';

export function createOpenCXActivities(orgs: OrgContexts) {
  const replyLimits = { ...DEFAULT_REPLY_LIMITS, ...orgs.deps.replyLimits };
  return {
    /**
     * Delivers an agent reply to the customer through OpenCX, taking the session over from the AI.
     * A retry (or a step tried again) first asks OpenCX whether an earlier attempt got through.
     */
    async deliverReply(input: {
      orgId: string;
      sessionId: string;
      reply: AgentReply;
      verify?: boolean;
      firstTriedAt: string;
    }): Promise<{ sent: boolean; omittedAttachments: string[] }> {
      return withFailures(async () => {
        const out = await deliver(
          await orgs.creatio(input.orgId),
          await orgs.opencx(input.orgId),
          { ...input, verify: input.verify === true || isRetry() },
          replyLimits,
        );
        if (out.sent) orgs.deps.metrics?.repliesDelivered.inc();
        return out;
      });
    },

    /** Resolves the OpenCX session (closed_resolved). */
    async resolveSession(input: { orgId: string; sessionId: string }): Promise<void> {
      return withFailures(async () => {
        await (await orgs.opencx(input.orgId)).resolveSession(input.sessionId);
      });
    },
  };
}

export type OpenCXActivities = ReturnType<typeof createOpenCXActivities>;
