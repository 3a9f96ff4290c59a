import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ownContainerId } from './host-visible-state.js';

const id = 'a'.repeat(32) + '0123456789abcdef'.repeat(2);

test('the own container id comes from the files Docker bind-mounts from the container directory', () => {
  const mountinfo = [
    '612 611 0:52 / / rw,relatime master:1 - overlay overlay rw,lowerdir=/x',
    `640 612 8:1 /var/lib/docker/containers/${id}/resolv.conf /etc/resolv.conf rw,relatime - ext4 /dev/sda1 rw`,
    `641 612 8:1 /var/lib/docker/containers/${id}/hostname /etc/hostname rw,relatime - ext4 /dev/sda1 rw`,
  ].join('\n');
  assert.equal(ownContainerId(mountinfo), id);
});

test('a custom data root works too; a host or a nested engine without such mounts has no id', () => {
  const custom = `70 60 8:1 /srv/docker/containers/${id}/hosts /etc/hosts rw - ext4 /dev/sda1 rw`;
  assert.equal(ownContainerId(custom), id);
  assert.equal(ownContainerId('22 27 0:21 / /proc rw,relatime - proc proc rw\n'), null);
  // A volume or a bind that merely contains "containers" is not the engine's container directory.
  const lookalike = `80 60 8:1 /home/me/containers/${id}/notes /data rw - ext4 /dev/sda1 rw`;
  assert.equal(ownContainerId(lookalike), null);
});
