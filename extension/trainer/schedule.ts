/** Which roles update at a training step: both at once, or alternating phases of N steps per role. */
import type { Mode, Role } from '../rundir/schema';

export type RoleSchedule =
  | { kind: 'simultaneous' }
  | { kind: 'alternating'; attackerSteps: number; defenderSteps: number; first: Role };

/** Roles whose samples train at `step` (0-based, global across rounds). */
export function rolesAt(schedule: RoleSchedule, mode: Mode, step: number): Role[] {
  if (mode === 'attacker-only') return ['attacker'];
  if (mode === 'defender-only') return ['defender'];
  if (schedule.kind === 'simultaneous') return ['attacker', 'defender'];
  const first = schedule.first;
  const second: Role = first === 'attacker' ? 'defender' : 'attacker';
  const firstSteps = first === 'attacker' ? schedule.attackerSteps : schedule.defenderSteps;
  const period = schedule.attackerSteps + schedule.defenderSteps;
  return [step % period < firstSteps ? first : second];
}

export function phaseName(roles: readonly Role[]): 'attacker' | 'defender' | 'both' {
  return roles.length === 2 ? 'both' : roles[0];
}
