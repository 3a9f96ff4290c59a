/** A path into a manifest document: map keys are strings, list indexes are numbers. */
export type FieldPath = readonly (string | number)[];

const PLAIN_KEY = /^[A-Za-z_][A-Za-z0-9_-]*$/;

/** `spec.ports[0].target`, `data["index.html"]`; the empty path is the document itself. */
export function formatFieldPath(path: FieldPath): string {
  let text = '';
  for (const segment of path) {
    if (typeof segment === 'number') text += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) text += text === '' ? segment : `.${segment}`;
    else text += `[${JSON.stringify(segment)}]`;
  }
  return text;
}

/** `spec.replicas: message`, or just the message for the document itself. */
export function atFieldPath(path: FieldPath, message: string): string {
  return path.length === 0 ? message : `${formatFieldPath(path)}: ${message}`;
}
