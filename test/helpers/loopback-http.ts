import { createServer, type Server } from 'node:http';
import type { MeshBackend } from '../../src/api/types.js';
import { getOnce } from './load-loop.js';

/** A real HTTP backend on loopback that answers its own name, after `slowMs`. */
export async function startNamedBackend(
  name: string,
  slowMs = 0,
): Promise<{ server: Server; backend: MeshBackend }> {
  const server = createServer((_req, res) => {
    setTimeout(() => res.end(name), slowMs);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  if (typeof address !== 'object' || !address) throw new Error('no address');
  return { server, backend: { id: name, host: '127.0.0.1', port: address.port } };
}

/** The body of one GET to 127.0.0.1:port on a fresh connection. */
export async function getBody(port: number): Promise<string> {
  return (await getOnce('127.0.0.1', port, 10_000)).body;
}
