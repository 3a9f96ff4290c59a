import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { changeLabels, parseAdvertiseAddress, parseLabels, placementDrift } from './node-placement.js';

describe('node placement held by the operator', () => {
  test('labels of a request are checked: keys as constraints name them, text values', () => {
    assert.deepEqual(parseLabels({ zone: 'a', 'topology.io/rack': 'r1' }, 'labels'), {
      zone: 'a',
      'topology.io/rack': 'r1',
    });
    assert.equal(parseLabels(undefined, 'labels'), undefined);
    assert.throws(() => parseLabels(['zone=a'], 'labels'), /labels must be an object/);
    assert.throws(() => parseLabels({ 'a b': 'x' }, 'labels'), /label key "a b" is not valid/);
    assert.throws(() => parseLabels({ zone: 3 }, 'labels'), /label zone needs a text value/);
  });

  test('an advertise address is an IP address', () => {
    assert.equal(parseAdvertiseAddress('10.1.2.3'), '10.1.2.3');
    assert.equal(parseAdvertiseAddress('fd00::5'), 'fd00::5');
    assert.equal(parseAdvertiseAddress(undefined), undefined);
    assert.throws(() => parseAdvertiseAddress('node-a.example'), /must be an IP address/);
  });

  test('berth node label sets, then removes, and sorts', () => {
    assert.deepEqual(
      changeLabels({ zone: 'a', disk: 'hdd' }, { set: { zone: 'b', gpu: 'yes' }, remove: ['disk'] }),
      {
        gpu: 'yes',
        zone: 'b',
      },
    );
    assert.deepEqual(changeLabels({ zone: 'a' }, { set: {}, remove: ['missing'] }), { zone: 'a' });
  });

  const cases: {
    name: string;
    recorded: { labels?: Record<string, string>; address?: string };
    reported: { labels: Record<string, string>; address: string };
    fields: string[];
  }[] = [
    {
      name: 'the same labels in another order and the same address: no drift',
      recorded: { labels: { a: '1', b: '2' }, address: '10.0.0.1' },
      reported: { labels: { b: '2', a: '1' }, address: '10.0.0.1' },
      fields: [],
    },
    {
      name: 'a label added by the agent',
      recorded: { labels: { zone: 'a' }, address: '10.0.0.1' },
      reported: { labels: { zone: 'a', gpu: 'yes' }, address: '10.0.0.1' },
      fields: ['labels'],
    },
    {
      name: 'another address',
      recorded: { labels: {}, address: '10.0.0.1' },
      reported: { labels: {}, address: '10.0.0.9' },
      fields: ['address'],
    },
    {
      name: 'nothing recorded yet (a node of an earlier version): nothing to compare',
      recorded: {},
      reported: { labels: { zone: 'q' }, address: '10.0.0.9' },
      fields: [],
    },
  ];
  for (const c of cases) {
    test(`drift: ${c.name}`, () => {
      assert.deepEqual(
        placementDrift(c.recorded, c.reported).map((d) => d.field),
        c.fields,
      );
    });
  }

  test('a drift says what was reported, what is held, and how to change it', () => {
    const [labels] = placementDrift({ labels: { zone: 'a' } }, { labels: { zone: 'b' }, address: '' });
    assert.equal(
      labels?.detail,
      'labels zone=b reported, zone=a held by the operator (change them with berth node label)',
    );
  });
});
