/**
 * The one rule for names of users, groups, targets, accounts, tasks and rules: safe inside
 * principals, key IDs and file names. Its own module so the CLI can use it without loading zod.
 */
export const NAME_RE = /^[a-z0-9][a-z0-9._-]{0,62}$/i;
