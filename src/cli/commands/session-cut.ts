/**
 * What a person is told about hosts cutting sessions: hosts running the jit-ssh session guard
 * end every SSH session when the certificate that opened it expires (or is revoked), so the
 * CLI says when that will happen before anyone is surprised mid-task.
 */
import { humanDuration, localTime } from './client-args.js';

export interface CertWindow {
  target: string;
  task?: string;
  /** ISO time the certificate stops being valid. */
  validBefore: string;
}

/** One line for `jit-ssh ssh`: when this session will be cut and how to get more time. */
export function sessionCutNotice(cert: CertWindow, nowMs = Date.now()): string {
  const left = Math.floor((Date.parse(cert.validBefore) - nowMs) / 1000);
  const more = `jit-ssh login ${cert.target}${cert.task ? ` --task ${cert.task}` : ''}`;
  return (
    `jit-ssh: this session will be cut at ${localTime(cert.validBefore, nowMs)} (in ${humanDuration(left)}), ` +
    `when the certificate expires (hosts with the jit-ssh session guard end it then); for more time: ${more}`
  );
}

/** The footnote under `jit-ssh status`'s table. */
export const SESSIONS_CUT_FOOTNOTE =
  'SSH sessions opened with a certificate are cut when it expires or is revoked (on hosts running the jit-ssh session guard).';
