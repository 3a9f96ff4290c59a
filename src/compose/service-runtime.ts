/**
 * Compose service fields about the process itself: image, command, environment, user, files
 * system and capabilities, labels, restart and stop behaviour.
 */
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import {
  ADDABLE_CAPABILITIES,
  ALL_CAPABILITIES,
  LINUX_CAPABILITIES,
  type AddableCapability,
  type LinuxCapability,
} from '../manifests/linux-capabilities.js';
import { composeDuration, scalarText, splitShellWords } from './compose-values.js';
import { isRecord, keyValueMap } from './compose-project.js';
import type { FieldHandler } from './conversion.js';
import { parseDotEnv } from './dotenv.js';

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_.-]*$/;
const USER = /^([A-Za-z_][A-Za-z0-9._-]{0,31}|[0-9]{1,10})(:([A-Za-z_][A-Za-z0-9._-]{0,31}|[0-9]{1,10}))?$/;
const LABEL_KEY = /^[A-Za-z0-9]([A-Za-z0-9._/-]*[A-Za-z0-9])?$/;

export const image: FieldHandler = (value, field, draft, conv) => {
  if (typeof value === 'string' && value.trim() !== '' && !/\s/.test(value)) draft.spec.image = value;
  else conv.fail(field, `not an image reference: ${JSON.stringify(value)}`);
};

/** Compose names an image it builds `<project>-<service>` (compose v2); berth only pulls. */
export const build: FieldHandler = (_value, field, draft, conv) => {
  if (draft.spec.image !== '') {
    conv.warn(field, `berth does not build images: ${draft.spec.image} is deployed as it is in the registry`);
    return;
  }
  draft.spec.image = `${conv.project.name}-${draft.composeName}`;
  conv.warn(
    field,
    `berth does not build images: build it and push it where your nodes pull from (docker compose build && docker compose push), then set spec.image; named ${draft.spec.image} as docker compose would`,
  );
};

function commandWords(
  value: unknown,
  field: Parameters<FieldHandler>[1],
  conv: Parameters<FieldHandler>[3],
): string[] | null {
  if (typeof value === 'string') {
    const words = splitShellWords(value);
    if (words === null) conv.fail(field, 'unclosed quote in the command');
    return words;
  }
  if (Array.isArray(value)) return value.map(String);
  if (value !== null) conv.fail(field, 'must be a string or a list of strings');
  return null;
}

/** compose `command` replaces the image's CMD: berth's args. */
export const command: FieldHandler = (value, field, draft, conv) => {
  const words = commandWords(value, field, conv);
  if (words !== null) draft.spec.args = words;
};

/** compose `entrypoint` replaces the image's ENTRYPOINT: berth's command. */
export const entrypoint: FieldHandler = (value, field, draft, conv) => {
  const words = commandWords(value, field, conv);
  if (words === null) return;
  if (words.length === 0)
    conv.warn(field, 'an empty entrypoint (reset to none) has no berth form; the image entrypoint stays');
  else draft.spec.command = words;
};

/** env_file first, then environment over it, as compose resolves them. */
export const environment: FieldHandler = (value, field, draft, conv) => {
  for (const [name, raw] of Object.entries(keyValueMap(value))) {
    if (!ENV_NAME.test(name)) {
      conv.warn(
        [...field, name],
        'berth environment variable names use letters, digits, "_", "." and "-"; not converted',
      );
      continue;
    }
    // A bare name takes the value from the environment compose runs in; unset, it is left out.
    const resolved = raw === null || raw === undefined ? conv.project.lookup(name) : scalarText(raw);
    if (resolved === undefined) {
      conv.warn(
        [...field, name],
        'has no value and is not set in the environment: left out, as compose does',
      );
      continue;
    }
    (draft.spec.env ??= {})[name] = resolved;
  }
};

