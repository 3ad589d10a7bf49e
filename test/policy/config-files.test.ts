import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfigAndPolicy, loadDaemonConfig, loadPolicyFile } from '../../src/config-files.js';

const dir = mkdtempSync(join(tmpdir(), 'jit-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('config files', () => {
  it('ok/shipped files load from the repo root', () => {
    const { config, policy } = loadConfigAndPolicy('config/jit-sshd.yaml');
    expect(config.policy).toBe('config/policy.yaml');
    expect(policy.rules.length).toBe(3);
  });

  it('ok/policy path is taken as written (relative to the working directory)', () => {
    const policyFile = join(dir, 'p.yaml');
    writeFileSync(policyFile, 'rules: []\n');
    const configFile = join(dir, 'c.yaml');
    writeFileSync(configFile, `policy: ${policyFile}\n`);
    expect(loadConfigAndPolicy(configFile).policy.rules).toEqual([]);
  });

  it('fail/missing file names it', () => {
    expect(() => loadDaemonConfig(join(dir, 'nope.yaml'))).toThrow(`${join(dir, 'nope.yaml')}: cannot read: no such file`);
    expect(() => loadPolicyFile(join(dir, 'nope.yaml'))).toThrow(expect.objectContaining({ code: 'invalid_config' }));
  });

  it('fail/problems name the file path', () => {
    const file = join(dir, 'bad.yaml');
    writeFileSync(file, 'listen: 0.0.0.0:1\n');
    expect(() => loadDaemonConfig(file)).toThrow(`${file}: tls: required`);
  });
});
