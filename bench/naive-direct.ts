/**
 * The baseline: what a bridge without Temporal looks like. An Express handler that, for each
 * OpenCX message, finds or creates the case and writes the activity synchronously before it
 * answers. No retries, no ordering guarantee across concurrent deliveries, nothing durable.
 */
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import express from 'express';
import { type CreatioClient } from '../src/creatio/client';
import { activityIdFor, caseIdFor } from '../src/ids';

export async function startNaiveBridge(
  creatio: CreatioClient,
): Promise<{ url: string; close(): Promise<void> }> {
  const app = express();
  app.use(express.json());
  app.post('/webhooks/opencx', async (req, res) => {
    const body = req.body as {
      organization_id: string;
      data: { conversation_id: string; message: { id: string; text: string }; timestamp: string };
    };
    const { organization_id: orgId, data } = body;
    try {
      const caseId = caseIdFor(orgId, data.conversation_id);
      if (!(await creatio.getCase(caseId, ['Id']))) {
        await creatio.create('Case', { Id: caseId, Subject: `OpenCX conversation ${data.conversation_id}` });
      }
      await creatio.create('Activity', {
        Id: activityIdFor(orgId, data.conversation_id, data.message.id),
        CaseId: caseId,
        Title: `[OpenCX] ${data.message.text}`,
        StartDate: data.timestamp,
      });
      res.status(200).json({ ok: true });
    } catch (err) {
      res.status(502).json({ error: String(err) });
    }
  });
  const server = http.createServer(app);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}
