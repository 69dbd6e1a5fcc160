import { describe, expect, it } from 'vitest';
import { addressBucket } from '../../server/identity/rate-limit.ts';

describe('addressBucket', () => {
  it('keeps IPv4 addresses apart, also as a dual-stack listener reports them (IPv4-mapped)', () => {
    expect(addressBucket('203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:203.0.113.7')).toBe('203.0.113.7');
    expect(addressBucket('::ffff:cb00:7108')).toBe('203.0.113.8');
    expect(addressBucket('::ffff:203.0.113.7')).not.toBe(addressBucket('::ffff:203.0.113.9'));
  });

  it('groups IPv6 addresses by /64, however they are written', () => {
    expect(addressBucket('2001:db8:1:2::1')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('2001:0DB8:0001:0002:ffff:1:2:3')).toBe('2001:db8:1:2::/64');
    expect(addressBucket('fe80::1%eth0')).toBe('fe80:0:0:0::/64');
    expect(addressBucket('::1')).toBe('0:0:0:0::/64');
    expect(addressBucket('2001:db8::')).toBe('2001:db8:0:0::/64');
    expect(addressBucket('2001:db8:1:3::1')).not.toBe(addressBucket('2001:db8:1:2::1'));
  });
});
