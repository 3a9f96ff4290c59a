import { HTTP_HEALTHY_STATUS_RANGE } from './defaults.js';

/** Whether an HTTP probe's answer counts as healthy; an empty list means the default 200-399 range. */
export function isHealthyHttpStatus(expectStatus: readonly number[], status: number): boolean {
  if (expectStatus.length === 0) {
    return status >= HTTP_HEALTHY_STATUS_RANGE.min && status <= HTTP_HEALTHY_STATUS_RANGE.max;
  }
  return expectStatus.includes(status);
}
