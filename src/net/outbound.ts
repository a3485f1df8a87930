/**
 * Where the bridge may connect to. Every URL an admin or a conversation gives (Creatio instance,
 * Identity Service, OpenCX base, LLM base, attachment links) is resolved, and the connection goes
 * only to the address that was checked: private, link-local, loopback, metadata and other special
 * ranges are refused (loopback only where the deployment allows it: development, tests, the
 * sandbox). Redirects are never followed by the clients, and errors never quote the target's page.
 */
import { lookup as dnsLookup } from 'node:dns/promises';
import { BlockList, isIP, type LookupFunction } from 'node:net';
import { pipeline, type Transform } from 'node:stream';
import { constants as zlibConstants, createBrotliDecompress, createGunzip, createInflate } from 'node:zlib';
import { Agent, type Dispatcher, request } from 'undici';

export type AddressClass =
  'public' | 'loopback' | 'private' | 'link_local' | 'metadata' | 'unspecified' | 'multicast' | 'reserved';

const RANGES: [AddressClass, string, number, 'ipv4' | 'ipv6'][] = [
  ['metadata', '169.254.169.254', 32, 'ipv4'],
  ['metadata', '100.100.100.200', 32, 'ipv4'],
  ['metadata', 'fd00:ec2::254', 128, 'ipv6'],
  ['unspecified', '0.0.0.0', 8, 'ipv4'],
  ['loopback', '127.0.0.0', 8, 'ipv4'],
  ['private', '10.0.0.0', 8, 'ipv4'],
  ['private', '172.16.0.0', 12, 'ipv4'],
  ['private', '192.168.0.0', 16, 'ipv4'],
  ['private', '100.64.0.0', 10, 'ipv4'],
  ['link_local', '169.254.0.0', 16, 'ipv4'],
  ['reserved', '192.0.0.0', 24, 'ipv4'],
  ['reserved', '192.0.2.0', 24, 'ipv4'],
  ['reserved', '198.18.0.0', 15, 'ipv4'],
  ['reserved', '198.51.100.0', 24, 'ipv4'],
  ['reserved', '203.0.113.0', 24, 'ipv4'],
  ['multicast', '224.0.0.0', 4, 'ipv4'],
  ['reserved', '240.0.0.0', 4, 'ipv4'],
  ['unspecified', '::', 128, 'ipv6'],
  ['loopback', '::1', 128, 'ipv6'],
  ['private', 'fc00::', 7, 'ipv6'],
  ['link_local', 'fe80::', 10, 'ipv6'],
  ['multicast', 'ff00::', 8, 'ipv6'],
  ['reserved', '64:ff9b::', 96, 'ipv6'],
  ['reserved', '2001:db8::', 32, 'ipv6'],
  // IPv4-compatible (deprecated; :: and ::1 are judged above), local-use NAT64, 6to4 (embeds an
  // IPv4 address), site-local (deprecated private). IPv4-mapped ::ffff:0:0/96 is judged as its
  // IPv4 address (classifyAddress).
  ['reserved', '::', 96, 'ipv6'],
  ['reserved', '64:ff9b:1::', 48, 'ipv6'],
  ['reserved', '2002::', 16, 'ipv6'],
  ['private', 'fec0::', 10, 'ipv6'],
];

const LISTS = new Map<AddressClass, BlockList>();
for (const [cls, net, prefix, type] of RANGES) {
  let list = LISTS.get(cls);
  if (!list) {
    list = new BlockList();
    LISTS.set(cls, list);
  }
  list.addSubnet(net, prefix, type);
}

/** The IPv4 address an IPv4-mapped IPv6 address (::ffff:a.b.c.d, in any spelling) carries. */
function mappedIpv4(ip: string): string | undefined {
  if (isIP(ip) !== 6) return undefined;
  const [head = '', tail = ''] = ip.toLowerCase().split('::');
  const groups = (part: string) => (part ? part.split(':') : []);
  let left = groups(head);
  let right = groups(tail);
  const last = (ip.includes('::') ? right : left).at(-1) ?? '';
  const dotted = last.includes('.') ? last : undefined;
  if (dotted) {
    const words = dotted.split('.').map(Number);
    const hex = [(words[0]! << 8) | words[1]!, (words[2]! << 8) | words[3]!].map((w) => w.toString(16));
    if (ip.includes('::')) right = [...right.slice(0, -1), ...hex];
    else left = [...left.slice(0, -1), ...hex];
  }
  const all = ip.includes('::')
    ? [...left, ...Array<string>(8 - left.length - right.length).fill('0'), ...right]
    : left;
  const n = all.map((g) => parseInt(g, 16));
  if (n.length !== 8 || n.slice(0, 5).some((g) => g !== 0) || n[5] !== 0xffff) return undefined;
  return [n[6]! >> 8, n[6]! & 255, n[7]! >> 8, n[7]! & 255].join('.');
}

