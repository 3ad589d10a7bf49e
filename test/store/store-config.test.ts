/** `store:` in jit-sshd.yaml and JITSSHD_DATABASE_URL: checked at the edge, with clear errors. */
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/policy/config-schema.js';
import { databaseUrl } from '../../src/store-engine.js';

describe('store config', () => {
  it('ok/postgres with a URL, pool size default 10', () => {
    const c = validateConfig({ store: { type: 'postgres', url: 'postgres://jit@db/jit' } });
    expect(c.store).toEqual({ type: 'postgres', url: 'postgres://jit@db/jit', poolSize: 10 });
    expect(databaseUrl(c, {})).toBe('postgres://jit@db/jit');
  });

  it('ok/JITSSHD_DATABASE_URL wins over store.url and may stand in for it', () => {
    const c = validateConfig({ store: { type: 'postgres' } });
    expect(databaseUrl(c, { JITSSHD_DATABASE_URL: 'postgresql://x:secret@h/db' })).toBe('postgresql://x:secret@h/db');
    expect(() => databaseUrl(c, {})).toThrow(/store\.url: required/);
    expect(() => databaseUrl(c, { JITSSHD_DATABASE_URL: 'mysql://h/db' })).toThrow(/must be a postgres:\/\/ URL/);
  });

  it('fail/unknown type, a non-postgres URL, a pool out of range, unknown fields', () => {
    expect(() => validateConfig({ store: { type: 'sqlite' } })).toThrow(/store/);
    expect(() => validateConfig({ store: { type: 'postgres', url: 'http://db' } })).toThrow(/postgres:\/\//);
    expect(() => validateConfig({ store: { type: 'postgres', url: 'postgres://db', poolSize: 0 } })).toThrow(/poolSize/);
    expect(() => validateConfig({ store: { type: 'embedded', url: 'postgres://db' } })).toThrow(/store/);
  });
});
