/**
 * Test & Save's check of the way back (`verifyProcesses: true`): do the organization's two Creatio
 * business processes call the bridge? A marked probe case gets an outgoing Email (the agent-reply
 * process should call) and a closure status (the case-closure process should call); the webhook
 * route marks the probe when they do (src/api/creatio-webhook.ts). Everything is removed afterwards.
 */
import { randomUUID } from 'node:crypto';
import type { CreatioClient } from '../creatio/client';
import { CREATIO_IDS } from '../creatio/model';
import type { OrgSettings } from './schema';
import type { Check } from './test-and-save';

export const PROCESS_PROBE_SUBJECT = '[OpenCX bridge] business process test (safe to delete)';

/** Where the webhook route records a probe's calls, and where the probe waits for them. */
export interface ProbeRegistry {
  addProcessProbe(orgId: string, caseId: string): Promise<void>;
  processProbe(
    caseId: string,
  ): Promise<{ agentReplyAt: string | null; closureAt: string | null } | undefined>;
  dropProcessProbe(caseId: string): Promise<void>;
}

export interface ProcessProbeOptions {
  orgId: string;
  registry: ProbeRegistry;
  /** How long each process has to call (the product's webhook timeout: 10 s). */
  waitMs?: number;
  pollMs?: number;
}

const AGENT_FIX =
  'In Creatio’s Process Library, make the agent-reply process Active, triggered when an Activity is added to a Case (outgoing Email, as agents reply), and calling the webhook URL from Settings → Integrations → Creatio with {"event_type": "new_activity", "caseId": "[#Case.Id#]"}.';
const CLOSURE_FIX =
  'In Creatio’s Process Library, make the case-closure process Active, triggered when a Case’s status changes to one of the closure statuses (exact names), and calling the same webhook URL with {"event_type": "case_closed", "caseId": "[#Case.Id#]"}.';

async function idByName(client: CreatioClient, set: string, name: string): Promise<string | undefined> {
  return (await client.findByName(set, name))[0]?.Id;
}

/**
 * Runs both probes at once and answers one check for each. Never throws for what Creatio answers:
 * a failure to set up the probe is its check's failure.
 */
export async function probeProcesses(
  client: CreatioClient,
  settings: OrgSettings,
  o: ProcessProbeOptions,
): Promise<Check[]> {
  const waitMs = o.waitMs ?? 10_000;
  const pollMs = o.pollMs ?? 200;
  const caseId = randomUUID();
  const activityId = randomUUID();
  const closureName = settings.closureStatusNames[0]!;
  // EmailType and ActivityType rows are read by their out-of-the-box ids (names are translated).
  const emailType = CREATIO_IDS.activityType.Email;
  const outgoing = CREATIO_IDS.emailType.Outgoing;
  const closureStatus = await idByName(client, 'CaseStatus', closureName);
  await o.registry.addProcessProbe(o.orgId, caseId);
  const waitFor = async (which: 'agentReplyAt' | 'closureAt') => {
    const until = Date.now() + waitMs;
    while (Date.now() < until) {
      if ((await o.registry.processProbe(caseId))?.[which]) return true;
      await new Promise((r) => setTimeout(r, pollMs));
    }
    return false;
  };
  try {
    await client.create('Case', {
      Id: caseId,
      Subject: PROCESS_PROBE_SUBJECT,
      Symptoms: 'Created by Test & Save to check that the business processes call the bridge.',
    });
    const agentReply = (async (): Promise<Check> => {
      await client.create('Activity', {
        Id: activityId,
        CaseId: caseId,
        Title: PROCESS_PROBE_SUBJECT,
        Body: 'A test reply from Test & Save; it is not sent to anyone.',
        TypeId: emailType,
        MessageTypeId: outgoing,
      });
      return (await waitFor('agentReplyAt'))
        ? { name: 'agent_reply_process', ok: true, message: 'called the bridge for a new outgoing Email' }
        : {
            name: 'agent_reply_process',
            ok: false,
            code: 'agent_reply_process_not_calling',
            message: `The agent-reply business process did not call the bridge within ${waitMs / 1000} s of an outgoing Email added to a case`,
            fix: AGENT_FIX,
          };
    })();
    const closure = (async (): Promise<Check> => {
      if (!closureStatus) {
        return {
          name: 'closure_process',
          ok: false,
          code: 'closure_status_not_found',
          message: `"${closureName}" is not a Case status name`,
          fix: 'Use a closure status name exactly as Creatio spells it.',
        };
      }
      await client.update('Case', caseId, { StatusId: closureStatus });
      return (await waitFor('closureAt'))
        ? {
            name: 'closure_process',
            ok: true,
            message: `called the bridge for a case set to "${closureName}"`,
          }
        : {
            name: 'closure_process',
            ok: false,
            code: 'closure_process_not_calling',
            message: `The case-closure business process did not call the bridge within ${waitMs / 1000} s of a case set to "${closureName}"`,
            fix: CLOSURE_FIX,
          };
    })();
    return await Promise.all([agentReply, closure]);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    return ['agent_reply_process', 'closure_process'].map((name) => ({
      name,
      ok: false,
      code: 'process_probe_failed',
      message: `The probe case could not be set up: ${message}`,
      fix: 'Run Test & Save without verifyProcesses first: it names what the OAuth application may not do.',
    }));
  } finally {
    await client.remove('Activity', activityId).catch(() => undefined);
    await client.remove('Case', caseId).catch(() => undefined);
    await o.registry.dropProcessProbe(caseId).catch(() => undefined);
  }
}
