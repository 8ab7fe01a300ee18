"""Scripted controller for ``robo/nut_assembly`` (``control="osc_pose"``): grasp a nut by its
handle, lift it above the pegs, carry it over its peg with the yaw aligned, lower it.

Pure JAX and memoryless like :mod:`.scripted` (whose helpers it reuses): the phase is read off
the observation, so it vmaps and runs inside ``lax.scan``. With both nuts the first nut not yet
on its peg (square first) is the one worked on.

Yaw: the fingers close across the handle, so the gripper's yaw is the handle's direction
modulo pi. The arm cannot reach over the pegs with the handle pointing away from the robot (the
grasp site would be ~0.85 m from the base).

Reach: Panda's elbow (joint 4) has 0.0825 m offsets, so the shoulder-wrist distance is longest at
joint 4 ~ -0.47 rad, not at its limit -0.07: past -0.47 the arm is "hyperextended", and there
pulling the hand back toward the robot needs joint 4 to move further toward -0.07, so OSC's J^T F
drives it into its limit and the arm stalls (the old failure with both nuts: 0/32, every arm stuck
after the square nut, elbow at -0.07). Lowering the nut with the handle sideways puts the grasp
site ~0.79 m out at z ~0.91 (2 cm lower than with the taller pegs used until 2026-12-06), right
at that point: single nuts used to be carried that way (gripper at yaw +pi/2), and lowered onto
the square peg the hand fell ~7-10 mm short of it (elbow at its limit), the ring jammed tilted on
the peg's top while the controller kept pushing down, or tipped off it once let go (4 of the 7
square failures on 64 states in session 38). Every nut type is therefore handled the same way (the
"reach-safe" controller written for ``nut_type="both"``, 2026-12-06 also for single nuts); the
controller:

* carries the nut with its handle toward the robot (nut yaw pi: the grasp site 5.4 cm closer to
  the base, the square's walls still parallel to the peg's faces); the grasp (handle yaw or
  + pi) is picked, and every turn routed, through joint 7's angle (observed): each grasp costs
  its turn + 0.5 |joint 7 after the carry turn| + a penalty for joint 7 past 2.6 rad after either
  turn. Joint 7 after the turns does not change as the gripper turns, the turn itself does, so
  turning toward a grasp only makes it cheaper: the choice cannot dither (a fixed bias toward the
  nearer grasp did, arms turned back and forth over the handle for the whole episode);
* aims the nut over its peg with where its centre will be once level, not where it is: held by
  the handle between the pads, the nut hangs ~30 deg tilted, so its centre is ~7 mm nearer the
  handle than when level; the peg's top levels the ring as it is lowered, and aimed by the
  tilted centre the square ring then sat 8 mm off the peg (clearance 6.75 mm), jammed on its
  top, pivoted about the handle and fell off;
* lowers the nut at most 2 cm per step, and lets go of a level ring only once it is
  ``RELEASE_DEPTH`` = 4 cm below the peg's top (1.5 cm until 2026-12-06: the ring, barely
  around the peg, tilted as the fingers opened, the controller re-grasped it there and flipped it
  off the peg), or, when the elbow is nearly straight, as soon as it is level and around the top;
* once the fingers are open, leaves a nut whose ring is around its peg (centre within 2 cm of the
  peg's axis, below its top) to slide down, instead of re-grasping it;
* goes straight for a nut that lies in front of the back-off line (one fallen by the pegs)
  instead of backing off first (which, being memoryless, it repeated every step: the arm hovered
  at the line for the rest of the episode);
* never commands the wrist away from the shoulder while joint 4 > -0.8 rad (the outward radial
  component of the motion is removed), and if joint 4 is past straight (> -0.44 rad) with the
  hand out over the table, moves the wrist outward (and up): that drives joint 4 back through
  straight, after which the hand can come back.

Grasping (session 39, 2026-12-06): the controller

* grasps ``GRASP_OUT`` = 8 mm beyond the handle's centre, away from the ring: at the centre the
  open pads (4 cm either side of the grasp site) cleared the square ring's corners by 4 mm, and
  the grip, drifting up to 8 mm toward the ring on a 5 cm/step descent, landed a pad on the ring
  and tipped the nut onto its edge or its back; it also descends at most ``DESCENT`` per step;
* closes the fingers gradually (each finger's target ``SQUEEZE`` = 6 mm inside its present
  opening): slammed shut (+1) the pads crossed ~3 cm within one 50 ms step and, the grasp a few
  mm off the handle's centre line, one pad went into the handle's box (fingers at ~7 mm each
  against the handle's 15.9 mm half-width). The nut then hung on that pad, dropped out of the
  "holding" test, and stayed stuck to the fingers once they opened: the controller, chasing the
  handle, carried it up and away for the rest of the episode (4 of the 6 failures with both
  nuts before);
* does not turn the gripper for the carry while the fingers are still closing ("holding" starts
  as they pass 2.5 cm, before the pads touch: turning then twisted the handle between them);
* keeps the grasp it is turned to on near-ties (``GRASP_KEEP``: joint 7 jitters as the arm
  descends, and where the two grasps' costs were within that the choice flipped over the handle
  and sent the arm back up, again and again) and never picks a grasp past joint 7's limit.

Measured success (2026-12-06, pegs at robosuite's height, CPU, the 64 random initial states of
``jax.random.split(jax.random.PRNGKey(seed), 64)``, success at the last step; in brackets the
same 64 states before these grasping changes):

* ``nut_type="square"``: seed 100, **64/64** after 150 steps [61/64 after 250]; seed 200,
  64/64 after 200 (63 by 150);
* ``nut_type="round"``: seed 101, **64/64** after 250 steps (61 by 150, 62 by 200) [64/64];
  seed 201, 64/64 after 250 (58 by 150, 63 by 200);
* ``nut_type="both"``: seed 102, **64/64** after 350 steps (55 by 300) [58/64 after 500];
  seed 202, 62/64 after 350 and after 500 (robosuite's horizon).

Single nuts need ~150-250 steps, both nuts ~350. Single episodes flip with the batch they run in
(MJX's float32 reductions differ with the batch size) and with small, unrelated changes to the
traced function, so differences of one or two states are noise. (Wall time of a 64-environment,
250-step scan on the 2-core CPU: ~90-130 s with the compile; 500 steps with both nuts ~240-580 s,
depending on what else runs.)

Remaining failures (2 of the 384 episodes above; single episodes flip with the batch): an arm
whose only reachable grasp needs joint 7 at its limit, which rises and descends over the handle
for the whole episode; and a round nut shoved sideways by the first pad to touch its handle, so
that the pads close off its centre line and it sticks to them. Seen in earlier variants: a nut
knocked out of reach before the grasp.
"""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np

