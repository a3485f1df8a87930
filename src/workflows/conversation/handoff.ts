/**
 * The handoff to a human: the summary, language and sentiment on the case (creating it in
 * handoff-only mode, with the whole transcript so far), the AI fields, and the handoff note.
 */
import { ActivityFailure, ApplicationFailure, TemporalFailure, TimeoutFailure } from '@temporalio/workflow';
import type { AiFieldOutcome, AiFieldsFailureDetails } from '../../activities/ai-fields';
import type { AiFieldsState, ConversationEvent } from '../contract';
import type { Conversation } from './context';
import { createCase, drain, logEntry, readMode } from './messages';

export async function onHandoff(
  c: Conversation,
  ev: Extract<ConversationEvent, { kind: 'handoff' }>,
): Promise<void> {
  const { state, unlogged } = c.run;
  state.handedOffAt = ev.timestamp;
  const handoff = { summary: ev.summary, language: ev.language, sentiment: ev.sentiment, reason: ev.reason };
  if (!state.caseId) {
    await readMode(c, ev.caseOnlyOnHandoff);
    const first = unlogged[0]?.timestamp ?? ev.timestamp;
    await createCase(
      c,
      [
        ev.summary,
        '',
        `Language: ${ev.language || 'unknown'}`,
        `Sentiment: ${ev.sentiment || 'unknown'}`,
        `Handoff reason: ${ev.reason || 'unknown'}`,
      ].join('\n'),
      first,
    );
    await drain(c);
  } else {
    await drain(c);
    await c.steps.run(
      'write handoff summary',
      () => c.peers.creatio.applyHandoff({ orgId: c.orgId, caseId: state.caseId!, ...handoff }),
      { onSkip: () => undefined },
    );
  }
  await aiFields(c);
  await logEntry(c, { kind: 'handoff_note', ...handoff, timestamp: ev.timestamp });
}

/**
 * AI fields, from the transcript: evaluated with a deadline, then written in their own PATCH so
 * that a bad value never blocks the case or the transcript. Failures give up the fields only.
 */
async function aiFields(c: Conversation): Promise<void> {
  const { run } = c;
  const before = run.state.aiFields?.written;
  let result;
  try {
    result = await c.peers.ai.evaluateAiFields({ orgId: c.orgId, transcript: run.transcript.join('\n') });
  } catch (err) {
    const { reason, fields } = aiFieldsFailure(err);
    run.state.aiFields = { status: 'failed', reason, fields, ...(before && { written: before }) };
    run.note(`AI fields left blank: ${reason}`);
    return;
  }
  run.state.aiFields = { status: 'done', fields: result.outcomes };
  if (Object.keys(result.patch).length > 0) {
    const patch = result.patch;
    // A later handoff keeps what an agent changed since the bridge wrote it (runs with the patch).
    const written = c.flow.aiFieldsKeepEdits ? (before ?? {}) : undefined;
    const out = await c.steps.run(
      'write AI fields',
      () =>
        c.peers.creatio.writeAiFields({
          orgId: c.orgId,
          caseId: run.state.caseId!,
          patch,
          ...(written && { written }),
        }),
      { onSkip: () => undefined },
    );
    if (c.flow.aiFieldsKeepEdits && out) {
      run.state.aiFields.written = { ...before, ...(out.written as AiFieldsState['written']) };
      for (const column of out.kept) {
        const f = run.state.aiFields.fields.find((x) => x.column === column);
        if (f) {
          f.outcome = 'kept_agent_value';
          f.reason = 'an agent changed it after an earlier handoff: kept as the agent left it';
        }
      }
    }
  } else if (before) {
    run.state.aiFields.written = before;
  }
}

/**
 * Why AI field evaluation failed, and each field's outcome: the last attempt's failure carries them
 * (AiFieldsFailureDetails), also under a timeout that ended the retries.
 */
function aiFieldsFailure(err: unknown): { reason: string; fields: AiFieldOutcome[] } {
  let cause: unknown = err instanceof ActivityFailure ? (err.cause ?? err) : err;
  let timeout: string | undefined;
  while (cause instanceof TemporalFailure) {
    if (cause instanceof ApplicationFailure) {
      const details = cause.details?.[0] as AiFieldsFailureDetails | undefined;
      return {
        reason: `LLM error: ${cause.message}${timeout ? ` (then ${timeout})` : ''}`,
        fields: details?.fields ?? [],
      };
    }
    if (cause instanceof TimeoutFailure) timeout = 'the AI fields deadline passed';
    if (!cause.cause) break;
    cause = cause.cause;
  }
  const message = timeout ?? (cause instanceof Error ? cause.message : String(cause));
  return { reason: `LLM error: ${message}`, fields: [] };
}
