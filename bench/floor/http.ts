import http from 'node:http';

/** POSTs a small JSON body on a keep-alive agent; resolves with the status once the answer is read. */
export function postJson(url: string, body: unknown, agent: http.Agent): Promise<number> {
  return new Promise((resolve, reject) => {
    const data = JSON.stringify(body);
    const rq = http.request(
      url,
      {
        method: 'POST',
        agent,
        headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(data) },
      },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
        res.on('error', reject);
      },
    );
    rq.on('error', reject);
    rq.end(data);
  });
}
