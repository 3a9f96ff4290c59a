/**
 * dockerode's client, as every berth module makes one: connectDocker here, never `new Docker` of
 * 'dockerode' (whose types are imported as types only).
 *
 * dockerode loads, as it loads, two things berth never uses, and a long-lived process would keep
 * them for good: ssh2 (for ssh:// engines; docker-modem requires it), which instantiates its
 * Poly1305 WebAssembly module at once, 16 MiB of wasm memory; and BuildKit's session module
 * (gRPC and protobufjs, over a hundred modules, about 3 MiB of heap). berth reaches engines over
 * a Unix socket and never builds images. Both are put in the require cache as stand-ins that
 * load the real module on first use: an ssh:// engine or a BuildKit build would still work.
 */
import { createRequire } from 'node:module';
import type DockerClass from 'dockerode';

const require = createRequire(import.meta.url);

/** Puts `stand-in(load)` in the require cache at `path`; `load` returns the real module. */
function defer(path: string, standIn: (load: () => unknown) => unknown): void {
  if (require.cache[path] !== undefined) return;
  let real: unknown;
  let loaded = false;
  const load = () => {
    if (!loaded) {
      delete require.cache[path];
      real = require(path);
      loaded = true;
    }
    return real;
  };
  require.cache[path] = { id: path, filename: path, loaded: true, exports: standIn(load) } as NodeJS.Module;
}

type Constructor = new (...args: unknown[]) => object;

function deferUnusedModules(): void {
  const dockerode = require.resolve('dockerode');
  const modem = require.resolve('docker-modem', { paths: [dockerode] });
  defer(createRequire(modem).resolve('ssh2'), (load) => ({
    // Constructed only by docker-modem's ssh transport; returning an object from a constructor
    // makes `new Client()` that object.
    Client: class Client {
      constructor(...args: unknown[]) {
        return new (load() as { Client: Constructor }).Client(...args);
      }
    },
  }));
  defer(createRequire(dockerode).resolve('./session'), (load) => {
    return (...args: unknown[]) => (load() as (...args: unknown[]) => unknown)(...args);
  });
}

deferUnusedModules();

const Docker = require('dockerode') as typeof DockerClass;

/** A client of the engine at a Unix socket. */
export function connectDocker(socketPath: string): DockerClass {
  return new Docker({ socketPath });
}
