/**
 * Temporal's floor for the bridge's job (bench/load.ts, target `floor`): the least any Temporal
 * design can do per message. One long-lived workflow per conversation, one signal per message,
 * one local activity per message that POSTs it once. No codec, store, logging, search attributes
 * or timers. Bundled by the benchmark's floor worker (bench/floor/process.ts).
 */
import {
  condition,
  continueAsNew,
  defineSignal,
  proxyLocalActivities,
  setHandler,
  workflowInfo,
} from '@temporalio/workflow';

export interface FloorMessage {
  id: string;
}

export const floorMessageSignal = defineSignal<[FloorMessage]>('message');

const { post } = proxyLocalActivities<{ post(m: FloorMessage): Promise<void> }>({
  startToCloseTimeout: '10 seconds',
});

export async function floorConversation(carried: FloorMessage[] = []): Promise<void> {
  const queue = [...carried];
  setHandler(floorMessageSignal, (m) => {
    queue.push(m);
  });
  for (;;) {
    await condition(() => queue.length > 0);
    await post(queue.shift()!);
    if (queue.length === 0 && workflowInfo().continueAsNewSuggested) await continueAsNew(queue);
  }
}
