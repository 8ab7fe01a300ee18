"""Task families: pure-JAX toy tasks, Brax locomotion on MJX, DM Control Suite via MuJoCo Playground."""
