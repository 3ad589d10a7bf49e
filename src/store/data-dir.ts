/**
 * The data dir holds the record of who got access and the state that decides it: whoever can
 * write to it can plant files, links or an old state. Refuse one that anyone but the daemon's
 * own user could change (skipped where there are no POSIX owners, i.e. Windows).
 */
import { stat } from 'node:fs/promises';
import { JitError } from '../errors.js';

export async function checkDataDirTrust(dir: string): Promise<void> {
  const uid = process.getuid?.();
  if (uid === undefined) return;
  const st = await stat(dir);
  if (!st.isDirectory()) throw new JitError('invalid_config', `data dir ${dir} is not a directory`);
  if (st.uid !== uid) {
    throw new JitError('invalid_config', `data dir ${dir} is owned by uid ${st.uid}, not by this daemon's user (uid ${uid}); fix: chown ${uid} ${dir}`);
  }
  if ((st.mode & 0o022) !== 0) {
    const mode = (st.mode & 0o777).toString(8).padStart(4, '0');
    throw new JitError('invalid_config', `data dir ${dir} is writable by group or others (mode ${mode}); fix: chmod go-w ${dir}`);
  }
}
