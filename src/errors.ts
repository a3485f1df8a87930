/**
 * An error meant for an API caller: the HTTP status, a stable snake_case code, a message that says
 * what is wrong, and where possible the field and the fix. Messages never include secret values.
 */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    readonly extra: { field?: string; fix?: string; details?: unknown } = {},
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toBody(): { error: Record<string, unknown> } {
    const { field, fix, details } = this.extra;
    return {
      error: {
        code: this.code,
        message: this.message,
        ...(field !== undefined && { field }),
        ...(fix !== undefined && { fix }),
        ...(details !== undefined && { details }),
      },
    };
  }
}
