/**
 * How many frames a stack trace captured in the workflow sandbox holds
 * (docs/decisions/0035-workflow-stack-trace-limit.md).
 *
 * The SDK's promise hook captures a stack trace for every promise a workflow creates, and
 * source-maps each of its frames, so that the stack-trace query (the Temporal UI's "Stack Trace"
 * tab) can show where a workflow waits. That is the largest cost on the workflow thread of a new
 * conversation after the workflow's own code. The query joins each promise's stack to its
 * parents', so five frames still show the whole path from `conversationWorkflow` to the wait.
 *
 * This module is loaded into the sandbox before the workflow code (`preloadModules` in
 * src/worker.ts), while the sandbox's globals can still be changed; the SDK freezes them after.
 * The worker's own thread keeps Node's default.
 */
export const WORKFLOW_STACK_TRACE_LIMIT = 5;

Error.stackTraceLimit = WORKFLOW_STACK_TRACE_LIMIT;
