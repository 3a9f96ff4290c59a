/**
 * dockerode's client, as every berth module makes one: connectDocker here, never `new Docker` of
 * 'dockerode' (whose types are imported as types only).
 *
 * dockerode's transport (docker-modem) requires ssh2 when it loads, for ssh:// engines, and ssh2
 * instantiates its Poly1305 WebAssembly module as it loads: 16 MiB of wasm memory, for good, in
 * every process that talks to an engine (the operator, every agent). berth reaches engines over a
 * Unix socket only, so ssh2 is put in the require cache as a stand-in whose Client loads the real
 * library on first use: an ssh:// engine would still work, the others never pay for it.
 */
import { createRequire } from 'node:module';
import type DockerClass from 'dockerode';

const require = createRequire(import.meta.url);

function deferSsh2(): void {
  const modem = require.resolve('docker-modem', { paths: [require.resolve('dockerode')] });
  const ssh2 = createRequire(modem).resolve('ssh2');
  if (require.cache[ssh2] !== undefined) return;
  let real: { Client: new (...args: unknown[]) => object } | undefined;
  const load = () => {
    if (real === undefined) {
      delete require.cache[ssh2];
      real = require(ssh2) as { Client: new (...args: unknown[]) => object };
    }
    return real;
  };
  // Constructed only by docker-modem's ssh transport; returning an object from a constructor
  // makes `new Client()` that object.
  class Client {
    constructor(...args: unknown[]) {
      return new (load().Client)(...args);
    }
  }
  require.cache[ssh2] = { id: ssh2, filename: ssh2, loaded: true, exports: { Client } } as NodeJS.Module;
}

deferSsh2();

const Docker = require('dockerode') as typeof DockerClass;

/** A client of the engine at a Unix socket. */
export function connectDocker(socketPath: string): DockerClass {
  return new Docker({ socketPath });
}
