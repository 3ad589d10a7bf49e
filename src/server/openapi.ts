/**
 * The API description served at GET /v1/openapi.json. The source of truth is docs/openapi.yaml
 * in the repository (docs/ sits beside src/ and dist/), so the served document and the one
 * users read cannot drift; a test checks real responses against it.
 */
import { readFileSync } from 'node:fs';
import { parse } from 'yaml';
import { JitError } from '../errors.js';

export const OPENAPI_FILE = new URL('../../docs/openapi.yaml', import.meta.url);

/** Reads and parses docs/openapi.yaml; a missing or broken file is the operator's to fix. */
export function loadOpenApiDocument(file: URL = OPENAPI_FILE): Record<string, unknown> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new JitError('not_found', 'the API document docs/openapi.yaml is not installed beside the daemon');
  }
  const doc: unknown = parse(text);
  if (typeof doc !== 'object' || doc === null || Array.isArray(doc)) throw new JitError('internal', 'docs/openapi.yaml is not a YAML mapping');
  return doc as Record<string, unknown>;
}
