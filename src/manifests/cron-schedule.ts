/**
 * CronJob schedules: node-cron's syntax (five fields, or six with a leading seconds field), read by
 * node-cron's own parser, evaluated in an IANA time zone. node-cron can tell the next run only
 * from the wall clock, so the next-fire search is here, pure, with the instant passed in: the
 * operator, `berth plan` and the tests (a fake clock) all ask the same function.
 *
 * Day fields follow node-cron: day of month AND day of week must both match (not cron's OR), with
 * its tokens `L`, `L-n`, `nW`, `LW` (day of month) and `n#k`, `nL` (day of week). A wall time a
 * daylight-saving jump skips does not exist that day, so it does not fire that day.
 */
import { parse as parseCronFields, validateDetailed } from 'node-cron';

export interface CronSchedule {
  expression: string;
  timeZone: string;
  seconds: readonly number[];
  minutes: readonly number[];
  hours: readonly number[];
  daysOfMonth: readonly (number | string)[];
  months: readonly number[];
  daysOfWeek: readonly (number | string)[];
}

/** How far ahead a schedule is searched (`0 0 30 2 *` never fires): five years of days. */
const SEARCH_DAYS = 5 * 366;

/** null when valid; otherwise why, in words a person can act on. */
export function cronExpressionProblem(expression: string): string | null {
  try {
    const result = validateDetailed(expression);
    if (result.valid) return null;
    const first = result.errors[0];
    return first === undefined ? 'is not a valid cron expression' : `${first.field}: ${first.message}`;
  } catch (error) {
    return error instanceof Error ? error.message : String(error);
  }
}

export function isKnownTimeZone(timeZone: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone });
    return true;
  } catch {
    return false;
  }
}

/** Throws on an invalid expression or time zone: validation (load.ts) refused those already. */
export function parseCronSchedule(expression: string, timeZone: string): CronSchedule {
  const fields = parseCronFields(expression);
  if (!isKnownTimeZone(timeZone)) throw new RangeError(`unknown time zone ${JSON.stringify(timeZone)}`);
  const sorted = (values: readonly number[]) => [...values].sort((a, b) => a - b);
  return {
    expression,
    timeZone,
    seconds: sorted(fields.second),
    minutes: sorted(fields.minute),
    hours: sorted(fields.hour),
    daysOfMonth: fields.dayOfMonth,
    months: fields.month,
    daysOfWeek: fields.dayOfWeek,
  };
}

/** The first instant (ms) strictly after `afterMs` the schedule fires at; null: not in five years. */
export function nextFireAfter(schedule: CronSchedule, afterMs: number): number | null {
  const start = wallClock(afterMs, schedule.timeZone);
  let day = Date.UTC(start.year, start.month - 1, start.day);
  for (let i = 0; i < SEARCH_DAYS; i++, day += 86_400_000) {
    const date = new Date(day);
    const [year, month, dayOfMonth] = [date.getUTCFullYear(), date.getUTCMonth() + 1, date.getUTCDate()];
    if (!schedule.months.includes(month)) continue;
    if (!dayMatches(schedule, year, month, dayOfMonth, date.getUTCDay())) continue;
    const from = i === 0 ? start : null;
    const fire = firstTimeOfDay(schedule, { year, month, day: dayOfMonth }, from, afterMs);
    if (fire !== null) return fire;
  }
  return null;
}

/**
 * The latest instant in (afterMs, atMs] the schedule fired at, and how many there were (counted up
 * to `countLimit`: past it, "at least that many").
 */
export function firesBetween(
  schedule: CronSchedule,
  afterMs: number,
  atMs: number,
  countLimit = 100,
): { latest: number | null; count: number } {
  let latest: number | null = null;
  let count = 0;
  for (let t = nextFireAfter(schedule, afterMs); t !== null && t <= atMs; t = nextFireAfter(schedule, t)) {
    latest = t;
    count += 1;
    if (count >= countLimit) return { latest: latestFireUpTo(schedule, t, atMs), count };
  }
  return { latest, count };
}

/** The last fire in (afterMs, atMs], looked for in ever wider windows ending at atMs. */
function latestFireUpTo(schedule: CronSchedule, afterMs: number, atMs: number): number {
  let latest = afterMs;
  for (const windowMs of [2_000, 60_000, 3_600_000, 86_400_000, 32 * 86_400_000, 400 * 86_400_000]) {
    const from = Math.max(afterMs, atMs - windowMs);
    const first = nextFireAfter(schedule, from);
    if (first === null || first > atMs) {
      if (from === afterMs) return latest;
      continue;
    }
    for (let t: number | null = first; t !== null && t <= atMs; t = nextFireAfter(schedule, t)) latest = t;
    return latest;
  }
  for (let t = nextFireAfter(schedule, afterMs); t !== null && t <= atMs; t = nextFireAfter(schedule, t))
    latest = t;
  return latest;
}

