/**
 * The worker thread of load-off-thread.ts: loads manifests where a slow parse blocks nobody.
 * One message in ({ id, files, options }), one message out ({ id, result }).
 */
import { parentPort } from 'node:worker_threads';

import { loadManifests, type LoadOptions, type ManifestFile } from './load.js';

parentPort?.on('message', (request: { id: number; files: ManifestFile[]; options: LoadOptions }) => {
  parentPort?.postMessage({ id: request.id, result: loadManifests(request.files, request.options) });
});
