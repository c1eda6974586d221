// Member changes from the status page, with Apache balancer-manager's form fields: `b` (the
// balancer's name, `balancer://` optional), `w` (the member's URL as configured), `w_status_D`
// (disabled), `w_status_H` (hot standby), `w_status_N` (draining), `w_status_S` (stopped), each
// `1` or `0`, and `nonce` (the gateway's, StatusBoard.nonce). The new flags are kept in the
// member's run-time state for this config's member object (upstream/balancer/state.ts statusOf):
// the next election follows them, and they hold until the next change or reload.
//
// Open tunnels: `w_status_N=1` (drain) closes the member's tunnels with 1001, paced at
// ProxyWebsocketDrainRate (Gateway.drainMember), so a member can be emptied before maintenance;
// each such POST does it again for tunnels made since (a sticky route still reaches a draining
// member, as in Apache). Disabling (`w_status_D=1`), stopping or hot standby alone keep the
// open tunnels, as Apache's do: only new requests avoid the member.
//
// Apache's other fields (loadfactor, lbset, route, balancer settings, the I/E/R/C flags) would
// change what wsgate does in ways it does not implement: they are refused, not ignored.

import type { MemberStatus } from '../config/model';
import { memberStateName } from '../observe/metrics';
import { configMembers, statusOf } from '../upstream/balancer/state';
import type { SharedMemberChange } from '../lifecycle/worker-messages';
import type { HandlerHost } from './handler';

const FLAGS: Record<string, keyof MemberStatus> = {
  w_status_D: 'disabled',
  w_status_H: 'hotStandby',
  w_status_N: 'drain',
  w_status_S: 'stopped',
};

export type MemberChange =
  | {
      readonly ok: true;
      readonly balancer: string;
      readonly member: string;
      readonly state: string;
      /** How many open tunnels a drain began to close (0 when the change was not a drain). */
      readonly closing: number;
    }
  | { readonly ok: false; readonly status: number; readonly error: string };

/** Whether `params` asks for a member change at all (a balancer-manager URL that only shows the page does not). */
export function asksChange(params: URLSearchParams): boolean {
  for (const key of params.keys()) if (key === 'w' || key.startsWith('w_') || key.startsWith('b_')) return true;
  return false;
}

export function changeMember(host: HandlerHost, params: URLSearchParams, now: number): MemberChange {
  if (params.get('nonce') !== host.status.nonce) return { ok: false, status: 403, error: 'missing or wrong nonce (reload the page)' };
  const b = (params.get('b') ?? '').toLowerCase().replace(/^balancer:\/\//, '');
  const w = params.get('w') ?? '';
  const flags: Partial<Record<keyof MemberStatus, boolean>> = {};
  for (const [key, value] of params) {
    if (key === 'b' || key === 'w' || key === 'nonce') continue;
    const flag = FLAGS[key];
    if (flag === undefined) {
      if (key.startsWith('w_') || key.startsWith('b_'))
        return { ok: false, status: 400, error: `${key}: wsgate changes only w_status_D, w_status_H, w_status_N and w_status_S` };
      continue;
    }
    if (value !== '0' && value !== '1') return { ok: false, status: 400, error: `${key}: 0 or 1, not ${JSON.stringify(value)}` };
    flags[flag] = value === '1';
  }
  for (const { balancer, member } of configMembers(host.config).values()) {
    if (balancer.name !== b || !sameUrl(member.backend.url, w)) continue;
    const st = host.balancers.state(member, now);
    const status: MemberStatus = { ...statusOf(member, st), ...flags };
    st.admin = { configured: member.status, status };
    // -w N: the other workers make the same change (and those that start later, from the primary).
    host.workers?.shareMemberChange({
      balancer: balancer.name,
      member: member.backend.url,
      configured: member.status,
      status,
      drainNow: flags.drain === true,
    });
    host.log.info('balancer member changed from the status page', {
      balancer: balancer.url,
      member: member.backend.url,
      disabled: status.disabled,
      drain: status.drain,
      hot_standby: status.hotStandby,
      stopped: status.stopped,
    });
    // The flags are in force first, so that the clients told to go away do not come back here.
    const closing = flags.drain === true ? host.drainMember(balancer, member) : 0;
    if (closing > 0)
      host.log.info('closing a drained member’s tunnels', { balancer: balancer.url, member: member.backend.url, tunnels: closing });
    return { ok: true, balancer: balancer.url, member: member.backend.url, state: memberStateName(member, st, now), closing };
  }
  return { ok: false, status: 404, error: `no member ${JSON.stringify(w)} in balancer ${JSON.stringify(b)}` };
}

/**
 * A change another worker made (lifecycle/worker-link.ts): the same admin flags on this worker's
 * member of that balancer and URL. A member this worker's config does not have (a reload under
 * way) is left alone.
 */
export function applySharedChange(
  host: Pick<HandlerHost, 'config' | 'balancers' | 'drainMember'>,
  change: SharedMemberChange,
  now: number,
): boolean {
  for (const { balancer, member } of configMembers(host.config).values()) {
    if (balancer.name !== change.balancer || member.backend.url !== change.member) continue;
    host.balancers.state(member, now).admin = { configured: change.configured, status: change.status };
    // A drain asked through another worker closes this worker's tunnels to the member as well.
    if (change.drainNow) host.drainMember(balancer, member);
    return true;
  }
  return false;
}

/** Member URLs compare without a trailing slash (Apache's form carries the worker name as it prints it). */
function sameUrl(a: string, b: string): boolean {
  return a.replace(/\/$/, '') === b.replace(/\/$/, '');
}
