/** The store's names for the one atomic writer in src/files.ts (kept so imports stay short). */
export { errorCode, fsyncDir, writeFileAtomic as writeFileDurable } from '../files.js';
