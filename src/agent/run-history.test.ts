import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { runtimeContainer } from '../../test/agent/runtime-container-fixture.js';
import { RunHistory } from './run-history.js';

describe('run history', () => {
  test('a restart counts from when the agent first saw the container, not from its creation', () => {
    const history = new RunHistory();
    history.noteSeen(runtimeContainer({ restartCount: 2 }));
    assert.equal(history.restartedSinceSeen(runtimeContainer({ restartCount: 2 })), false);
    // Seeing it again does not move the baseline.
    history.noteSeen(runtimeContainer({ restartCount: 3 }));
    assert.equal(history.restartedSinceSeen(runtimeContainer({ restartCount: 3 })), true);
  });

  test('a new container of the same name starts a new baseline; a created one starts at zero', () => {
    const history = new RunHistory();
    history.noteSeen(runtimeContainer({ restartCount: 5 }));
    assert.equal(history.restartedSinceSeen(runtimeContainer({ id: 'id-2', restartCount: 1 })), false);
    history.noteCreated('node-1.web.1', 'id-3');
    assert.equal(history.restartedSinceSeen(runtimeContainer({ id: 'id-3', restartCount: 1 })), true);
    history.forget('node-1.web.1');
    assert.equal(history.restartedSinceSeen(runtimeContainer({ id: 'id-3', restartCount: 1 })), false);
    assert.deepEqual(history.names(), []);
  });

  test('deaths are counted per container id with the last exit code', () => {
    const history = new RunHistory();
    assert.equal(history.deathCount('id-1'), 0);
    assert.equal(history.lastExitCode('id-1'), null);
    history.noteDeath('id-1', 1);
    history.noteDeath('id-1', 137);
    assert.equal(history.deathCount('id-1'), 2);
    assert.equal(history.lastExitCode('id-1'), 137);
    assert.equal(history.deathCount('id-2'), 0);
    history.forgetDeaths('id-1');
    assert.equal(history.deathCount('id-1'), 0);
  });
});
