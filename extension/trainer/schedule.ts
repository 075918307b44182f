/** Which roles update at a training step: both at once, or alternating phases of N steps per role. */
import type { Mode, Role } from '../rundir/schema';

export type RoleSchedule =
  | { kind: 'simultaneous' }
  | { kind: 'alternating'; attackerSteps: number; defenderSteps: number; first: Role };

/**
 * Alternation switched by attack success (MAGIC's schedule): the attacker trains until the share of
 * its attacks that succeed reaches `attackerUntil`, then the defender trains until it falls to
 * `defenderUntil`; a phase ends after `maxSteps` steps whatever the attack success.
 */
export interface AdaptiveSchedule {
  kind: 'adaptive';
  attackerUntil: number;
  defenderUntil: number;
  maxSteps: number;
  first: Role;
}

/**
 * The state of an adaptive schedule: the phase and how long it has lasted. It depends only on the
 * attack success observed after each step (from the judge's labels of the played exchanges, never a
 * game value), so a resumed run rebuilds it by replaying the recorded steps.
 */
export class AdaptivePhase {
  private current: Role;
  private steps = 0;

  constructor(private readonly schedule: AdaptiveSchedule) {
    this.current = schedule.first;
  }

  get roles(): Role[] {
    return [this.current];
  }

  /** After a step of the current phase: the trained attacker's attack success in it (null: none played). */
  record(attackSuccess: number | null): void {
    this.steps++;
    const s = this.schedule;
    const reached = attackSuccess !== null && (this.current === 'attacker' ? attackSuccess >= s.attackerUntil : attackSuccess <= s.defenderUntil);
    if (reached || this.steps >= s.maxSteps) {
      this.current = this.current === 'attacker' ? 'defender' : 'attacker';
      this.steps = 0;
    }
  }
}

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
