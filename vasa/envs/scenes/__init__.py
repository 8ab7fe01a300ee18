"""Small procedurally generated MuJoCo scenes (for sensors' demos and tests)."""

from vasa.envs.scenes.room import room_xml

__all__ = ["room_xml"]