/** The class of an IP address; an IPv4-mapped IPv6 address is judged as the IPv4 address. */
export function classifyAddress(ip: string): AddressClass {
  const bare = ip.replace(/%.*$/, '');
  const address = mappedIpv4(bare) ?? bare;
  const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
  for (const cls of [
    'metadata',
    'unspecified',
    'loopback',
    'private',
    'link_local',
    'multicast',
    'reserved',
  ] as const) {
    if (LISTS.get(cls)?.check(address, type)) return cls;
  }
  return 'public';
}

export type Resolver = (hostname: string) => Promise<{ address: string; family: number }[]>;

export interface AddressPolicy {
  /** Loopback targets (emulators, local services) are allowed: development and tests only. */
  allowLoopback: boolean;
  /** How host names are resolved; tests inject one, so no real lookup or connection happens. */
  resolve?: Resolver;
}

export class OutboundAddressRefusedError extends Error {
  readonly code = 'address_refused';
  constructor(
    readonly host: string,
    readonly address: string,
    readonly addressClass: AddressClass,
  ) {
    super(
      `Refused to connect to ${host}: it resolves to a ${addressClass.replace('_', '-')} address (${address}); only public addresses are allowed`,
    );
    this.name = 'OutboundAddressRefusedError';
  }
}

const systemResolver: Resolver = (hostname) => dnsLookup(hostname, { all: true, verbatim: true });

/**
 * The address to connect to for `hostname`, after the policy: every address it resolves to must
 * be allowed (a name that also resolves to a private address is refused as a whole).
 */
export async function checkedAddress(
  hostname: string,
  policy: AddressPolicy,
): Promise<{ address: string; family: number }> {
  const host = hostname.replace(/^\[|\]$/g, '');
  const addresses = isIP(host)
    ? [{ address: host, family: isIP(host) }]
    : await (policy.resolve ?? systemResolver)(host);
  if (addresses.length === 0) throw new OutboundAddressRefusedError(hostname, 'none', 'reserved');
  for (const a of addresses) {
    const cls = classifyAddress(a.address);
    if (cls === 'public' || (cls === 'loopback' && policy.allowLoopback)) continue;
    throw new OutboundAddressRefusedError(hostname, a.address, cls);
  }
  return addresses[0]!;
}

/** A `net` lookup that applies the policy at connect time, so the checked address is the one used. */
export function policyLookup(policy: AddressPolicy): LookupFunction {
  return (hostname, options, callback) => {
    checkedAddress(hostname, policy).then(
      (a) => {
        if ((options as { all?: boolean }).all) {
          (callback as unknown as (e: null, list: { address: string; family: number }[]) => void)(null, [a]);
        } else callback(null, a.address, a.family);
      },
      (err: Error) => callback(err as NodeJS.ErrnoException, '', 0),
    );
  };
}

const dispatchers = new Map<string, Agent>();

/** An HTTP dispatcher whose every connection goes through the policy. */
export function policyDispatcher(policy: AddressPolicy): Agent {
  if (policy.resolve) return new Agent({ connect: { lookup: policyLookup(policy) } });
  const key = policy.allowLoopback ? 'loopback' : 'public';
  let d = dispatchers.get(key);
  if (!d) {
    d = new Agent({ connect: { lookup: policyLookup(policy) } });
    dispatchers.set(key, d);
  }
  return d;
}

/** The policy of this process: loopback allowed outside production (set once at start). */
let processPolicy: AddressPolicy = { allowLoopback: true };

export function setOutboundPolicy(policy: AddressPolicy): void {
  processPolicy = policy;
}

