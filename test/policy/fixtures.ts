/** A small valid policy (raw, as YAML would give it) that tests modify one field at a time. */
export const ED25519_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICgo0qlCZRhh3eQT/aEsIYFOSYkMzK7W7/iDKwfNs4WM alice@laptop';

export function basePolicy(): Record<string, any> {
  return {
    defaults: { ttl: '15m', maxTtl: '1h', backdate: '60s' },
    users: {
      alice: { groups: ['sre', 'oncall'], keys: [ED25519_KEY] },
      bob: { groups: ['sre-leads'] },
      carol: { groups: [] },
      dave: { groups: ['oncall'], disabled: true },
    },
    targets: {
      'prod-db': { hosts: ['db1.prod.example.com'], accounts: ['postgres', 'readonly', 'deploy'] },
      'prod-web': { hosts: ['web1.prod.example.com'], accounts: ['deploy', 'readonly'] },
      'staging-web': { hosts: ['web1.staging.example.com'], accounts: ['deploy', 'readonly'] },
    },
    tasks: {
      'check-logs': { accounts: ['readonly'], maxTtl: '30m' },
      'restart-service': { accounts: ['deploy'], forceCommand: 'sudo systemctl restart app', maxTtl: '10m', extensions: [] },
      incident: {
        accounts: ['postgres', 'deploy'],
        maxTtl: '1h',
        requireTicket: '^INC-[0-9]+$',
        extensions: ['permit-pty', 'permit-port-forwarding'],
      },
    },
    rules: [
      {
        name: 'oncall-auto',
        groups: ['oncall'],
        targets: ['prod-*'],
        tasks: ['check-logs', 'restart-service'],
        approval: 'auto',
        bindSourceAddress: true,
      },
      {
        name: 'incident-with-approval',
        groups: ['dba', 'sre'],
        targets: ['prod-*'],
        tasks: ['incident'],
        approval: { approvers: ['sre-leads'], count: 1 },
      },
      { name: 'staging-auto', groups: ['sre'], targets: ['staging-*'], tasks: ['*'], approval: 'auto' },
    ],
  };
}

/** Deep copy of basePolicy() with `edit` applied. */
export function policyWith(edit: (p: Record<string, any>) => void): Record<string, any> {
  const p = structuredClone(basePolicy());
  edit(p);
  return p;
}