/** `from`: on the day the search starts, earlier wall times are skipped without being tried. */
function firstTimeOfDay(
  schedule: CronSchedule,
  { year, month, day }: { year: number; month: number; day: number },
  from: WallClock | null,
  afterMs: number,
): number | null {
  for (const hour of schedule.hours) {
    if (from !== null && hour < from.hour) continue;
    const sameHour = from !== null && hour === from.hour;
    for (const minute of schedule.minutes) {
      if (sameHour && minute < from.minute) continue;
      const sameMinute = sameHour && minute === from.minute;
      for (const second of schedule.seconds) {
        if (sameMinute && second < from.second) continue;
        const instant = zonedInstant(year, month, day, hour, minute, second, schedule.timeZone);
        if (instant === null || instant <= afterMs) continue;
        return instant;
      }
    }
  }
  return null;
}

function dayMatches(
  schedule: CronSchedule,
  year: number,
  month: number,
  day: number,
  weekday: number,
): boolean {
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const ofMonth = schedule.daysOfMonth.some((value) => {
    if (value === day) return true;
    if (typeof value !== 'string') return false;
    if (value === 'L') return day === last;
    const offset = /^L-(\d+)$/.exec(value);
    if (offset) return day === last - Number(offset[1]);
    const weekdayNear = /^(L|\d+)W$/.exec(value);
    if (weekdayNear)
      return day === nearestWeekday(year, month, weekdayNear[1] === 'L' ? last : Number(weekdayNear[1]));
    return false;
  });
  if (!ofMonth) return false;
  return schedule.daysOfWeek.some((value) => {
    if (value === weekday || (value === 7 && weekday === 0)) return true;
    if (typeof value !== 'string') return false;
    const nth = /^(\d)#(\d)$/.exec(value);
    if (nth) return Number(nth[1]) % 7 === weekday && Math.ceil(day / 7) === Number(nth[2]);
    const lastOf = /^(\d)L$/.exec(value);
    if (lastOf) return Number(lastOf[1]) % 7 === weekday && day + 7 > last;
    return false;
  });
}

/** The weekday (Mon-Fri) of the month nearest to `target`, as Quartz's `W`. */
function nearestWeekday(year: number, month: number, target: number): number {
  const last = new Date(Date.UTC(year, month, 0)).getUTCDate();
  const day = Math.min(target, last);
  const weekday = new Date(Date.UTC(year, month - 1, day)).getUTCDay();
  if (weekday === 6) return day === 1 ? 3 : day - 1;
  if (weekday === 0) return day === last ? day - 2 : day + 1;
  return day;
}

interface WallClock {
  year: number;
  month: number;
  day: number;
  hour: number;
  minute: number;
  second: number;
}

const formatters = new Map<string, Intl.DateTimeFormat>();

function offsetAt(instant: number, timeZone: string): number {
  const seen = wallClock(instant, timeZone);
  return Date.UTC(seen.year, seen.month - 1, seen.day, seen.hour, seen.minute, seen.second) - instant;
}

function wallClock(instant: number, timeZone: string): WallClock {
  let format = formatters.get(timeZone);
  if (format === undefined) {
    format = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
    });
    formatters.set(timeZone, format);
  }
  const parts = Object.fromEntries(
    format.formatToParts(new Date(instant)).map((part) => [part.type, Number(part.value)]),
  );
  return {
    year: parts['year'] ?? 0,
    month: parts['month'] ?? 0,
    day: parts['day'] ?? 0,
    hour: parts['hour'] ?? 0,
    minute: parts['minute'] ?? 0,
    second: parts['second'] ?? 0,
  };
}

/**
 * The instant a wall-clock time happens in a time zone; null when the zone skips it (a
 * daylight-saving jump). A time that happens twice (the clock turned back) is its first.
 */
function zonedInstant(
  year: number,
  month: number,
  day: number,
  hour: number,
  minute: number,
  second: number,
  timeZone: string,
): number | null {
  const asUtc = Date.UTC(year, month - 1, day, hour, minute, second);
  const reads = (instant: number) => {
    const seen = wallClock(instant, timeZone);
    return (
      seen.year === year &&
      seen.month === month &&
      seen.day === day &&
      seen.hour === hour &&
      seen.minute === minute &&
      seen.second === second
    );
  };
  // No zone changes its offset twice within two days: the offsets a day before and a day after
  // are the only ones this wall time can be read with.
  const candidates = new Set([
    asUtc - offsetAt(asUtc - 86_400_000, timeZone),
    asUtc - offsetAt(asUtc + 86_400_000, timeZone),
  ]);
  const matching = [...candidates].filter(reads).sort((a, b) => a - b);
  return matching[0] ?? null;
}
