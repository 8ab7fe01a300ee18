"""Indoor navigation on MJX (iGibson-style): ``nav/pointgoal``, ``nav/interactive_pointgoal`` and
``nav/objectnav`` (:mod:`~vasa.envs.tasks.navigation.objectnav`: reach a lamp, RGB only) in
procedural apartments (:mod:`vasa.envs.scenes.apartment`) with a LoCoBot-like robot
(:mod:`vasa.envs.scenes.locobot`), device-side geodesic distances
(:mod:`~vasa.envs.tasks.navigation.geodesic`), a fast planar LiDAR
(:mod:`~vasa.envs.tasks.navigation.planar_lidar`) and held-out evaluation
(:mod:`~vasa.envs.tasks.navigation.evaluate`), and SECANT's navigation protocol (1 training
room, 10 easy and 10 hard held-out rooms: :mod:`~vasa.envs.tasks.navigation.protocol`)."""

from vasa.envs.tasks.navigation.evaluate import (
           evaluate,
           evaluate_heldout,
           geodesic_oracle,
           random_policy,
)
from vasa.envs.tasks.navigation.geodesic import (
           dijkstra_numpy,
           distance_field,
           geodesic_at,
)
from vasa.envs.tasks.navigation.objectnav import (
           ObjectNav,
           approach_lamp_policy,
           objectnav,
           spin_policy,
)
from vasa.envs.tasks.navigation.planar_lidar import PlanarLidar
from vasa.envs.tasks.navigation.pointgoal import (
           PointGoalNav,
           interactive_pointgoal,
           pointgoal,
)
from vasa.envs.tasks.navigation.protocol import (
           ProtocolResult,
           protocol_env,
           secant_protocol,
)

__all__ = ["ObjectNav", "PlanarLidar", "PointGoalNav", "ProtocolResult", "approach_lamp_policy", "dijkstra_numpy",
           "distance_field", "evaluate", "evaluate_heldout", "geodesic_at", "geodesic_oracle", "interactive_pointgoal",
           "objectnav", "pointgoal", "protocol_env", "random_policy", "secant_protocol", "spin_policy"]
