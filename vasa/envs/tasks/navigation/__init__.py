"""Indoor navigation on MJX (iGibson-style): ``nav/pointgoal`` and ``nav/interactive_pointgoal``
in procedural apartments (:mod:`vasa.envs.scenes.apartment`) with a LoCoBot-like robot
(:mod:`vasa.envs.scenes.locobot`), device-side geodesic distances
(:mod:`~vasa.envs.tasks.navigation.geodesic`), a fast planar LiDAR
(:mod:`~vasa.envs.tasks.navigation.planar_lidar`) and held-out evaluation
(:mod:`~vasa.envs.tasks.navigation.evaluate`)."""

from vasa.envs.tasks.navigation.evaluate import evaluate, evaluate_heldout, geodesic_oracle, random_policy
from vasa.envs.tasks.navigation.geodesic import dijkstra_numpy, distance_field, geodesic_at
from vasa.envs.tasks.navigation.planar_lidar import PlanarLidar
from vasa.envs.tasks.navigation.pointgoal import PointGoalNav, interactive_pointgoal, pointgoal

__all__ = ["PlanarLidar", "PointGoalNav", "dijkstra_numpy", "distance_field", "evaluate", "evaluate_heldout",
           "geodesic_at", "geodesic_oracle", "interactive_pointgoal", "pointgoal", "random_policy"]
