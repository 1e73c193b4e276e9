#!/usr/bin/env node
// Outside Stratum V1 client for chainsmith's `pool` tests:  node driver.js HOST PORT USER PASSWORD
//
// Everything on the wire is sent by the npm package stratum-client (1.1.0); this file only
// turns its callbacks into JSON lines on stdout and stdin lines into its submit call.
//
// What the package does (src/ in node_modules/stratum-client):
// - start({server, port, worker, password, ...callbacks}) connects one module-level net.Socket
//   and, on connect, writes {"id":"mining.subscribe","method":"mining.subscribe","params":[]}.
// - On the subscribe reply it reports result[1], result[2] through onSubscribe({extraNonce1,
//   extraNonce2Size}) and writes {"id":"mining.authorize","method":"mining.authorize",
//   "params":[worker, password]} (password defaults to "x").
// - Every incoming line is dispatched on `method || id`, so replies must echo these string
//   ids verbatim. Authorize replies go to onAuthorizeSuccess/onAuthorizeFail(error, result),
//   mining.set_difficulty to onNewDifficulty(d), mining.notify to onNewMiningWork(work)
//   (fields jobId, prevhash, coinb1, coinb2, merkle_branch, version, nbits, ntime, clean_jobs),
//   submit replies to onSubmitWorkSuccess/onSubmitWorkFail(error, result): the server's error
//   array arrives untouched.
// - submit({worker_name, job_id, extranonce2, ntime, nonce}) (an object, not the array the
//   package README shows) writes {"params":[...], "id":"mining.submit", "method":"mining.submit"}.
//   Every submit carries the same id, so the driver correlates replies by order: a FIFO of
//   the tags of submits awaiting a reply (a Stratum server answers one connection's requests
//   in order).
// - Quirks: request lines are built by string substitution (no JSON escaping: USER, PASSWORD
//   and the submit fields must be plain strings); incoming chunks are split on "\n" without
//   buffering a partial line (a line split across TCP reads is lost, the parse error goes to
//   stderr); exceptions in callbacks are caught and printed to stderr by the package; on a
//   socket error it reconnects unless autoReconnectOnError is false (set here).
//
// stdout: one JSON object per line (events subscribed, authorized, difficulty, notify,
// submit_result, closed, error). stdin: one JSON command per line, {"submit":{...}} or
// {"quit":true}. On quit or stdin EOF the driver waits (at most 2 s) for pending submit
// replies, closes and exits 0; if the connection closes otherwise it prints closed, exits 1.
'use strict';
const readline = require('readline');
const stratum = require('stratum-client');

const [host, port, user, password] = process.argv.slice(2);
if (!host || !port || !user || password === undefined) {
  process.stderr.write('usage: node driver.js HOST PORT USER PASSWORD\n');
  process.exit(2);
}

const emit = (event, fields) => process.stdout.write(JSON.stringify({ event, ...fields }) + '\n');
const pending = []; // tags of submits awaiting a reply, oldest first
let quitting = false;

const submitResult = (error, result) => {
  if (pending.length === 0) {
    emit('error', { message: 'submit reply without a pending submit' });
    return;
  }
  emit('submit_result', { tag: pending.shift(), result: result === undefined ? null : result, error: error === undefined ? null : error });
  if (quitting && pending.length === 0) quit();
};

const conn = stratum({
  server: host,
  port: Number(port),
  worker: user,
  password,
  autoReconnectOnError: false,
  onSubscribe: ({ extraNonce1, extraNonce2Size }) =>
    emit('subscribed', { extranonce1: extraNonce1, extranonce2_size: extraNonce2Size }),
  onAuthorizeSuccess: (error, result) => emit('authorized', { result: result === true, error: error === undefined ? null : error }),
  onAuthorizeFail: (error, result) => emit('authorized', { result: result === true, error: error === undefined ? null : error }),
  onNewDifficulty: (difficulty) => emit('difficulty', { difficulty }),
  onNewMiningWork: (w) => emit('notify', {
    job_id: w.jobId, prevhash: w.prevhash, coinb1: w.coinb1, coinb2: w.coinb2,
    merkle_branch: w.merkle_branch, version: w.version, nbits: w.nbits, ntime: w.ntime,
    clean_jobs: w.clean_jobs,
  }),
  onSubmitWorkSuccess: submitResult,
  onSubmitWorkFail: submitResult,
  onError: (err) => emit('error', { message: err.message }),
  onClose: () => {
    emit('closed', {});
    process.exit(quitting ? 0 : 1);
  },
});

let closing = false;
function quit() {
  if (closing) return;
  closing = true;
  conn.shutdown(); // the socket's close event emits closed and exits 0
  setTimeout(() => process.exit(0), 1000).unref();
}

function startQuit() {
  quitting = true;
  if (pending.length === 0) quit();
  else setTimeout(quit, 2000).unref();
}

readline.createInterface({ input: process.stdin }).on('line', (line) => {
  if (!line.trim()) return;
  let cmd;
  try {
    cmd = JSON.parse(line);
  } catch (e) {
    emit('error', { message: `bad command: ${e.message}` });
    return;
  }
  if (cmd.quit) {
    startQuit();
  } else if (cmd.submit) {
    const s = cmd.submit;
    pending.push(s.tag === undefined ? null : s.tag);
    conn.submit({ worker_name: user, job_id: s.job_id, extranonce2: s.extranonce2, ntime: s.ntime, nonce: s.nonce });
  } else {
    emit('error', { message: `unknown command: ${line}` });
  }
}).on('close', startQuit);