from vasa.envs.scenes import pegs, robots, table
from vasa.envs.tasks.manipulation.base import ROBOT_BASE
from vasa.envs.tasks.manipulation.nut_assembly import OBS_PER_NUT, nuts_for, on_peg
from vasa.envs.tasks.manipulation.scripted import (
    DOWN,
    FINGERS,
    POS,
    QUAT,
    _move,
    _rot_z,
    _squeeze,
    _turn,
    quat_to_mat,
)

TOP = table.TABLE_TOP
CARRY_Z = TOP + pegs.PEG_CENTRE_ABOVE_TABLE + pegs.PEG_HALF_HEIGHT + pegs.NUT_HALF_HEIGHT + 0.03  # nut centre
PEG_TOP = TOP + pegs.PEG_CENTRE_ABOVE_TABLE + pegs.PEG_HALF_HEIGHT
ABOVE_PEG = PEG_TOP + 0.015  # nut centre clear of the peg top
GRASP_DZ = 0.001  # grasp this far above the handle's centre: both pad spheres on its faces
GRASP_OUT = 0.008  # m: grasp this far beyond the handle's centre (handle: 0.0253 m half-length)
LEVEL_COS = 0.966  # cos 15 deg
TRAVEL_Z = TOP + 0.2  # grasp-site height while travelling to a nut
RETREAT_X = 0.1  # m: back off to here after letting go
CARRY_YAW = jnp.pi  # the handle toward the robot
Q7_REACH = 2.6  # rad: joint 7 targets within this (limit 2.8973)
Q7_LIMIT = robots.JOINT_HIGH[6]  # rad: joint 7's limit; a grasp past it is out of reach
GRASP_KEEP = 0.3  # cost bonus of the grasp the gripper is within 0.15 rad of (hysteresis)
STANDOFF = 0.12  # m between nut and peg centres while the nut is below the peg's top
RELEASE_DEPTH = 0.04  # m: let go of a level ring only this far below the peg's top (0.015 before 2026-12-06)
DESCENT = 0.02  # m per step at most while lowering the nut around its peg
SHOULDER = np.array([ROBOT_BASE[0], ROBOT_BASE[1], ROBOT_BASE[2] + 0.333], np.float32)  # joint 2's axis
WRIST_ABOVE = robots.FLANGE_D + robots.GRIP_OFFSET  # joint 6's axis above the grasp site (hand down)
WRIST_BACK = 0.088  # ... and behind it, toward the base
ELBOW_STRAIGHT = -0.47  # joint 4 where shoulder -> wrist is longest (the 0.0825 m offsets kink the arm)
ELBOW_GUARD = -0.8  # beyond this (toward straight) no motion away from the shoulder
SQUEEZE = 0.006  # m: each finger's target this far inside its opening while grasping (~9 N at kp 1500)