export interface OutboundInit {
  method?: string;
  /** Header names in lower case. */
  headers?: Record<string, string>;
  body?: string;
  /**
   * Aborts the request and the reading of its answer; it rejects with the signal's reason (for
   * `AbortSignal.timeout`, an error named `TimeoutError`).
   */
  signal?: AbortSignal;
}

/**
 * An answer from a remote. Its body is read with {@link readCapped} or {@link readCappedBytes}, or
 * dropped with `discard()`; nothing reads an outbound answer without a cap.
 */
export interface OutboundResponse {
  readonly status: number;
  /** 2xx. */
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  /** The body is not wanted: it is drained (or its connection closed) without the caller waiting. */
  discard(): void;
}

/**
 * A network failure (refused, reset, timed out connecting): the transport's own error is its
 * `cause`, with its `code` (`ECONNREFUSED`, `UND_ERR_SOCKET`, …).
 */
export class OutboundNetworkError extends Error {
  constructor(cause: unknown) {
    super(
      `request failed: ${(cause as { code?: string }).code ?? (cause as Error).message ?? 'network error'}`,
      { cause },
    );
    this.name = 'OutboundNetworkError';
  }
}

/** Sent unless the caller names its own: some gateways refuse requests without one. */
const USER_AGENT = 'opencx-creatio-bridge';
/**
 * Compressed answers are accepted (a large tenant's `$metadata` runs to megabytes) and decoded.
 * `deflate` is not asked for (servers differ on whether it is wrapped), though it is decoded.
 */
const ACCEPT_ENCODING = 'gzip, br';

class Answer implements OutboundResponse {
  readonly ok: boolean;
  readonly headers: { get(name: string): string | null };
  constructor(
    readonly method: string,
    readonly status: number,
    raw: Record<string, string | string[] | undefined>,
    readonly body: Dispatcher.ResponseData['body'],
    readonly signal: AbortSignal | undefined,
  ) {
    this.ok = status >= 200 && status < 300;
    this.headers = {
      get(name) {
        const v = raw[name.toLowerCase()];
        return v === undefined ? null : Array.isArray(v) ? v.join(', ') : v;
      },
    };
  }

  discard(): void {
    // Drains a small remainder in the background so the connection can be reused; a larger one
    // closes it. The caller does not wait: a peer that stalls mid-body holds only its connection,
    // until the request's signal or undici's body timeout ends it.
    this.body.dump().catch(() => undefined);
  }

  /** An answer that came after its caller stopped waiting: its connection is closed. */
  abandon(): void {
    this.body.destroy();
  }
}

/**
 * What a failed request or body read is thrown as: the signal's reason once it fired; an address
 * refused at connect time as itself, as one refused before sending is; anything else as an
 * `OutboundNetworkError`.
 */
function failure(err: unknown, signal: AbortSignal | undefined): unknown {
  if (signal?.aborted) return signal.reason as unknown;
  if (err instanceof ResponseTooLargeError || err instanceof OutboundAddressRefusedError) return err;
  return new OutboundNetworkError(err);
}

/**
 * One HTTP request under the address policy. The host is checked before anything is sent (a
 * refused target gets no connection at all), the connection itself is pinned to a checked address,
 * and redirects are answered to the caller, never followed. Built on undici's `request`, which costs
 * about two thirds of the CPU of its `fetch` per call (`npm run bench:http-clients`).
 */
export function outboundRequest(
  url: string,
  init: OutboundInit = {},
  policy: AddressPolicy = processPolicy,
): Promise<OutboundResponse> {
  const { signal } = init;
  const sent = send(url, init, policy);
  if (!signal) return sent;
  // undici's `request` heeds the signal only once its connection is made: the address check, the
  // connect-time lookup and the connect itself are raced here, so the caller's timeout covers them.
  if (signal.aborted) {
    sent.then(
      (a) => a.abandon(),
      () => undefined,
    );
    return Promise.reject(signal.reason as Error);
  }
  return new Promise<OutboundResponse>((resolve, reject) => {
    let settled = false;
    const onAbort = () => {
      settled = true;
      reject(signal.reason as Error);
    };
    signal.addEventListener('abort', onAbort, { once: true });
    sent.then(
      (answer) => {
        signal.removeEventListener('abort', onAbort);
        if (settled) answer.abandon();
        else resolve(answer);
      },
      (err: Error) => {
        signal.removeEventListener('abort', onAbort);
        if (!settled) reject(err);
      },
    );
  });
}

