/** Prometheus metrics on a private registry (one per app, so tests can build many). */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface Metrics {
  registry: Registry;
  issued: Counter;
  denied: Counter;
  pending: Counter;
  authFailures: Counter;
  issueSeconds: Histogram;
  /** front processes serving (config `frontends`), and how often one ended and was replaced */
  frontends: Gauge;
  frontendRestarts: Counter;
}

export function createMetrics(opts: { defaults?: boolean } = {}): Metrics {
  const registry = new Registry();
  if (opts.defaults) collectDefaultMetrics({ register: registry, prefix: 'jitsshd_' });
  return {
    registry,
    issued: new Counter({ name: 'jitssh_certificates_issued_total', help: 'Certificates issued', registers: [registry] }),
    denied: new Counter({ name: 'jitssh_requests_denied_total', help: 'Requests denied by policy or approver', registers: [registry] }),
    pending: new Counter({ name: 'jitssh_requests_pending_total', help: 'Requests parked for approval', registers: [registry] }),
    authFailures: new Counter({ name: 'jitssh_auth_failures_total', help: 'Failed authentications', registers: [registry] }),
    issueSeconds: new Histogram({
      name: 'jitssh_issue_duration_seconds',
      help: 'Time to sign and durably audit one certificate',
      buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1],
      registers: [registry],
    }),
    frontends: new Gauge({ name: 'jitssh_frontends', help: 'Front processes serving (config frontends)', registers: [registry] }),
    frontendRestarts: new Counter({ name: 'jitssh_frontend_restarts_total', help: 'Front processes that ended and were replaced', registers: [registry] }),
  };
}
