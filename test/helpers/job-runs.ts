/**
 * The run containers of a Job or a CronJob, read from the engine itself: what ran, in which
 * attempt, when the engine says it started and finished. Suites judge overlap, retries and
 * replacement from these, never from berth's own records.
 */
import type Docker from 'dockerode';

export interface RunContainer {
  name: string;
  /** The run's name (label berth.job): a Job's own name, or one run of a CronJob. */
  job: string;
  attempt: number;
  specHash: string;
  revision: string;
  running: boolean;
  exitCode: number;
  startedAt: number;
  /** Infinity while it runs. */
  finishedAt: number;
}

/**
 * Every berth-managed run container of namespace `ns` that carries `label` (e.g.
 * `berth.job=migrate`, `berth.cronjob=nightly`), in any state, oldest start first.
 */
export async function runContainers(docker: Docker, ns: string, label: string): Promise<RunContainer[]> {
  const listed = await docker.listContainers({
    all: true,
    filters: { label: [`berth.namespace=${ns}`, label, 'berth.managed=true'] },
  });
  const runs = await Promise.all(
    listed.map(async (c): Promise<RunContainer> => {
      const info = await docker.getContainer(c.Id).inspect();
      const labels = info.Config.Labels;
      return {
        name: info.Name.replace(/^\//, ''),
        job: labels['berth.job'] ?? '',
        attempt: Number(labels['berth.attempt']),
        specHash: labels['berth.spec-hash'] ?? '',
        revision: labels['berth.revision'] ?? '',
        running: info.State.Running,
        exitCode: info.State.ExitCode,
        startedAt: Date.parse(info.State.StartedAt),
        finishedAt: info.State.Running ? Infinity : Date.parse(info.State.FinishedAt),
      };
    }),
  );
  return runs.sort((a, b) => a.startedAt - b.startedAt || a.attempt - b.attempt);
}