export const envFile: FieldHandler = async (value, field, draft, conv) => {
  const entries = Array.isArray(value) ? value : [value];
  for (const [index, entry] of entries.entries()) {
    const at = Array.isArray(value) ? [...field, index] : field;
    const path: unknown = isRecord(entry) ? entry['path'] : entry;
    const required = isRecord(entry) ? entry['required'] !== false : true;
    if (typeof path !== 'string') {
      conv.fail(at, 'must be a path or { path, required }');
      continue;
    }
    let text: string;
    try {
      text = await readFile(resolve(conv.project.dir, path), 'utf8');
    } catch (error) {
      if (required)
        conv.fail(at, `cannot read ${path}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      continue;
    }
    const parsed = parseDotEnv(text, conv.project.lookup);
    for (const problem of parsed.problems) conv.fail(at, `${path}:${problem.line}: ${problem.message}`);
    const env = (draft.spec.env ??= {});
    // Later env files override earlier ones; `environment`, converted after, overrides them all.
    for (const [name, resolved] of parsed.values) env[name] = resolved;
  }
};

export const user: FieldHandler = (value, field, draft, conv) => {
  const text = String(value);
  if (USER.test(text)) draft.spec.user = text;
  else
    conv.warn(
      field,
      `berth takes a user name or uid, optionally ":" group or gid; ${JSON.stringify(text)} not converted`,
    );
};

export const workingDir: FieldHandler = (value, field, draft, conv) => {
  if (typeof value === 'string' && value.startsWith('/'))
    draft.spec.workingDir = value.replace(/\/+$/, '') || '/';
  else conv.warn(field, 'berth takes an absolute working directory; not converted');
};

export const init: FieldHandler = (value, _field, draft) => {
  if (value === true) draft.spec.init = true;
};

export const readOnly: FieldHandler = (value, field, draft, conv) => {
  if (value === true) {
    draft.spec.readOnlyRootFilesystem = true;
    conv.warn(field, 'berth adds a 64 MiB noexec tmpfs at /tmp to a read-only root filesystem');
  }
};

export const stopGracePeriod: FieldHandler = (value, field, draft, conv) => {
  const duration = composeDuration(value);
  if (duration === null) conv.warn(field, `not a duration: ${JSON.stringify(value)}; not converted`);
  else draft.spec.stopGracePeriod = duration;
};

export const capAdd: FieldHandler = (value, field, draft, conv) => {
  for (const [index, name] of capabilityNames(value).entries()) {
    if ((ADDABLE_CAPABILITIES as readonly string[]).includes(name)) {
      ((draft.spec.capabilities ??= {}).add ??= []).push(name as AddableCapability);
    } else if (name === ALL_CAPABILITIES || (LINUX_CAPABILITIES as readonly string[]).includes(name)) {
      conv.warn(
        [...field, index],
        `berth never adds ${name}: it reaches the host; only Kubernetes' baseline set (${ADDABLE_CAPABILITIES.join(', ')}) can be added`,
      );
    } else conv.warn([...field, index], `unknown capability ${name}; not converted`);
  }
};

export const capDrop: FieldHandler = (value, field, draft, conv) => {
  for (const [index, name] of capabilityNames(value).entries()) {
    if (name === ALL_CAPABILITIES || (LINUX_CAPABILITIES as readonly string[]).includes(name)) {
      ((draft.spec.capabilities ??= {}).drop ??= []).push(name as LinuxCapability);
    } else conv.warn([...field, index], `unknown capability ${name}; not converted`);
  }
};

function capabilityNames(value: unknown): string[] {
  return (Array.isArray(value) ? value : []).map((name) => String(name).toUpperCase().replace(/^CAP_/, ''));
}

/**
 * Container labels become the Service's metadata.labels. berth keeps them in git only: tools that
 * read labels off running containers (Traefik's docker provider, Watchtower) will not see them.
 */
export const labels: FieldHandler = (value, field, draft, conv) => {
  const entries = Object.entries(keyValueMap(value));
  let kept = 0;
  for (const [key, raw] of entries) {
    const text = raw === null ? '' : scalarText(raw);
    if (!LABEL_KEY.test(key) || key.length > 253 || text.length > 253) {
      conv.warn(
        [...field, key],
        'berth label keys use letters, digits, ".", "_", "-" and "/" (values up to 253 characters); not converted',
      );
      continue;
    }
    draft.labels[key] = text;
    kept++;
  }
  if (kept > 0) {
    conv.warn(
      field,
      'kept as metadata.labels of the Service; berth does not put them on containers, so tools reading container labels (Traefik, Watchtower) do not see them',
    );
  }
};

/** The service-level `restart:` of plain compose; `deploy.restart_policy` wins when both are set. */
export const restart: FieldHandler = (value, field, draft, conv) => {
  const text = String(value);
  const onFailure = /^on-failure(?::(\d+))?$/.exec(text);
  if (text === 'no') draft.spec.restart = { condition: 'none' };
  else if (text === 'always') draft.spec.restart = { condition: 'any' };
  else if (text === 'unless-stopped') {
    draft.spec.restart = { condition: 'any' };
    conv.warn(
      field,
      'berth restarts replicas always (condition: any); stopping one is done by scaling, not docker stop',
    );
  } else if (onFailure !== null) {
    draft.spec.restart = {
      condition: 'on-failure',
      ...(onFailure[1] === undefined ? {} : { maxAttempts: Number(onFailure[1]) }),
    };
  } else conv.warn(field, `unknown restart policy ${JSON.stringify(text)}; not converted`);
};
