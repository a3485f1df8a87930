/** A top-level key's line: `name.of.setting:` and nothing after it. */
const KEY = /^([A-Za-z][\w.]*):[ \t]*$/;

/**
 * `base` with every top-level key that `overlay` sets taken out, then `overlay` after it: one value
 * per key (the server refuses a key set twice), and the bridge's own settings
 * (deploy/temporal/dynamicconfig.yaml, the file Compose mounts) win.
 */
export function overlayDynamicConfig(base: string, overlay: string): string {
  const keys = new Set(overlay.split('\n').flatMap((line) => KEY.exec(line)?.[1] ?? []));
  const kept: string[] = [];
  let dropping = false;
  for (const line of base.split('\n')) {
    const key = KEY.exec(line)?.[1];
    if (key !== undefined) dropping = keys.has(key);
    else if (!/^[ \t-]/.test(line)) dropping = false;
    if (!dropping) kept.push(line);
  }
  return `${kept.join('\n').trimEnd()}\n${overlay.trimEnd()}`;
}
