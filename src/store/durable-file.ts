/**
 * Crash-safe small-file replacement: a reader sees the old content or the new, never a torn or
 * empty file, and once the promise resolves the new content survives power loss. Node's
 * writeFile + rename (what lowdb/steno do) skips both fsyncs, so after a crash the renamed file
 * can be empty.
 */
import { open, rename } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

export async function fsyncDir(dir: string): Promise<void> {
  const fh = await open(dir, 'r');
  try {
    await fh.sync();
  } finally {
    await fh.close();
  }
}

export async function writeFileDurable(file: string, data: string | Buffer, mode = 0o600): Promise<void> {
  const tmp = join(dirname(file), `.${basename(file)}.tmp`);
  const fh = await open(tmp, 'w', mode);
  try {
    await fh.writeFile(data);
    await fh.datasync();
  } finally {
    await fh.close();
  }
  await rename(tmp, file);
  await fsyncDir(dirname(file));
}

/** The errno-style code of a filesystem error, for messages that stay free of paths and stacks. */
export function errorCode(e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : 'EIO';
}
