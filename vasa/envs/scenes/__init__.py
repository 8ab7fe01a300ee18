"""Small procedurally generated MuJoCo scenes (for sensors' demos and tests)."""

from vasa.envs.scenes.apartment import (HELDOUT_SEED_OFFSET, ApartmentConfig, generate_layout, layout_seeds,
                                        make_family)
from vasa.envs.scenes.room import room_xml
from vasa.envs.scenes.robots import add_arm, add_arms
from vasa.envs.scenes.table import add_cube, add_door, add_table, sample_placements

__all__ = ["room_xml", "ApartmentConfig", "HELDOUT_SEED_OFFSET", "generate_layout", "layout_seeds", "make_family",
           "add_arm", "add_arms", "add_table", "add_cube", "add_door", "sample_placements"]
