"""Scripted pick-and-place controllers for ``robo/stack`` and ``robo/pick_place`` (``control="osc_pose"``).

Pure JAX functions ``policy(obs) -> action [7] float32`` of the state observation alone: no
memory, the phase (approach, grasp, carry, place, retreat) is read off the observation, as in
:mod:`.scripted` (whose helpers they reuse). They vmap over environments and run inside
``lax.scan``.

Measured success on random initial states (``control="osc_pose"``, scene ``seed=0``, 32
environments per run, CPU, 2026-12-02; :data:`MEASURED`; success counted at any step within
the horizon, reset keys ``jax.random.split(jax.random.PRNGKey(k), 32)``):

* ``robo/stack``: 64/64 (two runs of 32, reset keys 7 and 8), all stacked by step 100-150;
  re-measured after the pick_place changes below (stack's path is unchanged): 32/32 with key 7
  within 200 steps (all by step 88);
* ``robo/pick_place`` with ``num_objects=1`` (a random class per environment; seed 0 draws a
  cylinder milk, a capsule bread, box cereal and box can): 32/32 within 300 steps with key 23
  (all by step 126); with ``object_type="milk"`` (the upright cylinder, the tippiest): 16/16
  within 250 steps (the first 16 keys of key 23; all by step 108);
* ``robo/pick_place`` with all four objects, key 23: 31/32 within 600 steps and 32/32 within
  1000 (robosuite's horizon; vasa's default episode is 500): 17 by step 400, 29 by 500, the last
  at step 764 (its placed milk was knocked over by the open fingers passing over bin2 on the way
  to the bread, rolled out of its compartment and was fetched back). Before taking the tallest
  object first, setting objects down instead of dropping them and keeping the wrist off its
  limit, the same keys gave 23/32 within 500 and 29/32 within 1000: a dropped milk tipped over and rolled out of its
  compartment (and a re-grasp of the lying cylinder once blew up the simulation), a dropped bread
  capsule kept rolling (no rolling friction) until it left its compartment, and picking the
  nearest of the equivalent grasp yaws wound joint 7 onto its limit, where the arm stalled.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from vasa.envs.scenes import table
from vasa.envs.tasks.manipulation import pick_place as pp
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

MEASURED = {"stack": (64, 64, 200), "pick_place_1": (32, 32, 300), "pick_place_milk": (16, 16, 250),
            "pick_place_4": (29, 32, 500), "pick_place_4_600": (31, 32, 600),
            "pick_place_4_long": (32, 32, 1000)}
"""``(successes, environments, steps)`` of the runs listed in the module docstring."""

CLOSED = 0.07  # finger openings (sum, m) below this with the object between the pads: closing or holding
CARRY_Z = table.TABLE_TOP + 0.15  # grasp-site height while carrying (above the cubes / bin walls)
SQUEEZE = 0.004  # m per finger: a ~6 N grip with the fingers' kp 1500


def grasp_yaw(quat: jnp.ndarray) -> jnp.ndarray:
    """Gripper yaw (rad) that closes the fingers along the object's local y axis (its narrow side)
    seen from above, or along its local x axis when y points up or down (a box or cylinder lying
    on its side). ``quat``: ``[4]`` (w, x, y, z). For an upright object: its own yaw."""
    rot = quat_to_mat(quat)
    axis = jnp.where(jnp.linalg.norm(rot[:2, 1]) > 0.5, rot[:, 1], rot[:, 0])
    return jnp.arctan2(axis[1], axis[0]) - jnp.pi / 2


def pick_and_place(obs: jnp.ndarray, obj: jnp.ndarray, obj_quat: jnp.ndarray, goal_xy: jnp.ndarray,
                   place_z: jnp.ndarray, period=jnp.pi / 2, carry_z: float = CARRY_Z,
                   done_tol: float = 0.015, gain: float = 1.0, wrist: bool = False) -> jnp.ndarray:
    """One memoryless step of "grasp ``obj``, carry it over ``goal_xy``, lower it to ``place_z``,
    let go, back off upward".

    ``obs``: the task's observation (proprioception first, see
    :class:`~vasa.envs.tasks.manipulation.base.ArmTask`); ``obj [3]``, ``obj_quat [4]``: the
    object's centre and orientation; ``goal_xy [2]`` and ``place_z []``: where its centre is let
    go; ``period``: the object's yaw symmetry for the grasp (pi/2: either pair of faces, pi: its
    narrow sides, along its local y); ``gain``: position gain of the OSC action (1: the OSC goal is
    the target itself, less overshoot than :mod:`.scripted`'s 1.5); ``wrist``: turn the hand to the
    equivalent grasp yaw (a multiple of ``period`` apart) that leaves joint 7 nearest the centre of
    its range, not the nearest one (several picks in a row otherwise wind the wrist onto its limit,
    where the arm stalls). Returns the ``[7] float32`` OSC_POSE action.
    """
    grip, rot = obs[POS], quat_to_mat(obs[QUAT])
    fingers = obs[FINGERS].sum()
    grip_yaw = jnp.arctan2(rot[1, 0], rot[0, 0])
    err = jnp.mod(grasp_yaw(obj_quat) - grip_yaw + period / 2, period) - period / 2
    if wrist:  # candidates within +-(pi - 0.3) rad, where the OSC's orientation error still turns the right way
        q7 = jnp.arctan2(obs[13], obs[6])  # turning the hand by +a about world z turns joint 7 by about -a
        cand = err + period * jnp.arange(-3, 4)
        err = cand[jnp.argmin(jnp.abs(q7 - cand) + 10.0 * (jnp.abs(cand) > jnp.pi - 0.3))]
    rel = obj - grip
    xy_err = jnp.linalg.norm(rel[:2])
    goal_err = jnp.linalg.norm(obj[:2] - goal_xy)
    done = (goal_err < done_tol) & (obj[2] < place_z + 0.012)
    held = (fingers < CLOSED) & (jnp.linalg.norm(rel) < 0.035) & ~done
    # wait for the fingers to settle before lifting off the table (not later: the carry's jolts shake them)
    squeezed = held & ((jnp.abs(obs[30:32]).sum() < 0.02) | (grip[2] > table.TABLE_TOP + 0.07))
    # approach: rise first when low and off to the side, hover over the object, descend, close
    aligned = (xy_err < jnp.where(rel[2] > -0.05, 0.012, 0.006)) & (jnp.abs(err) < 0.08)
    at_obj = aligned & (jnp.abs(rel[2]) < 0.008) & (xy_err < 0.004)  # centred: pads on a cylinder's axis
    hover = obj[2] + 0.08
    approach = jnp.where(aligned, obj, jnp.concatenate([obj[:2], hover[None]]))
    low_and_away = (grip[2] < hover - 0.03) & (xy_err > 0.03)
    approach = jnp.where(low_and_away, jnp.concatenate([grip[:2], hover[None]]), approach)
    # carry (targets for the object's centre, moved to the grasp site by the offset rel)
    high = obj[2] > carry_z - 0.04
    over_goal = goal_err < jnp.where(high, 0.01, 0.02)  # once descending, correct sideways without rising
    carry = jnp.where(over_goal, jnp.concatenate([goal_xy, place_z[None]]),
                      jnp.where(high, jnp.concatenate([goal_xy, jnp.array([carry_z])]),
                                jnp.concatenate([obj[:2], jnp.array([carry_z])])))
    carry = jnp.where(squeezed, carry - rel, grip)  # hold still until the fingers have settled
    retreat = jnp.concatenate([grip[:2], jnp.array([carry_z])])
    target = jnp.where(done, retreat, jnp.where(held, carry, approach))
    goal_rot = _rot_z(jnp.where(held | done, grip_yaw, grip_yaw + err)) @ DOWN
    # once holding, squeeze gently: finger targets SQUEEZE inside the object's faces (a soft MJX contact
    # creeps in proportion to its force; the full 20 N squeezes a round object out of an off-centre grasp)
    gentle = _squeeze(fingers, SQUEEZE)
    gripper = jnp.where(held, gentle, jnp.where(at_obj & ~done, 1.0, -1.0))
    return jnp.concatenate([_move(target - grip, gain), _turn(goal_rot, rot),
                            jnp.clip(gripper, -1.0, 1.0)[None]]).astype(jnp.float32)


def stack_policy(obs: jnp.ndarray, half_a: float = 0.02) -> jnp.ndarray:
    """Scripted ``robo/stack``: grasp cube A, carry it over cube B, lower it until its bottom is
    3 mm above B's top, let go, back off. ``obs``: ``[55] float32`` -> ``[7] float32`` action.
    ``half_a``: the assumed half-size of A (B's follows from its height on the table)."""
    a, a_quat, b = obs[32:35], obs[35:39], obs[39:42]
    half_b = b[2] - table.TABLE_TOP
    place_z = b[2] + half_b + half_a + 0.003
    return pick_and_place(obs, a, a_quat, b[:2], place_z)


def pick_place_policy(obs: jnp.ndarray) -> jnp.ndarray:
    """Scripted ``robo/pick_place``: take the tallest active object (by the top of its bounding box,
    so that the open fingers pass above the rest and nothing taller is left to knock over) that is
    not in its compartment yet (the one in the hand first), carry it over its compartment's centre,
    lower it to 1 cm above bin2's floor and let go there (not as soon as it is inside the
    compartment: a dropped milk tips over and a dropped bread capsule rolls away); back off upward
    once all are in place. ``obs``: ``[32 + 16 N] float32`` (N = 4, or 1 with ``object_type``) ->
    ``[7] float32`` action."""
    n = (obs.shape[0] - 32) // pp.PickPlace.per_object_obs
    objs = obs[32:].reshape(n, pp.PickPlace.per_object_obs)
    pos, quat = objs[:, :3], objs[:, 3:7]
    active, cls = objs[:, 14] > 0.5, objs[:, 15].astype(jnp.int32)
    grip = obs[POS]
    boxes = jnp.asarray(pp.CLASS_BOX, jnp.float32)[cls]  # [n, 3] half-extents
    top = pos[:, 2] + (jnp.abs(jax.vmap(quat_to_mat)(quat)[:, 2, :]) * boxes).sum(-1)
    place_z = pp.BIN2_POS[2] + boxes[:, 2] + 0.01  # [n] centre heights to let go at
    in_hand = (obs[FINGERS].sum() < CLOSED) & (jnp.linalg.norm(pos - grip, axis=-1) < 0.035)
    lowered = pos[:, 2] < place_z + 0.012  # pick_and_place's "done" height
    todo = active & (~pp.in_compartment(pos, cls) | (in_hand & ~lowered))
    i = jnp.argmax(jnp.where(todo, top + 10.0 * in_hand, -jnp.inf))
    c = cls[i]
    goal = jnp.asarray(pp.compartment_centres(), jnp.float32)[c]
    period = jnp.asarray(pp.GRASP_PERIOD, jnp.float32)[c]
    action = pick_and_place(obs, pos[i], quat[i], goal, place_z[i], period=period, wrist=True)
    rest = jnp.concatenate([_move(jnp.array([0.0, 0.0, CARRY_Z]) - grip * jnp.array([0.0, 0.0, 1.0])),
                            jnp.zeros(3), jnp.array([-1.0])])
    return jnp.where(jnp.any(todo), action, rest).astype(jnp.float32)
