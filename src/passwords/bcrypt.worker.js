'use strict';
/*
 * Runs in a piscina worker thread. bcrypt is deliberately slow CPU work: on the main thread
 * it would hold up every other request, so the server hashes and compares here.
 * Plain JavaScript so the same file loads under node, tsx and jest alike.
 * It hashes and compares exactly the text it is given: NFKC and the 72-byte rule are
 * applied before a task is sent (password-hasher.ts), the same for every engine.
 */
const bcrypt = require('bcryptjs');

/** @param {{ op: 'hash' | 'compare', password: string, hash?: string, cost?: number }} task */
module.exports = function run(task) {
  if (task.op === 'hash') return bcrypt.hashSync(task.password, task.cost);
  return bcrypt.compareSync(task.password, task.hash);
};