def _wrap(a):
    return jnp.mod(a + jnp.pi, 2 * jnp.pi) - jnp.pi


def nut_assembly_policy(obs: jnp.ndarray, nut_type: str = "both") -> jnp.ndarray:
    """Scripted ``robo/nut_assembly``. ``obs``: ``[32 + 13 N] float32`` (``N`` = 2 nuts for
    ``"both"``, else 1); ``nut_type`` is static (bind it with ``functools.partial``).
    Returns a ``[7] float32`` OSC_POSE action."""
    kinds = nuts_for(nut_type)
    grip, rot = obs[POS], quat_to_mat(obs[QUAT])
    fingers = obs[FINGERS].sum()
    blocks = obs[32:32 + OBS_PER_NUT * len(kinds)].reshape(len(kinds), OBS_PER_NUT)
    centres, quats, handles = blocks[:, 0:3], blocks[:, 3:7], grip + blocks[:, 10:13]
    peg_xy = jnp.asarray(np.array([pegs.PEG_XY[k] for k in kinds], np.float32))
    placed = on_peg(centres, peg_xy)
    idx = jnp.argmax(~placed)  # the first nut not on its peg
    done = jnp.all(placed)
    c, q, h, peg = centres[idx], quats[idx], handles[idx], peg_xy[idx]
    w, x, y, z = q
    yaw = jnp.arctan2(2 * (x * y + w * z), 1 - 2 * (y * y + z * z))  # heading of the nut's x axis (tilt-proof)
    level = 1 - 2 * (x * x + y * y) > LEVEL_COS  # the nut's axis within ~15 deg of vertical
    grip_yaw = jnp.arctan2(rot[1, 0], rot[0, 0])
    elbow = jnp.arctan2(obs[10], obs[3])  # joint 4
    stretched = elbow > ELBOW_GUARD
    hyper = elbow > ELBOW_STRAIGHT + 0.03
    back = grip[:2] - SHOULDER[:2]
    back = back / jnp.maximum(jnp.linalg.norm(back), 1e-6)
    wrist = grip + jnp.concatenate([-WRIST_BACK * back, jnp.array([WRIST_ABOVE])])
    radial = (wrist - SHOULDER) / jnp.linalg.norm(wrist - SHOULDER)

    # ---- approach and grasp the handle (fingers across it, gripper yaw = handle yaw mod pi)
    # the two grasps (gripper yaw = handle yaw or + pi): the cheaper one (see cost); joint 7 turns
    # opposite to the gripper's yaw
    q7 = jnp.arctan2(obs[13], obs[6])
    carry_err = _wrap(CARRY_YAW - yaw)
    e = jnp.mod(yaw - grip_yaw + jnp.pi / 2, jnp.pi) - jnp.pi / 2
    alt = jnp.where(e >= 0, e - jnp.pi, e + jnp.pi)
    def cost(g):  # joint 7 after the grasp turn (t1) and after the carry turn (t2): within Q7_REACH, t2
        # near the middle; + the grasp turn itself (t1, t2 do not change as the gripper turns, g does:
        # turning toward one grasp only lowers its cost, so the choice does not dither)
        t1 = q7 - g
        t2 = _wrap(t1 - carry_err)
        over = jnp.maximum(jnp.abs(t1) - Q7_REACH, 0.0) + jnp.maximum(jnp.abs(t2) - Q7_REACH, 0.0)
        # a grasp joint 7 cannot reach at all (past its limit): the hand stalled over the handle at
        # the limit, the other grasp only ~0.3 dearer by the costs above (a margin inside the limit
        # made arms whose joint 7 drifts from 2.81 to 2.87 on the way down flip grasps and rise)
        over = over + 10.0 * jnp.maximum(jnp.abs(t1) - Q7_LIMIT, 0.0)
        # the grasp the gripper is already turned to wins ties: joint 7 jitters by ~5 mrad as the
        # arm descends, and where the two costs were within that (joint 7 ~0.2 rad past Q7_REACH
        # after one carry turn) the choice flipped over the handle and sent the arm back up
        return jnp.abs(g) + 0.5 * jnp.abs(t2) + 10.0 * over - jnp.where(jnp.abs(g) < 0.15, GRASP_KEEP, 0.0)
    grasp_err = jnp.where(cost(e) <= cost(alt), e, alt)
    # grasp GRASP_OUT beyond the handle's centre, away from the ring: at the centre the open pads
    # (4 cm either side) cleared the square ring's corners by 4 mm, and the grip drifting ~8 mm
    # toward the ring on the way down landed a pad on the ring and tipped the nut
    out = h[:2] - c[:2]
    out = GRASP_OUT * out / jnp.maximum(jnp.linalg.norm(out), 1e-6)
    rel = h + jnp.concatenate([out, jnp.array([GRASP_DZ])]) - grip
    xy_err = jnp.linalg.norm(rel[:2])
    holding = (fingers < 0.05) & (fingers > 0.01) & (jnp.linalg.norm(rel) < 0.02)
    aligned = (xy_err < jnp.where(rel[2] > -0.05, 0.01, 0.005)) & (jnp.abs(grasp_err) < 0.08)
    at_handle = aligned & (jnp.abs(rel[2]) < 0.002)
    # hover 0.08 m over the handle; coming from the pegs (second nut), first back off toward the
    # robot at TRAVEL_Z: a sideways move out there stretches the elbow to its limit (OSC stalls)
    hover = grip + rel + jnp.array([0.0, 0.0, 0.08])
    behind = h[0] < RETREAT_X - 0.03  # (a nut fallen by the pegs: straight to it)
    hover = jnp.where((grip[0] > RETREAT_X) & behind, jnp.stack([RETREAT_X - 0.03, grip[1], TRAVEL_Z]), hover)
    # descend only when aligned over the handle, at most DESCENT per step (faster, OSC's lag let
    # the grip drift sideways by up to 8 mm on the way down)
    approach = jnp.where(aligned, grip + rel.at[2].set(jnp.maximum(rel[2], -DESCENT)), hover)
    squeezing = holding & (jnp.abs(obs[30:32]).sum() > 0.02)

    # ---- carry: the handle toward the robot (nut yaw pi), every nut type
    carry_turn = q7 - _wrap(q7 - carry_err)  # the gripper's yaw up = joint 7 down: keep joint 7 in (-pi, pi]
    # the nut hangs tilted about the pads: aim with where its centre will be once level
    hc = c - h
    c_xy = h[:2] + hc[:2] * jnp.linalg.norm(hc) / jnp.maximum(jnp.linalg.norm(hc[:2]), 1e-6)
    e_xy = peg - c_xy
    dist = jnp.linalg.norm(e_xy)
    dist_c = jnp.linalg.norm(peg - c[:2])
    high = c[2] > ABOVE_PEG
    # while rising, close in on the peg only to within STANDOFF (the ring clears the peg's side)
    keep = jnp.where(high, 0.0, STANDOFF)
    e_move = e_xy * jnp.maximum(dist - keep, 0.0) / jnp.maximum(dist, 1e-6)
    near = (dist < 0.01) & (jnp.abs(carry_err) < 0.1)
    over = (dist < 0.004) & (jnp.abs(carry_err) < 0.05)
    down = near & (over | (c[2] < ABOVE_PEG - 0.01))
    lower = TOP - 0.005 - c[2]
    dz = jnp.where(down, jnp.maximum(lower, -DESCENT), CARRY_Z - c[2])
    carry = grip + jnp.concatenate([e_move, dz[None]])

    # ---- let go and back off: up past the handle, then back toward the robot (straight up over
    # the pegs the arm stretches to its elbow limit, where OSC cannot bring it back)
    clear = grip[2] > PEG_TOP + 0.02
    retreat = jnp.stack([jnp.where(clear, jnp.minimum(grip[0], RETREAT_X), grip[0]), grip[1],
                         jnp.maximum(grip[2], PEG_TOP + 0.03)])

    # ---- the ring is around its peg: let go (it slides down the peg)
    # (a tilted ring resting on the peg's top also has its centre low: then only when far down)
    around = (dist_c < 0.015) & (c[2] < PEG_TOP - RELEASE_DEPTH) & (level | (c[2] < PEG_TOP - 0.05))
    # the arm nearly straight: let go as soon as the ring is level and around the peg's top
    around = around | (stretched & (dist_c < 0.012) & (c[2] < PEG_TOP - 0.005) & level)
    # once let go, a nut around its peg is left to settle: re-grasping it there (it tilts as the
    # fingers open and leave) flipped it off the peg
    settling = (fingers > 0.06) & (dist_c < 0.02) & (c[2] < PEG_TOP)
    release = around | done | settling

    target = jnp.where(holding, jnp.where(squeezing, grip, carry), approach)
    target = jnp.where(release, retreat, target)
    # no carry turn while the fingers still close: "holding" starts as they pass 2.5 cm, before the
    # pads touch, and turning then twisted the handle between them (a pad went into its box)
    turn = jnp.where(holding, jnp.where(squeezing, 0.0, jnp.clip(carry_turn, -1.0, 1.0)), grasp_err)
    turn = jnp.where(release, 0.0, turn)
    goal_rot = _rot_z(grip_yaw + turn) @ DOWN
    close = (at_handle | holding) & ~release
    # close gradually: each finger's target SQUEEZE inside its present opening, so it moves at most
    # that far per step and then squeezes the handle with ~kp * SQUEEZE. Slammed shut (+1) the
    # pads crossed ~3 cm within one step and, the grasp a few mm off the handle's centre line, one
    # went into its box (module docstring)
    gripper = jnp.where(close, _squeeze(fingers, SQUEEZE), -1.0)
    delta = target - grip
    # reach: never move the wrist away from the shoulder while the elbow is nearly straight (past
    # straight, OSC's J^T F drives joint 4 into its limit and the hand cannot come back); once past
    # straight, move outward: that bends the elbow back through straight
    outward = jnp.dot(delta, radial)
    delta = jnp.where(stretched, delta - jnp.maximum(outward, 0.0) * radial, delta)
    out_front = (grip[0] > 0.0) & (grip[2] < TOP + 0.3)  # only out over the table's front
    delta = jnp.where(hyper & out_front, 0.03 * radial + jnp.array([0.0, 0.0, 0.02]), delta)
    return jnp.concatenate([_move(delta, 1.5), _turn(goal_rot, rot), gripper[None]]).astype(jnp.float32)