async function send(url: string, init: OutboundInit, policy: AddressPolicy): Promise<Answer> {
  await checkedAddress(new URL(url).hostname, policy);
  const headers: Record<string, string> = {
    'user-agent': USER_AGENT,
    'accept-encoding': ACCEPT_ENCODING,
    ...init.headers,
  };
  try {
    const res = await request(url, {
      method: init.method ?? 'GET',
      headers,
      body: init.body,
      signal: init.signal,
      dispatcher: policyDispatcher(policy),
    });
    return new Answer(init.method ?? 'GET', res.statusCode, res.headers, res.body, init.signal);
  } catch (err) {
    throw failure(err, init.signal);
  }
}

/**
 * Reads a response body up to `maxBytes` (decoded); past that the read stops and a named error is
 * thrown (a hostile or broken peer cannot fill the bridge's memory).
 */
export async function readCapped(res: OutboundResponse, maxBytes: number, what: string): Promise<string> {
  return (await readCappedBytes(res, maxBytes, what)).toString('utf8');
}

/** The same, as bytes (files). */
export async function readCappedBytes(
  res: OutboundResponse,
  maxBytes: number,
  what: string,
): Promise<Buffer> {
  const answer = res as Answer;
  const decoders = decodersFor(answer);
  // The declared length is of the encoded body: it bounds only an answer that is not compressed.
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (!decoders && declared > maxBytes) {
    answer.abandon(); // not a byte of it is read
    throw new ResponseTooLargeError(what, maxBytes);
  }
  // pipeline, not pipe: a failed read of the body fails the decoders too (pipe would leave them open).
  const source: AsyncIterable<Buffer> = decoders
    ? (pipeline([answer.body, ...decoders], () => undefined) as unknown as AsyncIterable<Buffer>)
    : answer.body;
  const chunks: Buffer[] = [];
  let size = 0;
  try {
    for await (const chunk of source) {
      size += chunk.length;
      if (size > maxBytes) throw new ResponseTooLargeError(what, maxBytes);
      chunks.push(chunk);
    }
  } catch (err) {
    answer.body.destroy();
    for (const d of decoders ?? []) d.destroy();
    throw failure(err, answer.signal);
  }
  return Buffer.concat(chunks);
}

/**
 * Decoders for the answer's content codings, last applied first (`gzip`, `deflate`, `br`); none for
 * an answer without a body or not encoded, or with a coding not known (its bytes are returned as
 * they came, as `fetch` does). Decoding is lenient at the end, as `fetch`'s: an empty or cut-short
 * body decodes to what it holds.
 */
function decodersFor(answer: Answer): Transform[] | undefined {
  if (answer.method === 'HEAD' || [204, 205, 304].includes(answer.status) || answer.status < 200) {
    return undefined;
  }
  const codings = (answer.headers.get('content-encoding') ?? '')
    .toLowerCase()
    .split(',')
    .map((c) => c.trim())
    .filter((c) => c && c !== 'identity');
  if (codings.length === 0) return undefined;
  const lenient = { flush: zlibConstants.Z_SYNC_FLUSH, finishFlush: zlibConstants.Z_SYNC_FLUSH };
  const decoders: Transform[] = [];
  for (const coding of codings.reverse()) {
    if (coding === 'gzip' || coding === 'x-gzip') decoders.push(createGunzip(lenient));
    else if (coding === 'deflate') decoders.push(createInflate(lenient));
    else if (coding === 'br') {
      decoders.push(
        createBrotliDecompress({
          flush: zlibConstants.BROTLI_OPERATION_FLUSH,
          finishFlush: zlibConstants.BROTLI_OPERATION_FLUSH,
        }),
      );
    } else {
      for (const d of decoders) d.destroy();
      return undefined;
    }
  }
  return decoders;
}

export class ResponseTooLargeError extends Error {
  readonly code = 'response_too_large';
  constructor(what: string, maxBytes: number) {
    super(`${what} answered with more than ${maxBytes} bytes; the answer was not read`);
    this.name = 'ResponseTooLargeError';
  }
}
